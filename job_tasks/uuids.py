"""Arvados uuids: ``CCCCC-TTTTT-RRRRRRRRRRRRRRR`` (cluster id, type infix, random part)."""

from __future__ import annotations

import re
import secrets

from .app_settings import app_settings

#: Type infixes: the last five base-36 digits of MD5 of the Arvados class name.
JOB_TASK_INFIX = "ot0gb"
USER_INFIX = "tpzed"
GROUP_INFIX = "j7d0g"
TOKEN_INFIX = "gj3su"
JOB_INFIX = "8i9sb"
LOG_INFIX = "57u5n"

#: ``is_a`` kinds and the infix each one names (the resources Arvados 1.4 knew).
KIND_INFIXES: dict[str, str] = {
    "arvados#jobTask": JOB_TASK_INFIX,
    "arvados#user": USER_INFIX,
    "arvados#group": GROUP_INFIX,
    "arvados#apiClientAuthorization": TOKEN_INFIX,
    "arvados#job": JOB_INFIX,
    "arvados#collection": "4zz18",
    "arvados#pipelineInstance": "d1hrv",
    "arvados#pipelineTemplate": "p5p6p",
    "arvados#container": "dz642",
    "arvados#containerRequest": "xvhdp",
    "arvados#workflow": "7fd4e",
    "arvados#node": "7ekkf",
    "arvados#repository": "s0uqq",
    "arvados#specimen": "j58dm",
    "arvados#trait": "q1cn2",
    "arvados#humans": "7a9it",
    "arvados#keepService": "bi6l4",
    "arvados#keepDisk": "penuu",
    "arvados#log": "57u5n",
    "arvados#link": "o0j2j",
    "arvados#apiClient": "ozdt8",
    "arvados#authorizedKey": "fngyi",
    "arvados#virtualMachine": "2x53u",
}

UUID_LENGTH = 27
UUID_RE = re.compile(r"^[0-9a-z]{5}-[0-9a-z]{5}-[0-9a-z]{15}$")
CLUSTER_ID_RE = re.compile(r"^[0-9a-z]{5}$")

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_PAIRS = tuple(high + low for high in _ALPHABET for low in _ALPHABET)


def base36(number: int) -> str:
    """Write a non-negative integer in lowercase base 36.

    Two digits at a time (a table of the 1,296 pairs): every etag of a list is written
    this way, and half the divisions of big integers is half the time.
    """
    if number < 0:
        raise ValueError("base36() needs a non-negative integer")
    pairs = []
    while True:
        number, pair = divmod(number, 1296)
        pairs.append(_PAIRS[pair])
        if not number:
            return "".join(reversed(pairs)).lstrip("0") or "0"


def random_part() -> str:
    """Fifteen random base-36 characters, as Arvados draws them (from 256 random bits)."""
    return base36(secrets.randbits(256)).rjust(15, "0")[-15:]


def new_uuid(infix: str) -> str:
    """A fresh uuid of the given type on this cluster."""
    return f"{app_settings.CLUSTER_ID}-{infix}-{random_part()}"


def is_uuid(value: object) -> bool:
    """True when ``value`` is a well-formed Arvados uuid of any type."""
    return isinstance(value, str) and UUID_RE.match(value) is not None


def infix_of(value: str) -> str:
    """The type infix of a uuid (characters 7–11), without checking the format."""
    return value[6:11]
