"""System checks of the scheduling settings (``job_tasks.E008``, ``E009``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from job_tasks.app_settings import DEFAULTS, app_settings
from job_tasks.checks import check_settings

KEYS = ("DEFAULT_LEASE_SECONDS", "MAX_LEASE_SECONDS", "MAX_EXPIRED_LEASES", "MAX_CLAIM_LIMIT")


def ids(settings, value) -> list[str]:
    settings.JOB_TASKS = value
    return [message.id for message in check_settings()]


def test_the_defaults_pass_and_are_documented():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for key in KEYS:
        assert key in DEFAULTS
        assert f"`{key}`" in readme
    assert DEFAULTS["DEFAULT_LEASE_SECONDS"] <= DEFAULTS["MAX_LEASE_SECONDS"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("bad", [0, -5, "60", 1.5, True, None])
def test_each_scheduling_key_must_be_a_positive_integer(settings, key, bad):
    assert ids(settings, {key: bad}) == ["job_tasks.E008"]


def test_the_default_lease_may_not_exceed_the_longest(settings):
    assert ids(settings, {"DEFAULT_LEASE_SECONDS": 600, "MAX_LEASE_SECONDS": 60}) == [
        "job_tasks.E009"
    ]


def test_scheduling_settings_are_read_on_access(settings):
    settings.JOB_TASKS = {"MAX_CLAIM_LIMIT": 7}
    assert app_settings.MAX_CLAIM_LIMIT == 7
