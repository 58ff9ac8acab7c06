"""Performance: our API against a raw floor and a plain-DRF baseline, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobtasks .venv/bin/python bench/perf.py

Makes a scratch database next to the one named (``<name>_perf``, dropped at the end),
migrates it and seeds 200,000 tasks with SQL (2,000 jobs x 100 tasks, 5 sequence
levels; finished, running and waiting jobs), then serves it with three gunicorn
targets (same settings: 2 sync workers each, loopback):

- ``ours``: the reference project (``jobtasks_project``);
- ``baseline``: the API the DRF-tutorial way (``bench/baseline/``);
- ``floor``: bare WSGI + psycopg2 + orjson, one token lookup and one SQL statement per
  request (``bench/floor/``).

It checks that the three answer every measured request with the same JSON (key order
included), then runs wrk (installed with apt-get when missing) on each scenario,
interleaving the targets, for several repetitions, and prints the median time per
request with the ratios ``ours/floor`` and ``baseline/ours``, the peak RSS of each
target's workers, and draws the chart ``docs/img/perf-scenarios.png``.

``--scaling`` measures instead how a list's cost grows with the table (1e5 -> 1e6
rows) and the page size (10 -> 1000), ours against the floor
(``docs/img/perf-scaling.png``). ``--serve`` seeds, starts the targets and waits
(for profiling with py-spy).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from scratch import ScratchDatabase

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
IMG = ROOT / "docs" / "img"
TARGETS = ("floor", "ours", "baseline")
API = "/arvados/v1/job_tasks"
SEED_START = datetime(2024, 1, 1, tzinfo=timezone.utc)

LUA = r"""
-- One request per call: {ID} in the path and body becomes a random zero-padded
-- number in 1..max, {P} a random progress.
local method, path, max, body = "GET", "/", 1, nil
function init(args)
  method, path, max = args[1], args[2], tonumber(args[3])
  if args[4] ~= nil and args[4] ~= "" then body = args[4] end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
function request()
  local id = string.format("%015d", math.random(1, max))
  local p = path:gsub("{ID}", id)
  local b = nil
  if body ~= nil then
    b = body:gsub("{ID}", id):gsub("{P}", string.format("0.%06d", math.random(0, 999999)))
  end
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  if b ~= nil then headers["Content-Type"] = "application/json" end
  return wrk.format(method, p, headers, b)
