"""A scratch PostgreSQL database for the benchmarks: made next to the one named, dropped after."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ScratchDatabase:
    """``<name>_bench`` on the server of ``url``; ``url`` is the scratch database's own."""

    url: str
    name: str
    config: dict

    @classmethod
    def create(cls, base_url: str, suffix: str = "_bench") -> ScratchDatabase:
        import dj_database_url

        if not base_url.startswith(("postgres://", "postgresql://")):
            raise SystemExit("give a PostgreSQL URL (or set DATABASE_URL)")
        config = dj_database_url.parse(base_url)
        name = f"{config['NAME']}{suffix}"
        scratch = cls(url=base_url.rsplit("/", 1)[0] + f"/{name}", name=name, config=config)
        scratch.admin_sql(f'DROP DATABASE IF EXISTS "{name}"')
        scratch.admin_sql(f'CREATE DATABASE "{name}"')
        return scratch

    def admin_sql(self, sql: str) -> None:
        """Run ``sql`` in autocommit on the server's ``postgres`` database."""
        import psycopg2

        connection = psycopg2.connect(
            dbname="postgres",
            user=self.config["USER"] or None,
            password=self.config["PASSWORD"] or None,
            host=self.config["HOST"] or None,
            port=self.config["PORT"] or None,
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
        connection.close()

    def setup_django(self, allowed_hosts: str) -> None:
        """Point the reference project at the scratch database and start Django."""
        os.environ.update(
            DATABASE_URL=self.url,
            DJANGO_SETTINGS_MODULE="jobtasks_project.settings",
            SECRET_KEY="bench-only-not-secret",
            ALLOWED_HOSTS=allowed_hosts,
        )
        os.environ.pop("DEBUG", None)
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        import django

        django.setup()

    def drop(self) -> None:
        from django.db import connections

        connections.close_all()
        self.admin_sql(f'DROP DATABASE IF EXISTS "{self.name}"')
