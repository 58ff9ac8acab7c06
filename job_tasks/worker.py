"""The reference worker: claims tasks over HTTP and runs a command for each (issue 5).

It talks to the API only over HTTP (``urllib``), so workers can run on any machine;
``manage.py job_tasks_worker`` is its command line. For each claimed task it runs the
command with the task in its environment, renews the lease while the command runs,
reports ``progress`` (lines ``progress: 0.5`` on the command's stderr), and records
stdout as ``output`` and the exit status as ``success``. ``stop()`` (SIGTERM) ends the
running commands and releases their leases, so no task waits for a lease to expire.

A result is recorded only under a live lease of the worker's own claim: if the lease
was secured more than half its length ago, the worker first renews it, naming its
``attempt``; if the lease was lost meanwhile (expired, or claimed again), the result
is dropped rather than recorded twice, and the task runs again elsewhere.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

#: Lines of the command's stderr that report progress: ``progress: 0.25`` (or ``=``).
PROGRESS_PREFIX = "progress"
#: Statuses worth trying again: the server or a proxy is busy or restarting.
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


class ApiError(Exception):
    """The API refused a request (``status`` and the ``errors`` of its envelope)."""

    def __init__(self, status: int, messages: list[str]) -> None:
        self.status = status
        self.messages = messages
        super().__init__(f"HTTP {status}: {'; '.join(messages)}")

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES


class Client:
    """The few calls a worker makes, over plain HTTP with a bearer token."""

    def __init__(self, api: str, token: str, *, timeout: float = 30.0) -> None:
        root = api.rstrip("/")
        for suffix in ("/arvados/v1/job_tasks", "/arvados/v1"):
            root = root.removesuffix(suffix)
        self.base = f"{root}/arvados/v1/job_tasks"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str = "", body: dict[str, Any] | None = None) -> Any:
        url = self.base + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                messages = json.load(exc).get("errors") or [exc.reason]
            except (ValueError, AttributeError):
                messages = [str(exc.reason)]
            raise ApiError(exc.code, [str(message) for message in messages]) from None

    def claim(self, job_uuid: str | None, lease_seconds: int) -> dict[str, Any] | None:
        body: dict[str, Any] = {"limit": 1, "lease_seconds": lease_seconds}
        if job_uuid:
            body["job_uuid"] = job_uuid
        items = self.call("POST", "/claim", body)["items"]
        return items[0] if items else None

    def renew(self, uuid: str, attempt: int, lease_seconds: int) -> dict[str, Any]:
        body = {"attempt": attempt, "lease_seconds": lease_seconds}
        return self.call("POST", f"/{uuid}/renew", body)

    def release(self, uuid: str, attempt: int) -> dict[str, Any]:
        return self.call("POST", f"/{uuid}/release", {"attempt": attempt})

    def update(self, uuid: str, attributes: dict[str, Any]) -> dict[str, Any]:
        return self.call("PUT", f"/{uuid}", {"job_task": attributes})

    def summary(self, job_uuid: str | None) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode({'job_uuid': job_uuid})}" if job_uuid else ""
        return self.call("GET", f"/summary{query}")


def is_transient(exc: BaseException) -> bool:
    """Network trouble or a busy server: worth another try later."""
    if isinstance(exc, ApiError):
        return exc.transient
    return isinstance(exc, (urllib.error.URLError, OSError, TimeoutError, ValueError))


@dataclass
class WorkerOptions:
    api: str
    token: str
    command: list[str]
    job_uuid: str | None = None
    concurrency: int = 1
    lease_seconds: int = 60
    poll_interval: float = 2.0
    drain: bool = False
    grace_seconds: float = 10.0


@dataclass
class Stats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    released: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


class Worker:
    """``concurrency`` threads, each claiming one task at a time and running the command."""

    def __init__(self, options: WorkerOptions, *, log: IO[str] | None = None) -> None:
        self.options = options
        self.client = Client(options.api, options.token)
        self.stopping = threading.Event()
        self.stats = Stats()
        self.fatal: Exception | None = None
        self._log_stream = log or sys.stderr
        self._log_lock = threading.Lock()

    def log(self, message: str) -> None:
        with self._log_lock:
            self._log_stream.write(f"job_tasks_worker: {message}\n")
            self._log_stream.flush()

    def stop(self, *_: Any) -> None:
        """Stop claiming; end the running commands and release their leases."""
        self.stopping.set()

    def run(self) -> int:
        """Work until stopped (or, with ``drain``, until nothing is left). 0 unless fatal."""
        threads = [
            threading.Thread(target=self._loop, name=f"worker-{n}", daemon=True)
            for n in range(self.options.concurrency)
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.2)
        s = self.stats
        self.log(
            f"done: {s.claimed} claimed, {s.succeeded} succeeded, {s.failed} failed, "
            f"{s.released} released, {s.lost} lost"
        )
        return 1 if self.fatal is not None else 0

    # One thread -----------------------------------------------------------------

    def _loop(self) -> None:
        options = self.options
        while not self.stopping.is_set():
            asked = time.monotonic()  # the lease runs from no earlier than this
            try:
                task = self.client.claim(options.job_uuid, options.lease_seconds)
            except Exception as exc:
                if not is_transient(exc):
                    self.log(f"giving up: claim refused: {exc}")
                    self.fatal = exc
                    self.stopping.set()
                    return
                self.log(f"claim failed, will retry: {exc}")
                self._pause()
                continue
            if task is None:
                if options.drain and self._nothing_left():
                    return
                self._pause()
                continue
            self.stats.add("claimed")
            try:
                self._run(task, asked)
            except Exception as exc:  # keep the thread alive: the lease will expire
                self.log(f"task {task['uuid']}: {exc!r}")

    def _pause(self) -> None:
        interval = self.options.poll_interval
        self.stopping.wait(interval * random.uniform(0.5, 1.5))

    def _nothing_left(self) -> bool:
        try:
            summary = self.client.summary(self.options.job_uuid)
        except Exception as exc:
            self.log(f"summary failed: {exc}")
            return False
        return summary["running"] == 0 and summary["runnable"] == 0

    def _environment(self, task: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TASK_UUID=task["uuid"],
            TASK_SEQUENCE="" if task["sequence"] is None else str(task["sequence"]),
            TASK_QSEQUENCE="" if task["qsequence"] is None else str(task["qsequence"]),
            TASK_ATTEMPT=str(task["attempt"]),
            TASK_PARAMETERS=json.dumps(task["parameters"] or {}),
            JOB_UUID=task["job_uuid"] or "",
            JOB_TASKS_API_URL=self.client.base.removesuffix("/job_tasks"),
            ARVADOS_API_HOST=urllib.parse.urlsplit(self.client.base).netloc,
            ARVADOS_API_TOKEN=self.options.token,
        )
        return env

    def _run(self, task: dict[str, Any], secured: float) -> None:
        """Run the command for ``task``, whose lease was secured at ``secured`` (monotonic)."""
        uuid, attempt = task["uuid"], task["attempt"]
        options = self.options
        try:
            process = subprocess.Popen(
                options.command,
                env=self._environment(task),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # our signals are ours; we end the command ourselves
            )
        except OSError as exc:  # no such command: every task would fail the same way
            self.log(f"giving up: cannot run {options.command[0]!r}: {exc}")
            self._release(uuid, attempt)
            self.fatal = exc
            self.stopping.set()
            return
        stdout: list[bytes] = []
        progress = _Progress()
        readers = [
            threading.Thread(target=_collect, args=(process.stdout, stdout.append), daemon=True),
            threading.Thread(
                target=_collect, args=(process.stderr, progress.feed(self.log)), daemon=True
            ),
        ]
        for reader in readers:
            reader.start()
        renew_every = max(options.lease_seconds / 3, 0.2)
        next_renewal = time.monotonic() + renew_every
        reported: float | None = None
        while not _exited(process, timeout=0.25):
            if self.stopping.is_set():
                _end(process, options.grace_seconds)
                self._release(uuid, attempt)
                return
            if time.monotonic() >= next_renewal:
                asked = time.monotonic()
                renewed = self._renew(uuid, attempt)
                if renewed is False:
                    _end(process, options.grace_seconds)
                    self.stats.add("lost")
                    return
                if renewed:
                    secured = asked
                next_renewal = time.monotonic() + renew_every
            if progress.value is not None and progress.value != reported:
                reported = progress.value
                self._try(functools.partial(self.client.update, uuid, {"progress": reported}))
        for reader in readers:
            reader.join()
        if self.stopping.is_set() and process.returncode < 0:
            self._release(uuid, attempt)  # ended by our own stop, not by its own doing
            return
        output = b"".join(stdout)
        self._report(uuid, attempt, process.returncode, output, progress.value, secured)

    def _renew(self, uuid: str, attempt: int) -> bool | None:
        """True if renewed; False when the lease is lost (refused); None on a transient
        error (the lease may still hold: try again later)."""
        try:
            self.client.renew(uuid, attempt, self.options.lease_seconds)
        except Exception as exc:
            if is_transient(exc):
                self.log(f"task {uuid}: renewal failed, will retry: {exc}")
                return None
            self.log(f"task {uuid}: lease lost: {exc}")
            return False
        return True

    def _release(self, uuid: str, attempt: int) -> None:
        if self._try(lambda: self.client.release(uuid, attempt)):
            self.stats.add("released")
            self.log(f"task {uuid}: released")

    def _report(
        self,
        uuid: str,
        attempt: int,
        returncode: int,
        output: bytes,
        progress: float | None,
        secured: float,
    ) -> None:
        """Record the result, under a lease of this attempt known to be live.

        A lease secured less than half its length ago is live (only a person changing
        the task by hand could have ended it); an older one is renewed first, naming
        the attempt, so that a worker whose lease ran out never records a result.
        """
        success = returncode == 0
        attributes: dict[str, Any] = {
            "success": success,
            "output": output.decode("utf-8", "replace").replace("\x00", ""),
        }
        if success:
            attributes["progress"] = 1.0
        elif progress is not None:
            attributes["progress"] = progress
        half = self.options.lease_seconds / 2
        for _ in range(5):
            try:
                if time.monotonic() - secured > half:
                    asked = time.monotonic()
                    self.client.renew(uuid, attempt, self.options.lease_seconds)
                    secured = asked
                self.client.update(uuid, attributes)
                break
            except ApiError as exc:
                if exc.status == 413 and "output" in attributes:
                    attributes = {"success": False, "output": f"output too large: {exc}"}
                    continue
                if not exc.transient:
                    self.log(f"task {uuid}: result dropped, lease lost: {exc}")
                    self.stats.add("lost")
                    return
                time.sleep(1)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                time.sleep(1)
        else:
            self.log(f"task {uuid}: could not report the result; the lease will expire")
            self.stats.add("lost")
            return
        self.stats.add("succeeded" if success else "failed")

    def _try(self, call: Callable[[], Any]) -> bool:
        for delay in (0.2, 1, 2):
            try:
                call()
                return True
            except Exception as exc:
                if not is_transient(exc):
                    self.log(f"refused: {exc}")
                    return False
                time.sleep(delay)
        return False


class _Progress:
    """The latest ``progress: x`` line of a command's stderr; other lines pass through."""

    def __init__(self) -> None:
        self.value: float | None = None

    def feed(self, log: Callable[[str], None]) -> Callable[[bytes], None]:
        def line(data: bytes) -> None:
            text = data.decode("utf-8", "replace").rstrip("\n")
            key, sep, rest = text.partition(":") if ":" in text else text.partition("=")
            if sep and key.strip().lower() == PROGRESS_PREFIX:
                try:
                    value = float(rest)
                except ValueError:
                    value = -1.0
                if 0.0 <= value <= 1.0:
                    self.value = value
                    return
            log(f"stderr: {text}")

        return line


def _collect(stream: IO[bytes] | None, sink: Callable[[bytes], None]) -> None:
    if stream is None:
        return
    for line in iter(stream.readline, b""):
        sink(line)
    stream.close()


def _exited(process: subprocess.Popen[bytes], *, timeout: float) -> bool:
    """Wait up to ``timeout`` for the command (returning as soon as it exits)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _end(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the command's process group, then SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
