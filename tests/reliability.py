"""Helpers of the reliability tests and ``bench/load.py``: real app servers, a database
link that can be cut, raw HTTP clients, and the audit-log replay.

- ``AppServer``: gunicorn serving the app on loopback, in its own process group, so
  that it can be SIGKILLed whole and started again on the same port.
- ``Proxy``: a TCP relay on loopback between the app server and PostgreSQL. ``cut()``
  drops every relayed connection and refuses new ones; ``restore()`` accepts again.
  For the app this is the database server going down and coming back, without
  touching the database server itself.
- ``call``: one HTTP request on a fresh connection; an ``Outcome`` says whether it
  was answered, refused (never reached the app) or cut off (sent, never answered).
- ``replay`` / ``table``: the rows the audit log describes, and the rows there are.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(host: str | None = None, port: int | None = None) -> str:
    """The URL of the database this process uses (the test database), optionally
    reached through another host and port (a ``Proxy``)."""
    from django.db import connections

    config = connections["default"].settings_dict
    user = config["USER"] or ""
    if config["PASSWORD"]:
        user += f":{config['PASSWORD']}"
    host = host or config["HOST"] or "127.0.0.1"
    port = port or int(config["PORT"] or 5432)
    return f"postgres://{user}@{host}:{port}/{config['NAME']}"


# --------------------------------------------------------------------------- app server


class AppServer:
    """gunicorn on ``127.0.0.1:<port>``, ``workers`` sync workers, talking to ``db_url``."""

    def __init__(self, db_url: str, *, workers: int = 2, settings: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "DJANGO_SETTINGS_MODULE": settings or "tests.reliability_settings",
            "JOB_TASKS_BASE_SETTINGS": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
            "SECRET_KEY": "tests-only-not-secret",
            "ALLOWED_HOSTS": "127.0.0.1",
            "PYTHONPATH": str(ROOT),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "jobtasks_project.wsgi:application",
                f"--bind=127.0.0.1:{self.port}",
                f"--workers={self.workers}",
                "--graceful-timeout=2",
                "--log-level=warning",
            ],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,  # its own process group: master and workers
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            if call(self.url, "GET", "/arvados/v1/job_tasks", timeout=2).status == 401:
                return
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer in time")

    def worker_pids(self) -> set[int]:
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in path.read_text().split()}

    def kill(self) -> None:
        """SIGKILL the master and every worker at once (no cleanup of any kind)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        # the workers are gone too: their group is the master's
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


# --------------------------------------------------------------------------- database link


class Proxy:
    """Relays ``127.0.0.1:<port>`` to the database server; ``cut()`` / ``restore()``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one, as a stopped server does."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut in between
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# --------------------------------------------------------------------------- HTTP


@dataclass
class Outcome:
    """What one request got: ``status`` (None when unanswered) and why not."""

    status: int | None
    body: Any = None
    refused: bool = False  # never reached a server: certainly not done
    started: float = 0.0
    seconds: float = 0.0

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def in_doubt(self) -> bool:
        """Sent, but the connection died before the answer: done, or not at all."""
        return self.status is None and not self.refused


def call(
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    timeout: float = 15,
) -> Outcome:
    """One request on a new connection (no retry, no keep-alive)."""
    host, port = base.removeprefix("http://").split(":")
    headers = {"Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        try:
            connection.connect()
        except OSError:
            return Outcome(None, refused=True, started=started)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            return Outcome(None, started=started, seconds=time.monotonic() - started)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return Outcome(response.status, parsed, started=started, seconds=time.monotonic() - started)
    finally:
        connection.close()


def is_envelope(body: Any) -> bool:
    """The Arvados error envelope: ``{"errors": [str, ...], "error_token": str}``."""
    return (
        isinstance(body, dict)
        and isinstance(body.get("errors"), list)
        and bool(body["errors"])
        and all(isinstance(message, str) for message in body["errors"])
        and isinstance(body.get("error_token"), str)
    )


# --------------------------------------------------------------------------- audit log


def table() -> dict[str, dict[str, Any]]:
    """Every task row, as the audit log records a task (``audit.snapshot``)."""
    from job_tasks.audit import snapshot
    from job_tasks.models import JobTask

    return {task.uuid: snapshot(task) for task in JobTask.objects.order_by("id").iterator()}


def replay() -> dict[str, dict[str, Any]]:
    """The table the audit log describes, read in ``id`` order.

    Checks on the way that each event follows the last one of its task: its
    ``old_attributes`` are the state that event left (no change went unrecorded), a
    create comes only for a task that is not there, a delete leaves nothing.
    """
    from job_tasks.models import AuditEvent

    state: dict[str, dict[str, Any]] = {}
    for event in AuditEvent.objects.order_by("id").iterator():
        uuid = event.object_uuid
        if event.old_attributes is not None:
            assert state.get(uuid) == event.old_attributes, (event.pk, event.event_type)
        elif event.new_attributes is not None:  # a create (or a restore)
            assert uuid not in state, (event.pk, event.event_type)
        if event.event_type == AuditEvent.Event.DELETE:
            assert event.new_attributes is None
            state.pop(uuid)
        elif event.new_attributes is not None:
            state[uuid] = event.new_attributes
    return state
