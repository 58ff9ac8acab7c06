"""The admin: pages render, task edits go through the domain rules, tokens are managed there."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from job_tasks.models import ApiToken, JobTask

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(admin) -> Client:
    client = Client()
    client.force_login(admin.user)
    return client


def test_task_changelist_add_and_change_pages_render(admin_client_, admin, make_task):
    task = make_task(admin, sequence=2)
    assert admin_client_.get(reverse("admin:job_tasks_jobtask_changelist")).status_code == 200
    assert admin_client_.get(reverse("admin:job_tasks_jobtask_add")).status_code == 200
    page = admin_client_.get(reverse("admin:job_tasks_jobtask_change", args=[task.pk]))
    assert page.status_code == 200
    assert task.uuid in page.content.decode()


def test_adding_a_task_in_the_admin_assigns_uuid_qsequence_and_owner(admin_client_, admin):
    response = admin_client_.post(
        reverse("admin:job_tasks_jobtask_add"),
        {"owner_uuid": admin.uuid, "sequence": "3", "parameters": '{"a": 1}', "success": ""},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    task = JobTask.objects.get()
    assert task.uuid.startswith("zzzzz-ot0gb-")
    assert task.qsequence is not None
    assert task.sequence == 3
    assert task.modified_by_user_uuid == admin.uuid


def test_admin_edit_refused_by_the_domain_changes_nothing(admin_client_, admin, make_task):
    task = make_task(admin, sequence=1)
    response = admin_client_.post(
        reverse("admin:job_tasks_jobtask_change", args=[task.pk]),
        {
            "owner_uuid": "zzzzz-ot0gb-000000000000000",
            "sequence": "5",
            "parameters": "{}",
            "success": "",
        },
        follow=True,
    )

    assert "Owner uuid must be set to User or Group" in response.content.decode()
    task.refresh_from_db()
    assert task.sequence == 1
    assert task.owner_uuid == admin.uuid


def test_issuing_a_token_in_the_admin_shows_the_secret_once(admin_client_, alice):
    response = admin_client_.post(
        reverse("admin:job_tasks_apitoken_add"),
        {"user": alice.user.pk, "description": "ci", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )

    text = response.content.decode()
    match = re.search(r"v2/zzzzz-gj3su-[0-9a-z]{15}/[0-9a-z]{50}", text)
    assert match, text[:3000]
    from rest_framework.test import APIClient

    client = APIClient()
    assert client.get("/arvados/v1/job_tasks", {"api_token": match.group()}).status_code == 200
    token = ApiToken.objects.get(description="ci")
    page = admin_client_.get(reverse("admin:job_tasks_apitoken_change", args=[token.pk]))
    assert match.group().rsplit("/", 1)[1] not in page.content.decode()


@pytest.mark.parametrize("action", ["revoke", "expire_now"])
def test_token_actions_make_tokens_unusable(admin_client_, alice, action):
    token = ApiToken.objects.get(user=alice.user)
    response = admin_client_.post(
        reverse("admin:job_tasks_apitoken_changelist"),
        {"action": action, "_selected_action": [token.pk]},
        follow=True,
    )

    assert "1 token" in response.content.decode()
    assert alice.client.get("/arvados/v1/job_tasks").status_code == 401


def test_manager_attributes_are_read_only_in_the_admin_for_non_managers(alice, manager, make_task):
    from django.contrib.auth.models import Permission

    perms = Permission.objects.filter(
        content_type__app_label="job_tasks", codename__in=["view_jobtask", "change_jobtask"]
    )
    for caller in (alice, manager):
        caller.user.is_staff = True
        caller.user.save()
        caller.user.user_permissions.add(*perms)
    task = make_task(alice, qsequence=5, job_uuid="zzzzz-8i9sb-aaaaaaaaaaaaaaa")
    url = reverse("admin:job_tasks_jobtask_change", args=[task.pk])

    plain = Client()
    plain.force_login(alice.user)
    page = plain.get(url).content.decode()
    assert 'name="qsequence"' not in page
    assert 'name="job_uuid"' not in page
    assert 'name="created_by_job_task_uuid"' not in page
    assert 'name="sequence"' in page
    plain.post(
        url, {"owner_uuid": alice.uuid, "qsequence": "99", "parameters": "{}", "success": ""}
    )
    task.refresh_from_db()
    assert task.qsequence == 5

    boss = Client()
    boss.force_login(manager.user)
    assert 'name="qsequence"' in boss.get(url).content.decode()
