"""Base 36, as uuids, tokens and etags are written."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from job_tasks.uuids import base36


@given(st.integers(min_value=0, max_value=2**300))
def test_base36_round_trips_without_leading_zeros(number):
    written = base36(number)
    assert int(written, 36) == number
    assert re.fullmatch(r"0|[1-9a-z][0-9a-z]*", written)


@pytest.mark.parametrize(
    ("number", "written"),
    [
        (0, "0"),
        (1, "1"),
        (35, "z"),
        (36, "10"),
        (1295, "zz"),
        (1296, "100"),
        (36**12, "1" + "0" * 12),
    ],
)
def test_base36_edges(number, written):
    assert base36(number) == written


def test_base36_refuses_negative_numbers():
    with pytest.raises(ValueError, match="non-negative"):
        base36(-1)
