"""The admin in a real browser: Playwright driving Debian's headless Chromium.

Chromium comes from Debian (``apt-get install chromium``; ``scripts/test`` installs it
when missing), never from Playwright's own download. These tests fail, never skip, without it.
They log in as a job manager and as a plain operator, use the filters, the search,
actions and the change form, and save the screenshots the README shows
(``docs/img/``). A first, browserless test checks that every image the README shows is
a PNG in the checkout, and one these tests write.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from job_tasks import uuids
from job_tasks.identities import group_uuid, user_uuid
from job_tasks.models import AuditEvent, JobTask, next_qsequence
from job_tasks.signals import manager_group
from tests.conftest import new_user

CHROMIUM = Path("/usr/bin/chromium")
README = Path(__file__).resolve().parent.parent / "README.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Where screenshots go: a temporary folder, or ``$JOB_TASKS_SCREENSHOTS`` to refresh the
#: README's images (``JOB_TASKS_SCREENSHOTS=docs/img scripts/test -k browser``), so that
#: ordinary runs leave the checkout clean.
SCREENSHOTS = Path(
    os.environ.get("JOB_TASKS_SCREENSHOTS") or tempfile.mkdtemp(prefix="job-tasks-screens-")
)
PASSWORD = "correct horse battery staple"
OPERATORS_GROUP = "job task operators"
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_image_the_readme_shows_is_a_screenshot_png_in_the_checkout() -> None:
    shown = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    assert shown, "README.md shows no image"
    written = set(re.findall(r'screenshot\(page, "([^"]+)"\)', Path(__file__).read_text()))
    for image in shown:
        path = README.parent / image
        assert path.is_file(), f"README.md shows {image}, which is missing"
        assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{image} is not a PNG"
        assert path.parent == README.parent / "docs" / "img", f"{image} is not in docs/img/"
        assert path.name in written, f"no browser test writes {path.name}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for this module's tests (Debian's, no download).

    Module-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop
    running in the main thread while it is open, and Django then keeps that thread's
    database connections apart from the ones it uses without a loop. Left open for the
    rest of the session, a later test's ``connections.close_all()`` missed the open
    connection, and processes forked after it shared one socket.
    """
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium "
            "(apt-get install -y chromium chromium-driver; scripts/test does)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests
    # make between page actions are still plain synchronous calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000}, base_url=live_server.url, locale="en-US"
    )
    context.set_default_timeout(TIMEOUT_MS)
    # The admin's navigation sidebar closed: the task table gets the width.
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    yield page
    context.close()


@dataclass
class Site:
    """The people and tasks of a small cluster, as an operator would find it."""

    manager: Any
    operator: Any
    job: str
    operator_job: str
    tasks: dict[str, JobTask]


def _staff(name: str, *groups: Group) -> Any:
    user = new_user(name, password=PASSWORD, is_staff=True)
    user.groups.add(*groups)
    return user


