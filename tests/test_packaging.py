"""Packaging acceptance: the built wheel ships the app, and installs into a fresh Django project.

The wheel is built once per module with ``pip wheel --no-deps``, installed with
``pip install --no-deps --target`` into a temporary ``site`` directory, and used by a
brand-new Django project (only auth, contenttypes and ``job_tasks`` installed, one
``include("job_tasks.urls")``) run in subprocesses: ``migrate``, ``job_tasks_token`` and a
real ``runserver`` that the API calls go to. Django, DRF and the other dependencies come
from the running interpreter's site-packages; ``job_tasks`` must come from the wheel.

Everything lives under ``tmp_path_factory`` with its own SQLite file, so the module is safe
under pytest-xdist and ignores ``DATABASE_URL``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
API_PATH = "/arvados/v1/job_tasks"
SUBPROCESS_TIMEOUT = 120  # seconds; generous ceiling, the whole module takes a few seconds
SERVER_START_TIMEOUT = 20.0  # seconds

SETTINGS_PY = """\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "fresh-project-test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "job_tasks",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}
"""

URLS_PY = """\
from django.urls import include, path

urlpatterns = [
    path("", include("job_tasks.urls")),
]
"""

MANAGE_PY = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


def _run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; fail the test with its output if it does not exit 0."""
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc.stdout


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(
    url: str, *, method: str = "GET", token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    """Send a request; return (status, decoded JSON body) for success and HTTP errors alike."""
    headers = {"Accept": "application/json"}
    data = None
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@dataclass(frozen=True)
class FreshProject:
    """A fresh Django project using the installed wheel."""

    site: Path
    project: Path
    env: dict[str, str]

    def manage(self, *args: str) -> str:
        return _run([sys.executable, "manage.py", *args], cwd=self.project, env=self.env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel once for the module, as ``pip wheel . --no-deps`` would."""
    out = tmp_path_factory.mktemp("wheelhouse")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(REPO_ROOT),
        ]
    )
    wheels = list(out.glob("django_job_tasks-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {os.listdir(out)}"
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


@pytest.fixture(scope="module")
def fresh_project(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> FreshProject:
    """Install the wheel into ``<tmp>/site`` and write a fresh project next to it."""
    root = tmp_path_factory.mktemp("fresh")
    site = root / "site"
    project = root / "project"
    project.mkdir()
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ]
    )
    (project / "settings.py").write_text(SETTINGS_PY)
    (project / "urls.py").write_text(URLS_PY)
    (project / "manage.py").write_text(MANAGE_PY)

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONHOME"}
    }
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(project)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return FreshProject(site=site, project=project, env=env)


@pytest.fixture(scope="module")
def migrated(fresh_project: FreshProject) -> FreshProject:
    fresh_project.manage("migrate", "--no-input", "-v", "0")
    return fresh_project


@pytest.fixture(scope="module")
def server(migrated: FreshProject) -> Iterator[str]:
    """``manage.py runserver --noreload`` on a free port; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = migrated.project / "runserver.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=migrated.project,
            env=migrated.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"runserver exited {proc.returncode}:\n{log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"runserver did not answer within {SERVER_START_TIMEOUT:.0f} s:\n"
                        f"{log_path.read_text()}"
                    )
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- 1. The wheel's contents -------------------------------------------------------------


def app_source_files() -> set[str]:
    """The files of ``job_tasks/`` in the checkout, as the wheel should ship them.

    ``git ls-files``: the tracked files, plus untracked ones that ``.gitignore`` does
    not exclude (hatchling ships those too, so a new migration not yet committed
    counts), minus tracked files deleted from the working tree. Outside a git checkout
    (an unpacked sdist): every file under ``job_tasks/`` but compiled bytecode.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "job_tasks"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=True,
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = [
            path.relative_to(REPO_ROOT).as_posix()
            for path in (REPO_ROOT / "job_tasks").rglob("*")
            if "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}
        ]
    return {name for name in listed if name and (REPO_ROOT / name).is_file()}


def test_wheel_ships_every_file_of_the_app_and_nothing_else(wheel_names: set[str]) -> None:
    expected = app_source_files()
    # The listing itself is sound: code, every migration, templates and the type marker.
    migrations = {n for n in expected if re.fullmatch(r"job_tasks/migrations/\d{4}_\w+\.py", n)}
    assert "job_tasks/migrations/0001_initial.py" in migrations
    assert any(n.startswith("job_tasks/templates/") for n in expected)
    assert {"job_tasks/urls.py", "job_tasks/py.typed"} <= expected

    shipped = {n for n in wheel_names if n.startswith("job_tasks/") and not n.endswith("/")}
    assert sorted(expected - shipped) == [], "missing from the wheel"
    assert sorted(shipped - expected) == [], "in the wheel but not in the checkout"


def test_wheel_ships_only_the_app(wheel_names: set[str]) -> None:
    strays = sorted(
        n for n in wheel_names if n.startswith(("jobtasks_project/", "tests/", "scripts/", ".ci/"))
    )
    assert strays == []
    top_level = {n.split("/", 1)[0] for n in wheel_names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"job_tasks"}


# --- 2. A fresh project using the installed wheel ----------------------------------------


def test_fresh_project_imports_the_installed_wheel(fresh_project: FreshProject) -> None:
    out = _run(
        [sys.executable, "-c", "import job_tasks; print(job_tasks.__file__)"],
        cwd=fresh_project.project,
        env=fresh_project.env,
    )
    imported = Path(out.strip()).resolve()
    assert imported.is_relative_to(fresh_project.site.resolve()), imported
    assert not imported.is_relative_to(REPO_ROOT), imported


def test_fresh_project_serves_the_api(migrated: FreshProject, server: str) -> None:
    lines = migrated.manage("job_tasks_token", "alice", "--create-user").splitlines()
    assert len(lines) == 1, lines
    token = lines[0].strip()
    assert token

    url = server + API_PATH
    status, created = _request(url, method="POST", token=token, body={"job_task": {"sequence": 1}})
    assert status == 200, created
    assert created["kind"] == "arvados#jobTask"
    assert created["sequence"] == 1

    status, listing = _request(url, token=token)
    assert status == 200, listing
    assert [item["uuid"] for item in listing["items"]] == [created["uuid"]]

    status, refused = _request(url)
    assert status == 401, refused
    assert refused["errors"] == ["Not logged in"]


# --- 3. The reference project with DEBUG off serves its static files ------------------

STATIC_PROBE = """\
import json
import re
import sys
from wsgiref.util import setup_testing_defaults

from jobtasks_project.wsgi import application


def get(path):
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_HOST": "localhost"}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["type"] = dict(headers).get("Content-Type", "")

    answer["body"] = b"".join(application(environ, start_response)).decode("latin-1")
    return answer


page = get("/api/docs/")
assets = sorted(set(re.findall(r'(/static/[^"?]+)', page.pop("body"))))
answers = {path: get(path) for path in [*sys.argv[1:], *assets]}
print(json.dumps({"page": page, "assets": assets, "answers": answers}))
"""


def test_project_with_debug_off_serves_static_files_after_collectstatic(
    tmp_path: Path,
) -> None:
    """As under gunicorn: the WSGI application, DEBUG off, after ``collectstatic``.

    WhiteNoise serves the admin's CSS and every asset the Swagger UI page links to;
    without it (Django serves static files only with DEBUG on) they are 404.
    """
    import django.contrib.admin

    static_root = tmp_path / "static"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DEBUG", "DJANGO_SETTINGS_MODULE", "PYTHONPATH"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="jobtasks_project.settings",
        PYTHONPATH=str(REPO_ROOT),
        SECRET_KEY="static-files-test-only",
        ALLOWED_HOSTS="localhost",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STATIC_ROOT=str(static_root),
        PYTHONDONTWRITEBYTECODE="1",
    )
    manage = [sys.executable, str(REPO_ROOT / "manage.py")]
    _run([*manage, "collectstatic", "--noinput", "-v", "0"], cwd=tmp_path, env=env)
    assert (static_root / "admin" / "css" / "base.css").is_file()

    css = "/static/admin/css/base.css"
    probe = _run(
        [sys.executable, "-c", STATIC_PROBE, css, "/static/nope.css"], cwd=tmp_path, env=env
    )
    result = json.loads(probe)

    assert result["page"]["status"] == 200, result["page"]
    answers = result["answers"]
    admin_css = Path(django.contrib.admin.__file__).parent / "static/admin/css/base.css"
    assert answers[css]["status"] == 200
    assert answers[css]["type"].startswith("text/css")
    assert answers[css]["body"] == admin_css.read_bytes().decode("latin-1")
    assert answers["/static/nope.css"]["status"] == 404
    swagger = [path for path in result["assets"] if "swagger-ui" in path]
    assert any(path.endswith("swagger-ui-bundle.js") for path in swagger), result["assets"]
    assert any(path.endswith("swagger-ui.css") for path in swagger), result["assets"]
    assert {path: answers[path]["status"] for path in result["assets"]} == dict.fromkeys(
        result["assets"], 200
    )
