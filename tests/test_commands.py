"""``manage.py job_tasks_token`` (spec §15.2) and the reference project's ``demo_setup``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from job_tasks.identities import is_manager
from job_tasks.models import ApiToken
from tests.conftest import find_user, new_user

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("job_tasks_token", *args, stdout=out, stderr=err)
    assert err.getvalue() == ""
    return out.getvalue()


def test_prints_exactly_one_working_token_and_nothing_else():
    new_user("carol")

    output = run("carol")

    lines = output.splitlines()
    assert len(lines) == 1
    token = lines[0]
    assert token.startswith("v2/zzzzz-gj3su-")
    response = APIClient().get("/arvados/v1/job_tasks", {"api_token": token})
    assert response.status_code == 200


def test_each_run_issues_a_new_token():
    new_user("carol")
    assert run("carol") != run("carol")
    assert ApiToken.objects.filter(user=find_user("carol")).count() == 2


def test_unknown_user_without_create_user_fails():
    with pytest.raises(CommandError, match="--create-user"):
        run("nobody")
    with pytest.raises(get_user_model().DoesNotExist):
        find_user("nobody")


def test_create_user_manager_and_superuser_flags():
    run("dispatcher", "--create-user", "--manager")
    run("root", "--create-user", "--superuser")
    run("plain", "--create-user")

    assert is_manager(find_user("dispatcher"))
    assert not find_user("dispatcher").is_superuser
    assert find_user("root").is_superuser
    assert not is_manager(find_user("plain"))


def test_expires_in_sets_an_expiry_and_refuses_nonsense():
    run("carol", "--create-user", "--expires-in", "60")
    assert ApiToken.objects.get(user=find_user("carol")).expires_at is not None
    with pytest.raises(CommandError):
        run("carol", "--expires-in", "0")


def test_demo_setup_prints_tokens_and_urls(settings):
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "jobtasks_project"]
    out = StringIO()
    call_command("demo_setup", "--base-url", "http://example.test:8000", stdout=out)

    text = out.getvalue()
    assert "http://example.test:8000/arvados/v1/job_tasks" in text
    assert "http://example.test:8000/admin/" in text
    assert "http://example.test:8000/api/docs/" in text
    tokens = [line.split("token: ")[1] for line in text.splitlines() if "token: " in line]
    assert len(tokens) == 2
    for token in tokens:
        assert APIClient().get("/arvados/v1/job_tasks", {"api_token": token}).status_code == 200
    assert is_manager(find_user("demo-manager"))
    assert not is_manager(find_user("demo-user"))


def test_migrate_creates_the_manager_group_named_by_the_settings(settings):
    from django.contrib.auth.models import Group, Permission

    role = Permission.objects.get(content_type__app_label="job_tasks", codename="manage_job_tasks")

    def migrate() -> None:
        call_command("migrate", verbosity=0, interactive=False, stdout=StringIO())

    Group.objects.filter(name="job managers").delete()
    migrate()
    assert list(Group.objects.get(name="job managers").permissions.all()) == [role]

    settings.JOB_TASKS = {"MANAGER_GROUP_NAME": "dispatchers"}
    carol = new_user("carol")
    existing = Group.objects.create(name="dispatchers")
    existing.user_set.add(carol)
    assert not is_manager(carol)
    migrate()
    group = Group.objects.get(name="dispatchers")
    assert list(group.permissions.all()) == [role]
    assert list(group.user_set.all()) == [carol], "an existing group keeps its members"
    assert is_manager(find_user("carol"))
    assert Group.objects.filter(permissions=role).count() == 2  # the default one stays