@pytest.fixture
def site(transactional_db: None) -> Site:
    """Two operators and three jobs in every state.

    Admin access is Django's: ``is_staff`` and the job task model permissions, here
    through a ``job task operators`` group. ``ada`` is also in ``job managers``;
    ``olaf`` is not, so he sees only his and his team's tasks.
    """
    operators, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    operators.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="job_tasks",
            codename__in=["view_jobtask", "change_jobtask", "add_jobtask", "delete_jobtask"],
        )
    )
    team, _ = Group.objects.get_or_create(name="genomics team")
    manager = _staff("ada", operators, manager_group())
    operator = _staff("olaf", operators, team)
    ada, olaf, genomics = user_uuid(manager), user_uuid(operator), group_uuid(team)

    now = timezone.now().replace(microsecond=0)
    tasks: dict[str, JobTask] = {}

    def task(name: str, owner: str, job: str | None, sequence: int, state: str, **extra: Any):
        minutes = len(tasks)
        values: dict[str, Any] = {
            "uuid": uuids.new_uuid(uuids.JOB_TASK_INFIX),
            "owner_uuid": owner,
            "job_uuid": job,
            "sequence": sequence,
            "qsequence": next_qsequence("default"),
            "created_at": now - timedelta(hours=3) + timedelta(minutes=minutes),
            "modified_at": now - timedelta(minutes=60 - minutes),
            "modified_by_user_uuid": owner,
            "parameters": {"input": f"keep:{name}.fastq.gz", "chunk": minutes},
        }
        started = now - timedelta(minutes=90 - minutes)
        if state in ("running", "done", "failed"):
            values["started_at"] = started
            values["attempts"] = 1
        if state == "running":
            values["progress"] = extra.pop("progress", 0.4)
            values["claimed_by_user_uuid"] = owner
            values["lease_expires_at"] = now + timedelta(minutes=5)
        if state == "done":
            values.update(success=True, progress=1.0, finished_at=started + timedelta(minutes=7))
            values["output"] = f"keep:{name}-output"
        if state == "failed":
            values.update(success=False, progress=0.35, finished_at=started + timedelta(minutes=3))
        values.update(extra)
        tasks[name] = JobTask.objects.create(**values)
        return tasks[name]

    job, other, operator_job = (uuids.new_uuid(uuids.JOB_INFIX) for _ in range(3))
    for i in range(4):
        task(f"align-{i}", ada, job, 0, "done")
    task("merge-0", ada, job, 1, "done")
    task("merge-1", ada, job, 1, "running", progress=0.72)
    task("merge-2", ada, job, 1, "running", progress=0.18)
    task("merge-3", ada, job, 1, "failed")
    task("merge-4", ada, job, 1, "todo")
    for i in range(3):
        task(f"report-{i}", ada, job, 2, "todo")
    task("index-0", ada, other, 0, "done")
    task("index-1", ada, other, 0, "running", progress=0.55)
    task("index-2", ada, other, 0, "running", progress=0.1,
         lease_expires_at=now - timedelta(minutes=2))  # fmt: skip
    task("qc-0", olaf, operator_job, 0, "done")
    task("qc-1", olaf, operator_job, 0, "failed")
    task("qc-2", genomics, operator_job, 0, "running", progress=0.6)
    task("qc-summary", olaf, operator_job, 1, "todo")
    return Site(manager, operator, job, operator_job, tasks)


def login(page: Any, username: str) -> None:
    page.goto("/admin/login/?next=/admin/job_tasks/jobtask/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/job_tasks/jobtask/$"))


def rows(page: Any) -> Any:
    return page.locator("#result_list tbody tr")


def uuids_listed(page: Any) -> set[str]:
    return set(rows(page).locator("th a, td.field-uuid a").all_inner_texts())


def run_action(page: Any, action: str) -> None:
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    assert len(data) > 20_000, f"{path} looks blank ({len(data)} bytes)"


def test_browser_manager_filters_searches_and_sees_every_task(page: Any, site: Site) -> None:
    login(page, "ada")
    assert rows(page).count() == len(site.tasks)
    assert page.locator("#result_list .jt-badge.jt-failed").count() == 2
    assert page.locator("#result_list .jt-progress").count() >= 10
    screenshot(page, "admin-changelist.png")

    state_filter = page.locator('#changelist-filter details[data-filter-title="state"]')
    state_filter.get_by_role("link", name="failed", exact=True).click()
    page.wait_for_url(re.compile(r"state=failed"))
    assert uuids_listed(page) == {site.tasks["merge-3"].uuid, site.tasks["qc-1"].uuid}

    state_filter.get_by_role("link", name="todo, runnable now").click()
    page.wait_for_url(re.compile(r"state=runnable"))
    # Level 0 of the job is done, so merge-4 may run; the level-2 reports wait.
    assert site.tasks["merge-4"].uuid in uuids_listed(page)
    assert site.tasks["report-0"].uuid not in uuids_listed(page)

    page.goto("/admin/job_tasks/jobtask/")
    page.fill("#searchbar", site.job[:15])
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r"q="))
    job_tasks = {task.uuid for task in site.tasks.values() if task.job_uuid == site.job}
    assert uuids_listed(page) == job_tasks

    page.goto("/admin/job_tasks/jobtask/")
    page.fill("#searchbar", site.tasks["qc-1"].uuid)
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r"q="))
    assert uuids_listed(page) == {site.tasks["qc-1"].uuid}

    page.goto(f"/admin/job_tasks/jobtask/?job={site.job}")
    page.locator('#changelist-filter details[data-filter-title="sequence"]').get_by_role(
        "link", name="1", exact=True
    ).click()
    page.wait_for_url(re.compile(r"sequence=1"))
    assert len(uuids_listed(page)) == 5


