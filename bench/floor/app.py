"""The floor: a bare WSGI app answering the benchmark's requests with psycopg2 + orjson.

No framework: one indexed token lookup, then one SQL statement per request, rows
shaped into the same JSON as the API (key order, 9-digit timestamps, etag). It serves
only what ``bench/perf.py`` measures and checks nothing else; it is a yardstick,
not an implementation of the contract.

    DATABASE_URL=postgres://... gunicorn --chdir bench floor.app:application
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import timezone
from urllib.parse import parse_qs

import orjson
import psycopg2
import psycopg2.extras

CLUSTER = os.environ.get("JOB_TASKS_CLUSTER_ID", "zzzzz")
COLUMNS = (
    "uuid",
    "owner_uuid",
    "created_at",
    "modified_by_client_uuid",
    "modified_by_user_uuid",
    "modified_at",
    "job_uuid",
    "created_by_job_task_uuid",
    "sequence",
    "qsequence",
    "parameters",
    "output",
    "progress",
    "success",
    "started_at",
    "finished_at",
)
SELECT = ", ".join(f"t.{name}" for name in COLUMNS)
TIMESTAMPS = frozenset({2, 5, 14, 15})
TABLE = "job_tasks_jobtask"
AUDIT = "job_tasks_auditevent"
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
JSON = [("Content-Type", "application/json")]
# The caller's tasks: owned by them or by one of their groups (as the API's visibility).
VISIBLE = (
    "(t.owner_uuid = %(user)s OR t.owner_uuid IN (SELECT gi.uuid FROM job_tasks_groupidentity gi"
    " JOIN auth_user_groups ug ON ug.group_id = gi.group_id WHERE ug.user_id = %(user_id)s))"
)
AUDIT_ROW = (
    f"INSERT INTO {AUDIT} (event_type, object_uuid, user_uuid, token_uuid, created_at, summary,"
    " old_attributes, new_attributes)"
)

_connection = None


def connection():
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg2.connect(os.environ["DATABASE_URL"])
        _connection.autocommit = True
        with _connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
    return _connection


def base36(value: int) -> str:
    out = ""
    while value:
        value, digit = divmod(value, 36)
        out = DIGITS[digit] + out
    return out or "0"


def shape(row: tuple) -> dict:
    values = list(row[:16])
    for index in TIMESTAMPS:
        value = values[index]
        if value is not None:
            values[index] = value.astimezone(timezone.utc).isoformat(timespec="microseconds")[:26]
            values[index] += "000Z"
    if values[10] is None:
        values[10] = {}
    digest = hashlib.md5(orjson.dumps(values, option=orjson.OPT_SORT_KEYS), usedforsecurity=False)
    out = {
        "href": f"/job_tasks/{values[0]}",
        "kind": "arvados#jobTask",
        "etag": base36(int.from_bytes(digest.digest(), "big")),
    }
    out.update(zip(COLUMNS, values, strict=True))
    return out


def authenticate(cursor, environ) -> dict | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    raw = header.partition(" ")[2].strip()
    secret = raw.rsplit("/", 1)[-1]
    cursor.execute(
        "SELECT ui.uuid, t.user_id, t.uuid FROM job_tasks_apitoken t"
        " JOIN job_tasks_useridentity ui ON ui.user_id = t.user_id"
        " JOIN auth_user u ON u.id = t.user_id"
        " WHERE t.secret_hash = %s AND t.revoked_at IS NULL AND u.is_active"
        " AND (t.expires_at IS NULL OR t.expires_at > now())",
        [hashlib.sha256(secret.encode()).hexdigest()],
    )
    row = cursor.fetchone()
    return None if row is None else {"user": row[0], "user_id": row[1], "token": row[2]}


def envelope(items: list, offset: int, limit: int, available: int | None) -> dict:
    body = {
        "kind": "arvados#jobTaskList",
        "etag": "",
        "self_link": "",
        "offset": offset,
        "limit": limit,
        "items": items,
    }
    if available is not None:
        body["items_available"] = available
    return body


def list_tasks(cursor, who: dict, query: dict) -> dict:
    limit = min(int(query.get("limit", ["100"])[0]), 1000)
    offset = int(query.get("offset", ["0"])[0])
    count = query.get("count", ["exact"])[0] != "none"
    where, order = [VISIBLE], "t.modified_at DESC, t.uuid"
    args = dict(who, limit=limit, offset=offset)
    if "job_uuid" in query:
        where.append("t.job_uuid = %(job)s")
        args["job"] = query["job_uuid"][0]
    if "created_after" in query:  # keyset paging, as the SDK pages by creation
        where.append("t.created_at >= %(after)s")
        args["after"] = query["created_after"][0]
        order = "t.created_at, t.uuid"
    where_sql = " AND ".join(where)
    page = (
        f"SELECT {SELECT} FROM {TABLE} t WHERE {where_sql} ORDER BY {order}"
        " LIMIT %(limit)s OFFSET %(offset)s"
    )
    if not count:
        cursor.execute(page, args)
        return envelope([shape(row) for row in cursor.fetchall()], offset, limit, None)
    # One statement: the count, joined to the page (one row of nulls when it is empty).
    cursor.execute(
        f"SELECT p.*, c.n FROM (SELECT count(*) AS n FROM {TABLE} t WHERE {where_sql}) c"
        f" LEFT JOIN LATERAL ({page}) p ON true",
        args,
    )
    rows = cursor.fetchall()
    available = rows[0][-1]
    items = [shape(row) for row in rows if row[0] is not None]
    return envelope(items, offset, limit, available)


def get_task(cursor, who: dict, uuid: str) -> dict | None:
    cursor.execute(
        f"SELECT {SELECT} FROM {TABLE} t WHERE t.uuid = %(uuid)s AND {VISIBLE}",
        dict(who, uuid=uuid),
    )
    row = cursor.fetchone()
    return None if row is None else shape(row)


def new_uuid() -> str:
    return f"{CLUSTER}-ot0gb-{base36(secrets.randbits(77)).rjust(15, '0')[-15:]}"


def create_task(cursor, who: dict, body: dict) -> dict:
    attrs = body["job_task"]
    cursor.execute(
        f"WITH t AS (INSERT INTO {TABLE} (uuid, owner_uuid, created_at, modified_by_user_uuid,"
        " modified_at, updated_at, sequence, qsequence, parameters, attempts, expired_leases)"
        " VALUES (%(uuid)s, %(user)s, now(), %(user)s, now(), now(), %(sequence)s,"
        " nextval('job_tasks_qsequence_seq'), %(parameters)s, 0, 0) RETURNING *),"
        f" a AS ({AUDIT_ROW} SELECT 'create', t.uuid, %(user)s, %(token)s, now(), '',"
        " NULL, to_jsonb(t) FROM t)"
        f" SELECT {SELECT} FROM t",
        dict(
            who,
            uuid=new_uuid(),
            sequence=attrs.get("sequence"),
            parameters=psycopg2.extras.Json(attrs.get("parameters") or {}),
        ),
    )
    return shape(cursor.fetchone())


def update_task(cursor, who: dict, uuid: str, body: dict) -> dict | None:
    cursor.execute(
        f"WITH o AS (SELECT t.* FROM {TABLE} t WHERE t.uuid = %(uuid)s AND {VISIBLE} FOR UPDATE),"
        f" t AS (UPDATE {TABLE} u SET progress = %(progress)s, modified_at = now(),"
        " updated_at = now(), modified_by_user_uuid = %(user)s FROM o WHERE u.id = o.id"
        " RETURNING u.*),"
        f" a AS ({AUDIT_ROW} SELECT 'update', t.uuid, %(user)s, %(token)s, now(), '',"
        " to_jsonb(o), to_jsonb(t) FROM t, o)"
        f" SELECT {SELECT} FROM t",
        dict(who, uuid=uuid, progress=body["job_task"]["progress"]),
    )
    row = cursor.fetchone()
    return None if row is None else shape(row)


def claim(cursor, who: dict) -> dict:
    """One UPDATE of the next runnable task (sequence barrier), SKIP LOCKED, audited."""
    cursor.execute(
        f"WITH c AS (SELECT t.id FROM {TABLE} t WHERE t.started_at IS NULL"
        f" AND t.success IS NULL AND {VISIBLE} AND NOT EXISTS (SELECT 1 FROM {TABLE} b"
        " WHERE b.job_uuid = t.job_uuid AND (b.success IS NULL OR NOT b.success)"
        " AND COALESCE(b.sequence, 0) < COALESCE(t.sequence, 0))"
        " ORDER BY COALESCE(t.sequence, 0), t.qsequence, t.id LIMIT 1 FOR UPDATE SKIP LOCKED),"
        f" t AS (UPDATE {TABLE} u SET started_at = now(), modified_at = now(), updated_at = now(),"
        " modified_by_user_uuid = %(user)s, claimed_by_user_uuid = %(user)s,"
        " claimed_by_token_uuid = %(token)s, lease_expires_at = now() + interval '1 hour',"
        " attempts = u.attempts + 1 FROM c WHERE u.id = c.id RETURNING u.*),"
        f" a AS ({AUDIT_ROW} SELECT 'claim', t.uuid, %(user)s, %(token)s, now(), '', NULL,"
        " to_jsonb(t) FROM t)"
        f" SELECT {SELECT}, t.lease_expires_at, t.attempts FROM t",
        who,
    )
    items = []
    for row in cursor.fetchall():
        item = shape(row)
        item["lease_expires_at"] = shape_time(row[16])
        item["attempt"] = row[17]
        items.append(item)
    return envelope(items, 0, 1, len(items))


def shape_time(value) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")[:26] + "000Z"


PREFIX = "/arvados/v1/job_tasks"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    try:
        cursor = connection().cursor()
    except psycopg2.Error:
        start_response("503 Service Unavailable", JSON)
        return [b'{"errors":["database unavailable"]}']
    with cursor:
        who = authenticate(cursor, environ)
        if who is None:
            start_response("401 Unauthorized", JSON)
            return [b'{"errors":["Not logged in"]}']
        body = None
        if method in ("POST", "PUT"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            body = orjson.loads(raw) if raw else {}
        if path == PREFIX and method == "GET":
            result = list_tasks(cursor, who, parse_qs(environ.get("QUERY_STRING", "")))
        elif path == PREFIX and method == "POST":
            result = create_task(cursor, who, body)
        elif path == PREFIX + "/claim" and method == "POST":
            result = claim(cursor, who)
        elif path.startswith(PREFIX + "/") and method == "GET":
            result = get_task(cursor, who, path[len(PREFIX) + 1 :])
        elif path.startswith(PREFIX + "/") and method == "PUT":
            result = update_task(cursor, who, path[len(PREFIX) + 1 :], body)
        else:
            result = None
    if result is None:
        start_response("404 Not Found", JSON)
        return [b'{"errors":["Path not found"]}']
    start_response("200 OK", JSON)
    return [orjson.dumps(result)]
