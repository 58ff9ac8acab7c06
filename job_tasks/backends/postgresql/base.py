"""Django's PostgreSQL backend, with a health check that needs no round trip when idle.

``ENGINE = "job_tasks.backends.postgresql"``: optional, for persistent connections
(``CONN_MAX_AGE``) with ``CONN_HEALTH_CHECKS``. Django checks such a connection at the
start of every request with ``SELECT 1``: a round trip, which on a fast API request is
a large part of its time (docs/performance.md).

Here the check first looks at the connection's socket, without sending anything. A
connection that is idle (no transaction open) and has nothing to read is as the last
request left it: the server has not closed it, since a server that ends a session
(a restart, ``pg_terminate_backend``, ``idle_session_timeout``, a pooler) says so, or
closes the socket, and either makes it readable. Only then, or when the connection is
not idle, is ``SELECT 1`` sent, as Django does. A peer that vanished without a word
(a host or network gone, no FIN) is caught by neither check until TCP gives up: the
request's first query then fails, and the connection is replaced for the next one.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base

#: ``transaction_status`` of an idle connection (psycopg 2 and 3 alike).
_IDLE = 0


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        if _quiet(self.connection):
            return True
        return super().is_usable()


def _quiet(raw: Any) -> bool:
    """Open, idle, and nothing arrived since the last answer (no I/O, no waiting)."""
    try:
        if raw.closed or raw.info.transaction_status != _IDLE:
            return False
        return not _readable(raw.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):  # no limit on the descriptor's number
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)