def test_browser_manager_retries_and_fails_tasks_with_actions(page: Any, site: Site) -> None:
    login(page, "ada")
    failed, running, done = site.tasks["merge-3"], site.tasks["merge-1"], site.tasks["align-0"]
    for task in (failed, done):
        page.check(f'input.action-select[value="{task.pk}"]')
    run_action(page, "retry")
    message = page.locator("ul.messagelist li").first.inner_text()
    assert "1 task sent back to the queue" in message
    assert "1 selected task skipped (not failed)" in message
    failed.refresh_from_db()
    assert failed.success is None
    assert failed.started_at is None

    page.check(f'input.action-select[value="{running.pk}"]')
    run_action(page, "mark_failed")
    page.wait_for_selector("#mark-failed-tasks")
    assert running.uuid in page.locator("#mark-failed-tasks").inner_text()
    page.click("input[type=submit][value='Yes, mark them failed']")
    page.wait_for_selector("ul.messagelist")
    assert "1 task marked as failed" in page.locator("ul.messagelist").inner_text()
    running.refresh_from_db()
    assert running.success is False
    assert running.finished_at is not None
    assert running.lease_expires_at is None
    assert AuditEvent.objects.filter(object_uuid=running.uuid, event_type="update").exists()

    expired = site.tasks["index-2"]
    page.check(f'input.action-select[value="{expired.pk}"]')
    page.check(f'input.action-select[value="{site.tasks["index-1"].pk}"]')
    run_action(page, "release_expired_leases")
    assert "1 expired lease released" in page.locator("ul.messagelist").inner_text()
    expired.refresh_from_db()
    assert expired.started_at is None
    assert expired.lease_expires_at is None


def test_browser_plain_user_edits_through_the_domain_rules(page: Any, site: Site) -> None:
    login(page, "olaf")
    mine = {t.uuid for t in site.tasks.values() if t.job_uuid == site.operator_job}
    assert uuids_listed(page) == mine  # his own and his group's tasks, nobody else's

    task = site.tasks["qc-summary"]  # level 1: qc-1 failed at level 0, so it may not start
    page.get_by_role("link", name=task.uuid).click()
    page.wait_for_selector("#jobtask_form")
    assert page.locator("input[name=qsequence]").count() == 0  # the role's attributes
    assert page.locator("input[name=job_uuid]").count() == 0
    assert '"input": "keep:qc-summary.fastq.gz"' in page.input_value("textarea[name=parameters]")

    typed = '{"input": "keep:qc-summary.fastq.gz", "threads": 8'  # no closing brace
    page.fill("textarea[name=parameters]", typed)
    page.click("input[name=_save]")
    assert "Enter valid JSON" in page.locator(".field-parameters .errorlist").inner_text()
    assert page.input_value("textarea[name=parameters]") == typed  # input kept

    page.fill("textarea[name=parameters]", typed + "}")
    page.fill("input[name=started_at_0]", timezone.localdate().isoformat())
    page.fill("input[name=started_at_1]", "12:00:00")
    page.click("input[name=_save]")
    error = page.locator(".field-started_at .errorlist").inner_text()
    assert "Task cannot start" in error
    assert site.tasks["qc-1"].uuid in error
    assert page.input_value("input[name=started_at_1]") == "12:00:00"
    assert '"threads": 8' in page.input_value("textarea[name=parameters]")

    page.fill("input[name=started_at_0]", "")
    page.fill("input[name=started_at_1]", "")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    task.refresh_from_db()
    assert task.parameters == {"input": "keep:qc-summary.fastq.gz", "threads": 8}
    assert task.started_at is None
    event = AuditEvent.objects.filter(object_uuid=task.uuid).latest("id")
    assert event.event_type == "update"
    assert event.user_uuid == user_uuid(site.operator)

    page.goto(f"/admin/job_tasks/jobtask/{site.tasks['merge-1'].pk}/change/")
    assert page.locator("#jobtask_form").count() == 0  # not his: as if it did not exist


def test_browser_job_view_from_a_task(page: Any, site: Site) -> None:
    login(page, "ada")
    task = site.tasks["merge-1"]
    page.goto(f"/admin/job_tasks/jobtask/{task.pk}/change/")
    page.get_by_role("link", name="Job view").click()
    page.wait_for_selector("#job-summary")
    assert page.locator("#summary-done").inner_text() == "5"
    assert page.locator("#summary-running").inner_text() == "2"
    assert page.locator("#summary-failed").inner_text() == "1"
    assert page.locator("#summary-todo").inner_text() == "4"
    assert page.locator(".jt-level").count() == 3
    assert page.locator("#level-1 tbody tr").count() == 5
    assert task.uuid in page.locator("#level-1").inner_text()
    screenshot(page, "admin-job.png")
