"""The admin: pages render, task edits go through the domain rules, tokens are managed there."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from job_tasks.models import ApiToken, AuditEvent, JobTask

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


# --------------------------------------------------------------------------- helpers


def _staff_client(caller, *codenames: str) -> Client:
    """Admin access as documented: is_staff plus the job task model permissions."""
    from django.contrib.auth.models import Permission

    caller.user.is_staff = True
    caller.user.save()
    caller.user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="job_tasks", codename__in=codenames)
    )
    client = Client()
    client.force_login(caller.user)
    return client


@pytest.fixture
def operator_client(alice) -> Client:
    return _staff_client(alice, "view_jobtask", "change_jobtask", "add_jobtask")


@pytest.fixture
def manager_client(manager) -> Client:
    return _staff_client(manager, "view_jobtask", "change_jobtask", "add_jobtask")


CHANGELIST = "admin:job_tasks_jobtask_changelist"


def _change_url(task: JobTask) -> str:
    return reverse("admin:job_tasks_jobtask_change", args=[task.pk])


def _listed(response) -> set[str]:
    return {task.uuid for task in response.context["cl"].result_list}


def _messages(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


def _form_post(task: JobTask, **changes) -> dict[str, str]:
    """The change form as the browser would send it, untouched, plus ``changes``."""
    data = {
        "owner_uuid": task.owner_uuid,
        "sequence": "" if task.sequence is None else str(task.sequence),
        # manager-only: ignored (not in the form) for the others
        "qsequence": "" if task.qsequence is None else str(task.qsequence),
        "job_uuid": task.job_uuid or "",
        "created_by_job_task_uuid": task.created_by_job_task_uuid or "",
        "parameters": json.dumps(task.parameters),
        "output": task.output or "",
        "progress": "" if task.progress is None else str(task.progress),
        "success": {None: "unknown", True: "true", False: "false"}[task.success],
        "started_at_0": "",
        "started_at_1": "",
        "finished_at_0": "",
        "finished_at_1": "",
    }
    data.update(changes)
    return data


JOB = "zzzzz-8i9sb-aaaaaaaaaaaaaaa"


# --------------------------------------------------------------------------- changelist


def test_changelist_costs_the_same_queries_for_10_and_1000_rows(
    admin_client_, operator_client, admin, alice, make_task
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(client: Client, url: str) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    urls = [
        reverse(CHANGELIST),
        reverse(CHANGELIST) + "?state=running&sequence=1",
        reverse(CHANGELIST) + f"?job={JOB}&q={JOB[:12]}",
    ]

    def seed(count: int) -> None:
        now = timezone.now()
        JobTask.objects.bulk_create(
            JobTask(
                uuid=f"zzzzz-ot0gb-{len(JobTask.objects.all()) + i:015d}",
                owner_uuid=(admin if i % 2 else alice).uuid,
                job_uuid=JOB,
                sequence=i % 3,
                qsequence=i,
                started_at=now if i % 4 == 0 else None,
                modified_at=now,
            )
            for i in range(count)
        )

    seed(10)
    small = {(c, u): queries(c, u) for c in (admin_client_, operator_client) for u in urls}
    seed(990)
    for (client, url), before in small.items():
        after = queries(client, url)
        assert len(after) == len(before), (url, after)
    # and no COUNT over the whole table: the paginator counts at most COUNT_CAP + 1 rows
    counts = [q for q in queries(admin_client_, urls[0]) if "COUNT(" in q.upper()]
    assert counts
    assert all("LIMIT" in q.upper() for q in counts), counts


def test_changelist_shows_badges_progress_and_owner_names(admin_client_, admin, make_task):
    make_task(admin, job_uuid=JOB, started_at=timezone.now(), progress=0.42)
    make_task(admin, success=False)
    page = admin_client_.get(reverse(CHANGELIST)).content.decode()
    assert 'class="jt-badge jt-running"' in page
    assert 'class="jt-badge jt-failed"' in page
    assert "width: 42%" in page
    assert f'title="{admin.uuid}">admin<' in page  # the owner's name, the uuid on hover
    assert reverse("admin:job_tasks_jobtask_job", args=[JOB]) in page


def test_count_is_capped_and_shown_as_at_least(admin_client_, admin, make_task, monkeypatch):
    from job_tasks import admin as job_tasks_admin

    monkeypatch.setattr(job_tasks_admin, "COUNT_CAP", 3)
    for _ in range(5):
        make_task(admin)
    response = admin_client_.get(reverse(CHANGELIST))
    assert str(response.context["cl"].result_count) == "3+"
    assert "3+ job tasks" in " ".join(response.content.decode().split())


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("todo", {"todo", "blocked"}),
        ("runnable", {"todo"}),
        ("running", {"running", "expired"}),
        ("lease_expired", {"expired"}),
        ("done", {"done"}),
        ("failed", {"failed"}),
    ],
)
def test_state_filter(admin_client_, admin, make_task, state, expected):
    now = timezone.now()
    tasks = {
        "todo": make_task(admin, job_uuid=JOB, sequence=0),
        "blocked": make_task(admin, job_uuid=JOB, sequence=1),
        "running": make_task(admin, started_at=now, lease_expires_at=now + timedelta(hours=1)),
        "expired": make_task(admin, started_at=now, lease_expires_at=now - timedelta(seconds=1)),
        "done": make_task(admin, success=True),
        "failed": make_task(admin, success=False),
    }
    response = admin_client_.get(reverse(CHANGELIST), {"state": state})
    assert _listed(response) == {tasks[name].uuid for name in expected}


def test_sequence_and_job_filters(admin_client_, admin, make_task):
    other = "zzzzz-8i9sb-bbbbbbbbbbbbbbb"
    a0 = make_task(admin, job_uuid=JOB, sequence=0)
    a1 = make_task(admin, job_uuid=JOB, sequence=1)
    b5 = make_task(admin, job_uuid=other, sequence=5)
    loose = make_task(admin)
    url = reverse(CHANGELIST)
    assert _listed(admin_client_.get(url, {"job": JOB})) == {a0.uuid, a1.uuid}
    assert _listed(admin_client_.get(url, {"job": "none"})) == {loose.uuid}
    assert _listed(admin_client_.get(url, {"sequence": "5"})) == {b5.uuid}
    assert _listed(admin_client_.get(url, {"sequence": "none"})) == {loose.uuid}
    assert _listed(admin_client_.get(url, {"job": JOB, "sequence": "1"})) == {a1.uuid}
    # the sequence choices follow the chosen job
    page = admin_client_.get(url, {"job": JOB}).content.decode()
    assert "sequence=5" not in page
    assert "sequence=1" in page


def test_search_is_anchored_on_uuid_and_job_uuid(admin_client_, admin, make_task):
    mine = make_task(admin, job_uuid=JOB)
    other = make_task(admin, job_uuid="zzzzz-8i9sb-bbbbbbbbbbbbbbb")
    url = reverse(CHANGELIST)
    assert _listed(admin_client_.get(url, {"q": mine.uuid})) == {mine.uuid}
    assert _listed(admin_client_.get(url, {"q": mine.uuid.upper()})) == {mine.uuid}
    assert _listed(admin_client_.get(url, {"q": JOB})) == {mine.uuid}
    assert _listed(admin_client_.get(url, {"q": "zzzzz-8i9sb-b"})) == {other.uuid}
    assert _listed(admin_client_.get(url, {"q": "aaaaaaa"})) == set()  # anchored: no infix


def test_plain_operator_sees_only_own_and_group_tasks(operator_client, alice, bob, make_task):
    own = make_task(alice)
    make_task(bob)
    assert _listed(operator_client.get(reverse(CHANGELIST))) == {own.uuid}


# --------------------------------------------------------------------------- change form


def test_change_form_shows_parameters_as_indented_json(admin_client_, admin, make_task):
    task = make_task(admin, parameters={"input": {"path": "a.txt"}})
    page = admin_client_.get(_change_url(task)).content.decode()
    assert "{\n  &quot;input&quot;: {\n    &quot;path&quot;: &quot;a.txt&quot;\n  }\n}" in page


def test_view_only_user_sees_formatted_json(alice, make_task):
    client = _staff_client(alice, "view_jobtask")
    task = make_task(alice, parameters={"input": "a.txt"})
    page = client.get(_change_url(task)).content.decode()
    assert '<pre class="jt-json">{\n  &quot;input&quot;: &quot;a.txt&quot;\n}</pre>' in page
    assert 'name="parameters"' not in page


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"parameters": '{"a": 1'}, "parameters", "Enter valid JSON"),
        ({"parameters": "[1, 2]"}, "parameters", "Enter a JSON object"),
        ({"parameters": '{"a": NaN}'}, "parameters", "Enter valid JSON"),
        ({"progress": "1.5"}, "progress", "out of range [0, 1]"),
        ({"sequence": str(2**31)}, "sequence", "out of range"),
        ({"owner_uuid": "nobody"}, "owner_uuid", "Owner uuid must be set to User or Group"),
    ],
)
def test_invalid_input_is_a_form_error_and_the_input_stays(
    operator_client, alice, make_task, changes, field, message
):
    task = make_task(alice, sequence=1, parameters={"keep": True})
    response = operator_client.post(_change_url(task), _form_post(task, **changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field]), errors
    page = response.content.decode()
    for value in changes.values():
        assert html.escape(value, quote=True) in page or value in page
    task.refresh_from_db()
    assert task.parameters == {"keep": True}
    assert not AuditEvent.objects.filter(object_uuid=task.uuid).exists()


def test_blocked_start_is_refused_on_the_form_naming_the_blocker(operator_client, alice, make_task):
    blocker = make_task(alice, job_uuid=JOB, sequence=0)
    task = make_task(alice, job_uuid=JOB, sequence=1)
    response = operator_client.post(
        _change_url(task),
        _form_post(task, started_at_0="2024-01-02", started_at_1="03:04:05", output="typed"),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["started_at"]
    assert "Task cannot start" in errors[0]
    assert blocker.uuid in errors[0]
    assert "typed" in response.content.decode()
    task.refresh_from_db()
    assert task.started_at is None


def test_manager_attribute_refusal_is_a_form_error_not_a_redirect(
    operator_client, alice, make_task
):
    """Even a crafted form with a manager-only field cannot change it."""
    from job_tasks.admin import JobTaskForm
    from job_tasks.identities import Actor

    task = make_task(alice, qsequence=5)
    form_class = type("F", (JobTaskForm,), {"actor": Actor.for_user(alice.user)})
    form = form_class(data={**_form_post(task), "qsequence": "99"}, instance=task)
    assert not form.is_valid()
    assert "Only a job manager may set or change qsequence" in str(form.errors)


def test_saving_goes_through_the_domain_and_is_audited(manager_client, manager, alice, make_task):
    task = make_task(alice, qsequence=5, parameters={"a": 1})
    response = manager_client.post(
        _change_url(task),
        _form_post(task, parameters='{"a": 2}', qsequence="7", job_uuid=JOB, progress="0.5"),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    task.refresh_from_db()
    assert (task.parameters, task.qsequence, task.job_uuid, task.progress) == (
        {"a": 2},
        7,
        JOB,
        0.5,
    )
    event = AuditEvent.objects.get(object_uuid=task.uuid)
    assert event.event_type == "update"
    assert event.user_uuid == manager.uuid
    assert event.old_attributes["parameters"] == {"a": 1}


def test_unchanged_form_saves_nothing(admin_client_, admin, make_task):
    task = make_task(admin, parameters={"a": 1}, sequence=2)
    modified = task.modified_at
    response = admin_client_.post(_change_url(task), _form_post(task))
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.modified_at == modified
    assert not AuditEvent.objects.filter(object_uuid=task.uuid).exists()


def test_change_form_links_to_the_job_and_shows_the_audit_log(admin_client_, admin):
    from job_tasks import operations
    from job_tasks.identities import Actor

    task = operations.create_task(Actor.for_user(admin.user), {"job_uuid": JOB})
    page = admin_client_.get(_change_url(task)).content.decode()
    assert reverse("admin:job_tasks_jobtask_job", args=[JOB]) in page
    assert '<table class="jt-audit">' in page
    assert "<td>create</td>" in page


def test_add_form_defaults_the_owner_to_the_user(operator_client, alice):
    page = operator_client.get(reverse("admin:job_tasks_jobtask_add")).content.decode()
    assert f'value="{alice.uuid}"' in page
    assert 'name="qsequence"' not in page


# --------------------------------------------------------------------------- actions


def _act(client: Client, action: str, tasks, **extra):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [task.pk for task in tasks], **extra},
        follow=True,
    )


def test_retry_action_acts_on_failed_tasks_only(operator_client, alice, make_task):
    failed = make_task(alice, success=False, started_at=timezone.now(), output="x")
    done = make_task(alice, success=True)
    response = _act(operator_client, "retry", [failed, done])
    text = _messages(response)
    assert "1 task sent back to the queue." in text
    assert "1 selected task skipped (not failed)." in text
    failed.refresh_from_db()
    done.refresh_from_db()
    assert (failed.success, failed.started_at, failed.output) == (None, None, None)
    assert done.success is True
    assert AuditEvent.objects.filter(object_uuid=failed.uuid, event_type="retry").exists()


def test_mark_failed_asks_first_then_fails_unfinished_tasks(operator_client, alice, make_task):
    now = timezone.now()
    running = make_task(alice, started_at=now, lease_expires_at=now + timedelta(hours=1))
    todo = make_task(alice)
    done = make_task(alice, success=True)
    child = make_task(alice, created_by_job_task_uuid=running.uuid)

    confirm = _act(operator_client, "mark_failed", [running, todo, done])
    page = confirm.content.decode()
    assert "This will mark 2 unfinished tasks as failed." in page
    assert "1 task they queued (their direct children) will be deleted" in page
    assert "1 selected task is already finished" in page
    running.refresh_from_db()
    assert running.success is None  # nothing happens before the confirmation

    response = _act(operator_client, "mark_failed", [running, todo, done], post="yes")
    text = _messages(response)
    assert "2 tasks marked as failed." in text
    assert "1 selected task skipped (already finished)." in text
    running.refresh_from_db()
    todo.refresh_from_db()
    assert running.success is False
    assert running.finished_at is not None
    assert running.lease_expires_at is None
    assert todo.success is False
    assert todo.finished_at is None
    assert not JobTask.objects.filter(pk=child.pk).exists()
    assert AuditEvent.objects.filter(object_uuid=child.uuid, event_type="delete").exists()


def test_release_expired_leases_action(operator_client, alice, make_task):
    now = timezone.now()
    expired = make_task(alice, started_at=now, lease_expires_at=now - timedelta(seconds=5))
    live = make_task(alice, started_at=now, lease_expires_at=now + timedelta(hours=1))
    response = _act(operator_client, "release_expired_leases", [expired, live])
    text = _messages(response)
    assert "1 expired lease released: 1 task back in the queue, 0 failed" in text
    assert "1 selected task skipped (not on an expired lease)." in text
    expired.refresh_from_db()
    live.refresh_from_db()
    assert expired.started_at is None
    assert expired.expired_leases == 1
    assert live.lease_expires_at is not None

    response = _act(operator_client, "release_expired_leases", [live])
    assert "No selected task is running on an expired lease." in _messages(response)


def test_actions_need_the_change_permission(alice, make_task):
    client = _staff_client(alice, "view_jobtask")
    make_task(alice)
    response = client.get(reverse(CHANGELIST))
    assert 'value="retry"' not in response.content.decode()


# --------------------------------------------------------------------------- per-job page


def _job_url(job: str = JOB) -> str:
    return reverse("admin:job_tasks_jobtask_job", args=[job])


def test_job_view_groups_tasks_by_level_with_the_summary(admin_client_, admin, make_task):
    now = timezone.now()
    make_task(admin, job_uuid=JOB, sequence=0, success=True)
    make_task(admin, job_uuid=JOB, sequence=0, success=True)
    make_task(admin, job_uuid=JOB, sequence=1, started_at=now, progress=0.5)
    make_task(admin, job_uuid=JOB, sequence=1, success=False)
    make_task(admin, job_uuid=JOB, sequence=2)
    make_task(admin, job_uuid="zzzzz-8i9sb-bbbbbbbbbbbbbbb", sequence=0)
    response = admin_client_.get(_job_url())
    assert response.status_code == 200
    summary = response.context["summary"]
    assert (summary["todo"], summary["running"], summary["done"], summary["failed"]) == (1, 1, 2, 1)
    levels = response.context["levels"]
    assert [level["level"] for level in levels] == [0, 1, 2]
    assert [len(level["tasks"]) for level in levels] == [2, 2, 1]
    assert [level["total"] for level in levels] == [2, 2, 1]
    assert sum(level["done"] for level in levels) == summary["done"]
    assert sum(level["failed"] for level in levels) == summary["failed"]


def test_job_view_costs_constant_queries_and_caps_rows_per_level(
    admin_client_, admin, make_task, monkeypatch
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from job_tasks import admin as job_tasks_admin

    monkeypatch.setattr(job_tasks_admin, "TASKS_PER_LEVEL", 3)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client_.get(_job_url()).status_code == 200
        return len(captured)

    for level in range(2):
        make_task(admin, job_uuid=JOB, sequence=level)
    before = count()
    for level in range(2):
        for _ in range(10):
            make_task(admin, job_uuid=JOB, sequence=level)
    assert count() == before
    response = admin_client_.get(_job_url())
    assert [len(level["tasks"]) for level in response.context["levels"]] == [3, 3]
    assert "and 8 more tasks at this level" in response.content.decode()


def test_job_view_is_404_for_a_job_you_cannot_see(operator_client, bob, make_task):
    make_task(bob, job_uuid=JOB)
    assert operator_client.get(_job_url()).status_code == 404


# --------------------------------------------------------------------------- tokens and roles


def test_token_status_filter(admin_client_, alice, bob):
    from job_tasks.models import ApiToken as Token

    Token.objects.filter(user=bob.user).update(revoked_at=timezone.now())
    url = reverse("admin:job_tasks_apitoken_changelist")
    usable = admin_client_.get(url, {"status": "usable"}).context["cl"].result_list
    revoked = admin_client_.get(url, {"status": "revoked"}).context["cl"].result_list
    assert alice.user in {token.user for token in usable}
    assert {token.user for token in revoked} == {bob.user}


def test_roles_page_grants_and_takes_back_the_job_manager_role(admin_client_, alice):
    from job_tasks.identities import is_manager

    url = reverse("admin:job_tasks_apitoken_roles")
    name = alice.user.get_username()
    response = admin_client_.post(url, {"username": name, "grant": "1"}, follow=True)
    assert "is now a job manager" in _messages(response)
    alice.user = type(alice.user)._default_manager.get(pk=alice.user.pk)
    assert is_manager(alice.user)
    assert name in response.content.decode()
    # the API agrees at once
    assert alice.client.get("/arvados/v1/users/current").json()["is_job_manager"] is True

    response = admin_client_.post(url, {"username": name, "revoke": "1"}, follow=True)
    assert "is no longer a job manager" in _messages(response)
    alice.user = type(alice.user)._default_manager.get(pk=alice.user.pk)
    assert not is_manager(alice.user)


def test_roles_page_needs_the_right_to_change_users(manager):
    client = _staff_client(manager, "view_apitoken", "change_apitoken")
    assert client.get(reverse("admin:job_tasks_apitoken_roles")).status_code == 403
    page = client.get(reverse("admin:job_tasks_apitoken_changelist")).content.decode()
    assert reverse("admin:job_tasks_apitoken_roles") not in page


# --------------------------------------------------------------------------- display units


def test_display_helpers():
    from job_tasks.admin import AtLeast, progress_bar_html, stacked_bar_html, state_badge_html

    assert state_badge_html("failed") == '<span class="jt-badge jt-failed">failed</span>'
    assert "width: 100%" in progress_bar_html(None, "done")
    assert "–" in progress_bar_html(None, "todo")
    assert "width: 0%" in progress_bar_html(-1, "running")
    bar = stacked_bar_html({"todo": 2, "running": 1, "done": 1, "failed": 0}, 0.375)
    assert "jt-bar-done" in bar
    assert "width: 25.00%" in bar
    assert "jt-bar-failed" not in bar
    assert ">38%<" in bar
    assert str(AtLeast(10_001)) == "10000+"
    assert AtLeast(10_001) > 100


def test_date_hierarchy_offers_the_days_between_first_and_last_without_distinct(
    admin_client_, admin, make_task
):
    from datetime import datetime

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tz = timezone.get_current_timezone()
    for day in (3, 5):
        make_task(admin, created_at=datetime(2024, 5, day, 12, tzinfo=tz))
    with CaptureQueriesContext(connection) as captured:
        response = admin_client_.get(reverse(CHANGELIST))
    assert not [q for q in captured.captured_queries if "DISTINCT" in q["sql"].upper()]
    page = response.content.decode()
    for day in (3, 4, 5):
        assert f"created_at__day={day}&amp;" in page or f'created_at__day={day}"' in page
    assert "created_at__day=6" not in page

    make_task(admin, created_at=datetime(2025, 1, 1, 12, tzinfo=tz))
    page = admin_client_.get(reverse(CHANGELIST)).content.decode()
    assert "created_at__year=2024" in page
    assert "created_at__year=2025" in page
    page = admin_client_.get(reverse(CHANGELIST), {"created_at__year": "2024"}).content.decode()
    assert "created_at__month=5" in page
    assert "created_at__month=4" not in page
    response = admin_client_.get(
        reverse(CHANGELIST),
        {"created_at__year": "2024", "created_at__month": "5", "created_at__day": "3"},
    )
    assert len(_listed(response)) == 1