end
"""


def q(value: object) -> str:
    return urllib.parse.quote(json.dumps(value, separators=(",", ":")), safe="")


def ts(index: int) -> str:
    """The creation time of seeded task ``index`` on the wire."""
    moment = SEED_START + timedelta(seconds=index)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


@dataclass
class Scenario:
    name: str
    label: str
    method: str
    paths: dict[str, str]  # target -> path template ({ID})
    max_id: int = 1
    bodies: dict[str, str] = field(default_factory=dict)  # target -> body template

    @property
    def targets(self) -> list[str]:
        return [t for t in TARGETS if t in self.paths]


def scenarios(tasks: int, jobs: int) -> list[Scenario]:
    job = "zzzzz-8i9sb-{ID}"
    keyset_order = q(["created_at asc", "uuid asc"])
    by_job = q([["job_uuid", "=", job]]).replace("%7BID%7D", "{ID}")

    def keyset(index: int) -> dict[str, str]:
        stamp = ts(index)
        iso = (SEED_START + timedelta(seconds=index)).isoformat()
        return {
            "ours": f"{API}?limit=100&count=none&order={keyset_order}"
            f"&filters={q([['created_at', '>=', stamp]])}",
            "floor": f"{API}?limit=100&count=none&created_after={urllib.parse.quote(stamp)}",
            "baseline": f"{API}?limit=100&count=none&ordering=created_at,uuid"
            f"&created_at__gte={urllib.parse.quote(iso)}",
        }

    wrapped = '{"job_task":{"sequence":1,"parameters":{"input":"{ID}"}}}'
    return [
        Scenario(
            "a_exact",
            "(a) list 1000, count=exact",
            "GET",
            dict.fromkeys(TARGETS, f"{API}?limit=1000&count=exact"),
        ),
        Scenario(
            "a_none",
            "(a) list 1000, count=none",
            "GET",
            dict.fromkeys(TARGETS, f"{API}?limit=1000&count=none"),
        ),
        Scenario(
            "b_job",
            "(b) list 100 by job_uuid, count",
            "GET",
            {
                "ours": f"{API}?limit=100&filters={by_job}",
                "floor": f"{API}?limit=100&job_uuid={job}",
                "baseline": f"{API}?limit=100&job_uuid={job}",
            },
            max_id=jobs,
        ),
        Scenario(
            "c_get",
            "(c) get by uuid",
            "GET",
            dict.fromkeys(TARGETS, f"{API}/zzzzz-ot0gb-{{ID}}"),
            tasks,
        ),
        Scenario("g_page1", "(g) keyset page 1", "GET", keyset(1)),
        Scenario("g_deep", "(g) keyset page at 95%", "GET", keyset(int(tasks * 0.95))),
        Scenario(
            "d_create",
            "(d) create (audited)",
            "POST",
            dict.fromkeys(TARGETS, API),
            tasks,
            {
                "ours": wrapped,
                "floor": wrapped,
                "baseline": '{"sequence":1,"parameters":{"input":"{ID}"}}',
            },
        ),
        Scenario(
            "e_update",
            "(e) update progress (audited)",
            "PUT",
            dict.fromkeys(TARGETS, f"{API}/zzzzz-ot0gb-{{ID}}"),
            tasks,
            {
                "ours": '{"job_task":{"progress":{P}}}',
                "floor": '{"job_task":{"progress":{P}}}',
                "baseline": '{"progress":{P}}',
            },
        ),
        Scenario(
            "f_claim",
            "(f) claim (audited)",
            "POST",
            {"ours": f"{API}/claim?lease_seconds=3600", "floor": f"{API}/claim"},
        ),
    ]


# ---------------------------------------------------------------------------- seeding


def seed_sql(first: int, last: int, per_job: int, levels: int, user: str, group: str) -> str:
    """Tasks ``first..last`` (1-based) of jobs of ``per_job`` tasks in ``levels`` levels.

    Jobs by j % 10: 0-5 finished (one task in 251 failed), 6 running (levels 0-1 done,
    level 2 half running, the rest waiting), 7-9 waiting. Even jobs belong to the
    user, odd ones to the user's group.
    """
    per_level = per_job // levels
    start = SEED_START.strftime("%Y-%m-%d %H:%M:%S+00")
    return f"""
    INSERT INTO job_tasks_jobtask (uuid, owner_uuid, created_at, modified_by_client_uuid,
        modified_by_user_uuid, modified_at, updated_at, job_uuid, created_by_job_task_uuid,
        sequence, qsequence, parameters, output, progress, success, started_at, finished_at,
        claimed_by_user_uuid, claimed_by_token_uuid, lease_expires_at, attempts, expired_leases)
    SELECT 'zzzzz-ot0gb-' || lpad(i::text, 15, '0'),
        CASE WHEN j % 2 = 0 THEN '{user}' ELSE '{group}' END,
        created, NULL, '{user}',
        CASE state WHEN 'waiting' THEN created WHEN 'running' THEN created + interval '1 minute'
            ELSE created + interval '2 minutes' END,
        created,
        'zzzzz-8i9sb-' || lpad(j::text, 15, '0'), NULL, level, i - 1,
        jsonb_build_object('input', md5(i::text), 'chunk', k),
        CASE WHEN state IN ('done', 'failed') THEN md5(i::text) || '+1024' END,
        CASE state WHEN 'done' THEN 1.0 WHEN 'running' THEN 0.5 WHEN 'failed' THEN 0.3 END,
        CASE state WHEN 'done' THEN true WHEN 'failed' THEN false END,
        CASE WHEN state <> 'waiting' THEN created + interval '1 minute' END,
        CASE WHEN state IN ('done', 'failed') THEN created + interval '2 minutes' END,
        NULL, NULL, NULL, 0, 0
    FROM (
        SELECT i, j, k, level, timestamptz '{start}' + i * interval '1 second' AS created,
            CASE
                WHEN j % 10 < 6 THEN CASE WHEN i % 251 = 0 THEN 'failed' ELSE 'done' END
                WHEN j % 10 = 6 THEN CASE
                    WHEN level < 2 THEN 'done'
                    WHEN level = 2 AND k % 2 = 0 THEN 'running'
                    WHEN level = 2 THEN 'done'
                    ELSE 'waiting' END
                ELSE 'waiting'
            END AS state
        FROM (
            SELECT i, (i - 1) / {per_job} + 1 AS j, (i - 1) % {per_job} AS k,
                ((i - 1) % {per_job}) / {per_level} AS level
            FROM generate_series({first}, {last}) AS i
        ) numbered
    ) tasks
    """


def seed(connection, first: int, last: int, per_job: int, levels: int, owners: tuple) -> float:
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(seed_sql(first, last, per_job, levels, *owners))
        cursor.execute("SELECT setval('job_tasks_qsequence_seq', %s)", [last])
    connection.commit()
    old = connection.autocommit
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE job_tasks_jobtask")
    connection.autocommit = old
    return time.perf_counter() - began


# ---------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def peak_rss_mib(self) -> float:
        peaks = []
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            if match:
                peaks.append(int(match.group(1)) / 1024)
        return max(peaks) if peaks else float("nan")


def start_servers(url: str, workers: int, names: Sequence[str] = TARGETS) -> dict[str, Server]:
    apps = {
        "ours": (ROOT, "jobtasks_project.wsgi:application", "jobtasks_project.settings"),
        "baseline": (BENCH, "baseline.wsgi:application", "baseline.settings"),
        "floor": (BENCH, "floor.app:application", ""),
    }
    servers = {}
    for name in names:
        chdir, app, settings = apps[name]
        env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=str(ROOT))
        env["DJANGO_SETTINGS_MODULE"] = settings
        # (the API serves no static files; an empty folder keeps WhiteNoise quiet)
        static = Path(tempfile.gettempdir()) / "job-tasks-bench-static"
        static.mkdir(exist_ok=True)
        env.setdefault("STATIC_ROOT", str(static))
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                app,
                f"--bind=127.0.0.1:{port}",
                f"--workers={workers}",
                "--worker-class=sync",
                f"--chdir={chdir}",
                "--log-level=warning",
            ],
            env=env,
            start_new_session=True,
        )
        servers[name] = Server(name, port, process)
    deadline = time.monotonic() + 60
    for server in servers.values():
        while True:
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.process.poll() is not None:
                    raise SystemExit(f"{server.name} did not start") from None
                time.sleep(0.2)
    return servers


def stop_servers(servers: dict[str, Server]) -> None:
    for server in servers.values():
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in servers.values():
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()


# ---------------------------------------------------------------------------- checks


def call(server: Server, method: str, path: str, token: str, body: str | None = None) -> object:
    request = urllib.request.Request(
        server.base + path,
        data=body.encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read(), object_pairs_hook=list)
    except urllib.error.HTTPError as error:
        detail = error.read()[:300].decode(errors="replace")
        raise SystemExit(f"{server.name} {method} {path}: {error.code} {detail}") from None


def fill(template: str, number: int) -> str:
    return template.replace("{ID}", f"{number:015d}").replace("{P}", "0.25")


def check_identical(servers: dict[str, Server], token: str, cases: list[Scenario]) -> list[str]:
    """Every target answers each measured request with the same JSON as ours, keys in order."""
    problems = []
    ours = servers["ours"]

    def stored(uuid: str) -> object:
        return call(ours, "GET", f"{API}/{uuid}", token)

    def uuid_of(body: object) -> str:
        return dict(body)["uuid"]

    for case in cases:
        for number in (1, 7, case.max_id):
            if case.method == "GET":
                answers = {
                    t: call(servers[t], "GET", fill(case.paths[t], number), token)
                    for t in case.targets
                }
                for target, answer in answers.items():
                    if answer != answers["ours"]:
                        problems.append(f"{case.name}: {target} differs from ours ({number})")
            elif case.name == "f_claim":
                for target in case.targets:
                    answer = dict(call(servers[target], "POST", case.paths[target], token, ""))
                    items = answer["items"]
                    if len(items) != 1:
                        problems.append(f"f_claim: {target} claimed {len(items)} tasks")
                        continue
                    item = [
                        pair for pair in items[0] if pair[0] not in ("lease_expires_at", "attempt")
                    ]
                    if item != stored(dict(items[0])["uuid"]):
                        problems.append(f"f_claim: {target}'s claimed task differs from a get")
            else:
                for target in case.targets:
                    body = fill(case.bodies[target], number)
                    answer = call(
                        servers[target], case.method, fill(case.paths[target], number), token, body
                    )
                    if answer != stored(uuid_of(answer)):
                        problems.append(f"{case.name}: {target}'s answer differs from a get")
    return problems


class ClaimRounds:
    """Every claim run starts from the same queue, and none may claim a task twice.

    A claim run takes thousands of tasks off the front of the queue, and the next run
    would scan past them (and the levels they unblock would change what is runnable):
    before each run, the tasks the last one claimed are checked (each claimed once)
    and put back as they were, and the table vacuumed.
    """

    def __init__(self, connection, user: str) -> None:
        self.connection = connection
        self.user = user  # who made every task (the seed, the creates)
        self.claims = 0
        self.doubled = 0

    def reset(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM job_tasks_jobtask WHERE attempts > 1")
            (twice,) = cursor.fetchone()
            cursor.execute(
                "SELECT count(*), count(DISTINCT object_uuid) FROM job_tasks_auditevent"
                " WHERE event_type = 'claim'"
            )
            claims, distinct = cursor.fetchone()
            self.claims += claims
            self.doubled += twice + (claims - distinct)
            cursor.execute(
                "UPDATE job_tasks_jobtask SET started_at = NULL, modified_at = created_at,"
                " updated_at = created_at, modified_by_user_uuid = %s,"
                " claimed_by_user_uuid = NULL, claimed_by_token_uuid = NULL,"
                " lease_expires_at = NULL, attempts = 0 WHERE lease_expires_at IS NOT NULL",
                [self.user],
            )
            cursor.execute("DELETE FROM job_tasks_auditevent WHERE event_type = 'claim'")
        self.connection.commit()
        old = self.connection.autocommit
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute("VACUUM job_tasks_jobtask")
        self.connection.autocommit = old


# ---------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get)...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    return found


def run_wrk(
    wrk: str,
    lua: Path,
    server: Server,
    case: Scenario,
    token: str,
    seconds: float,
    connections: int,
) -> tuple[float, int]:
    """Milliseconds per request (1000 / throughput) and the number of non-2xx answers."""
    target = server.name
    out = subprocess.run(
        [
            wrk,
            "-t2",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout=30s",
            "-H",
            f"Authorization: Bearer {token}",
            "-s",
            str(lua),
            server.base,
            "--",
            case.method,
            case.paths[target],
            str(case.max_id),
            case.bodies.get(target, ""),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?read (\d+), write (\d+), timeout (\d+)", out)
    failures = int(bad.group(1)) if bad else 0
    if errors:
        failures += int(errors.group(3))
    return (1000.0 / rate if rate else float("inf")), failures


# ---------------------------------------------------------------------------- main


def setup(url: str, suffix: str):
    scratch = ScratchDatabase.create(url, suffix=suffix)
    scratch.setup_django(allowed_hosts="127.0.0.1,localhost")
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from job_tasks.identities import group_uuid, user_uuid
    from job_tasks.models import ApiToken

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(username="bench")
    team = Group.objects.create(name="bench team")
    user.groups.add(team)
    token = ApiToken.issue(user, description="bench")[1]
    owners = (user_uuid(user), group_uuid(team))
    return scratch, token, owners


def connect(scratch: ScratchDatabase):
    import psycopg2

    return psycopg2.connect(scratch.url)


def chart_scenarios(results: dict, cases: list[Scenario], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.8))
    width = 0.27
    colours = {"floor": "#8c8c8c", "ours": "#2a7ab9", "baseline": "#d9822b"}
    for offset, target in enumerate(TARGETS):
        xs, ys = [], []
        for index, case in enumerate(cases):
            if target in results[case.name]:
                xs.append(index + (offset - 1) * width)
                ys.append(results[case.name][target])
        bars = ax.bar(xs, ys, width, label=target, color=colours[target])
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(range(len(cases)), [c.label for c in cases], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("ms per request (median; log scale)")
    ax.set_yscale("log")
    ax.set_title("django-job-tasks: ours vs DRF-tutorial baseline vs floor (200,000 tasks)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def measure(args, servers, token, cases, wrk, lua, rounds: ClaimRounds) -> dict:
    samples: dict[str, dict[str, list[float]]] = {c.name: {t: [] for t in c.targets} for c in cases}
    failures = 0
    for rep in range(args.reps):
        for case in cases:
            order = (
                case.targets[rep % len(case.targets) :] + case.targets[: rep % len(case.targets)]
            )
            for target in order:
                if case.method == "POST" and case.name == "f_claim":
                    rounds.reset()
                ms, bad = run_wrk(
                    wrk, lua, servers[target], case, token, args.seconds, args.connections
                )
                failures += bad
                if bad:
                    print(f"  {case.name} {target}: {bad} failed requests", flush=True)
                samples[case.name][target].append(ms)
        print(f"repetition {rep + 1}/{args.reps} done", flush=True)
    medians = {n: {t: statistics.median(v) for t, v in per.items()} for n, per in samples.items()}
    medians["_failures"] = failures
    return medians


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--per-job", type=int, default=100)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every run")
    parser.add_argument("--seconds", type=float, default=4, help="length of one wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per target")
    parser.add_argument("--only", help="comma-separated scenario names (a_exact, c_get, ...)")
    parser.add_argument("--json", type=Path, help="write the medians to this file")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--scaling", action="store_true", help="table and page size growth")
    parser.add_argument("--serve", action="store_true", help="seed, start, wait (profiling)")
    args = parser.parse_args(argv)

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobtasks")
    wrk = ensure_wrk()
    if args.scaling:
        return scaling(args, url, wrk)
    scratch, token, owners = setup(url, "_perf")
    servers: dict[str, Server] = {}
    connection = connect(scratch)
    try:
        tasks = args.jobs * args.per_job
        took = seed(connection, 1, tasks, args.per_job, args.levels, owners)
        print(f"seeded {tasks:,} tasks ({args.jobs} jobs x {args.per_job}) in {took:.1f} s")
        servers = start_servers(scratch.url, args.workers)
        if args.serve:
            for server in servers.values():
                print(f"{server.name}: {server.base} (master pid {server.process.pid})")
            print(f"token: {token}\nCtrl-C (or SIGTERM) to stop", flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return 0
        cases = scenarios(tasks, args.jobs)
        if args.only:
            wanted = set(args.only.split(","))
            cases = [c for c in cases if c.name in wanted]
        problems = check_identical(servers, token, cases)
        if problems:
            print("NOT IDENTICAL:\n  " + "\n  ".join(problems))
            return 1
        print(f"identical JSON from {', '.join(TARGETS)} on every measured request")
        with tempfile.TemporaryDirectory() as tmp:
            lua = Path(tmp) / "request.lua"
            lua.write_text(LUA)
            rounds = ClaimRounds(connection, owners[0])
            results = measure(args, servers, token, cases, wrk, lua, rounds)
        rounds.reset()
        doubled, claims = rounds.doubled, rounds.claims
        rss = {name: server.peak_rss_mib() for name, server in servers.items()}
        report(results, cases, rss, doubled, claims, args)
        if args.json:
            args.json.write_text(json.dumps({"medians": results, "rss_mib": rss}, indent=2))
        if not args.no_chart and not args.only:
            chart_scenarios(results, cases, IMG / "perf-scenarios.png")
            print(f"chart: {(IMG / 'perf-scenarios.png').relative_to(ROOT)}")
        return 1 if doubled or results["_failures"] else 0
    finally:
        stop_servers(servers)
        connection.close()
        scratch.drop()


def report(results, cases, rss, doubled, claims, args) -> None:
    print(
        f"\n{datetime.now(timezone.utc):%Y-%m-%d}, {os.cpu_count()} cores; wrk {args.connections}"
        f" connections x {args.seconds:g} s x {args.reps} repetitions; ms per request, median\n"
    )
    print("| scenario | floor | ours | baseline | ours/floor | baseline/ours |")
    print("|---|---:|---:|---:|---:|---:|")
    for case in cases:
        row = results[case.name]
        floor, ours, base = row.get("floor"), row["ours"], row.get("baseline")

        def cell(value):
            return f"{value:.2f}" if value is not None else "-"

        ratio = f"{ours / floor:.2f}" if floor else "-"
        lead = f"{base / ours:.1f}" if base else "-"
        print(f"| {case.label} | {cell(floor)} | {cell(ours)} | {cell(base)} | {ratio} | {lead} |")
    if "g_deep" in results and "g_page1" in results:
        deep = results["g_deep"]["ours"] / results["g_page1"]["ours"]
        print(f"\nkeyset: ours deep page / page 1 = {deep:.2f}")
    print(
        "peak RSS per worker (VmHWM, MiB): "
        + ", ".join(f"{name} {value:.0f}" for name, value in rss.items())
    )
    if rss.get("baseline"):
        print(f"ours/baseline RSS = {rss['ours'] / rss['baseline']:.2f}")
    print(f"claims recorded: {claims}; double claims: {doubled}")
    print(f"failed requests: {results['_failures']}")


# ---------------------------------------------------------------------------- scaling


def scaling(args, url: str, wrk: str) -> int:
    """List cost at 1e5 and 1e6 rows, page sizes 10, 100, 1000; ours and the floor."""
    scratch, token, owners = setup(url, "_perf_scale")
    servers: dict[str, Server] = {}
    connection = connect(scratch)
    sizes = (100_000, 1_000_000)
    pages = (10, 100, 1000)
    table: dict[int, dict[int, dict[str, float]]] = {}
    try:
        seeded = 0
        with tempfile.TemporaryDirectory() as tmp:
            lua = Path(tmp) / "request.lua"
            lua.write_text(LUA)
            for size in sizes:
                took = seed(connection, seeded + 1, size, args.per_job, args.levels, owners)
                seeded = size
                print(f"table at {size:,} rows (seeded in {took:.0f} s)", flush=True)
                servers = start_servers(scratch.url, args.workers, ("floor", "ours"))
                table[size] = {}
                for page in pages:
                    for count in ("exact", "none"):
                        path = f"{API}?limit={page}&count={count}"
                        case = Scenario(f"{page}_{count}", "", "GET", {"ours": path, "floor": path})
                        runs: dict[str, list[float]] = {"ours": [], "floor": []}
                        for rep in range(args.reps):
                            for target in ("ours", "floor") if rep % 2 else ("floor", "ours"):
                                ms, _ = run_wrk(
                                    wrk,
                                    lua,
                                    servers[target],
                                    case,
                                    token,
                                    args.seconds,
                                    args.connections,
                                )
                                runs[target].append(ms)
                        table[size][case.name] = {t: statistics.median(v) for t, v in runs.items()}
                        print(
                            f"  {size:>9,} rows, limit {page:>4}, count={count}: "
                            f"floor {table[size][case.name]['floor']:.2f} ms, "
                            f"ours {table[size][case.name]['ours']:.2f} ms",
                            flush=True,
                        )
                stop_servers(servers)
                servers = {}
        print("\n| rows | limit | count | floor ms | ours ms | ours/floor |")
        print("|---:|---:|---|---:|---:|---:|")
        for size, rows in table.items():
            for name, cell in rows.items():
                page, count = name.split("_")
                print(
                    f"| {size:,} | {page} | {count} | {cell['floor']:.2f} | {cell['ours']:.2f} "
                    f"| {cell['ours'] / cell['floor']:.2f} |"
                )
        if args.json:
            args.json.write_text(json.dumps({str(k): v for k, v in table.items()}, indent=2))
        if not args.no_chart:
            chart_scaling(table, pages, IMG / "perf-scaling.png")
        return 0
    finally:
        stop_servers(servers)
        connection.close()
        scratch.drop()


def chart_scaling(table, pages, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, count in zip(axes, ("exact", "none"), strict=True):
        for size, rows in table.items():
            for target, style in (("ours", "-o"), ("floor", "--s")):
                ys = [rows[f"{page}_{count}"][target] for page in pages]
                ax.plot(pages, ys, style, label=f"{target}, {size:,} rows")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("limit (page size)")
        ax.set_title(f"list, count={count}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms per request (median)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
