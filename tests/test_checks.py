"""System checks reject bad ``JOB_TASKS`` values at start-up, one check per bad value."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from job_tasks.app_settings import DEFAULTS, app_settings
from job_tasks.checks import check_settings


def ids(settings, value) -> list[str]:
    settings.JOB_TASKS = value
    return [message.id for message in check_settings()]


def test_no_setting_at_all_is_fine(settings):
    del settings.JOB_TASKS
    assert check_settings() == []
    assert app_settings.CLUSTER_ID == "zzzzz"


def test_defaults_are_fine(settings):
    assert ids(settings, dict(DEFAULTS)) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], "job_tasks.E001"),
        ({"NOPE": 1}, "job_tasks.E002"),
        ({"CLUSTER_ID": "ZZZZZ"}, "job_tasks.E003"),
        ({"CLUSTER_ID": "zzzz"}, "job_tasks.E003"),
        ({"MAX_LIMIT": 0}, "job_tasks.E004"),
        ({"DEFAULT_LIMIT": "100"}, "job_tasks.E004"),
        ({"MAX_BODY_BYTES": True}, "job_tasks.E004"),
        ({"MAX_FILTERS": -1}, "job_tasks.E004"),
        ({"DEFAULT_LIMIT": 50, "MAX_LIMIT": 10}, "job_tasks.E005"),
        ({"TOKEN_LIFETIME_SECONDS": 0}, "job_tasks.E006"),
        ({"PREPARED_STATEMENTS": "yes"}, "job_tasks.E010"),
        ({"SINGLE_STATEMENT_WRITES": 1}, "job_tasks.E011"),
        ({"MANAGER_GROUP_NAME": ""}, "job_tasks.E007"),
    ],
)
def test_each_bad_value_has_its_check(settings, value, expected):
    assert ids(settings, value) == [expected]


def test_use_tz_off_is_a_warning(settings):
    settings.USE_TZ = False
    settings.JOB_TASKS = {}
    assert [message.id for message in check_settings()] == ["job_tasks.W001"]


def test_settings_are_read_on_access(settings):
    settings.JOB_TASKS = {"CLUSTER_ID": "abcde"}
    assert app_settings.CLUSTER_ID == "abcde"
    settings.JOB_TASKS = {}
    assert app_settings.CLUSTER_ID == "zzzzz"
    with pytest.raises(AttributeError):
        app_settings.NOT_A_SETTING  # noqa: B018


@pytest.mark.django_db  # Django 6 runs checks that read the database too
def test_the_check_is_registered_with_django():
    """``manage.py check`` runs it: ``run_checks()`` reports a bad value, the defaults pass."""
    with override_settings(JOB_TASKS={"CLUSTER_ID": "ZZZZZ", "NOPE": 1}):
        reported = [message for message in run_checks() if message.id.startswith("job_tasks.")]
    assert sorted(message.id for message in reported) == ["job_tasks.E002", "job_tasks.E003"]
    assert all(message.is_serious() for message in reported)
    with override_settings(JOB_TASKS={"CLUSTER_ID": "abcde"}):
        assert [m.id for m in run_checks() if m.id.startswith("job_tasks.")] == []
