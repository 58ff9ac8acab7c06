"""``manage.py demo_setup``: a demo job manager and a demo user, with fresh tokens and the URLs."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from job_tasks.identities import user_uuid
from job_tasks.models import ApiToken
from job_tasks.signals import manager_group

DEMO_PASSWORD = "demo"


class Command(BaseCommand):
    help = (
        "Create (or reset) the demo users, issue them new tokens and print how to "
        "reach the service."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        base = options["base_url"].rstrip("/")
        with transaction.atomic():
            manager, _ = User._default_manager.get_or_create(
                **{User.USERNAME_FIELD: "demo-manager"}
            )
            manager.is_staff = True
            manager.set_password(DEMO_PASSWORD)
            manager.save()
            manager.groups.add(manager_group())
            user, _ = User._default_manager.get_or_create(**{User.USERNAME_FIELD: "demo-user"})
            user.is_staff = True
            user.set_password(DEMO_PASSWORD)
            user.save()
            _, manager_token = ApiToken.issue(manager, description="demo")
            _, user_token = ApiToken.issue(user, description="demo")
        lines = [
            "",
            "django-job-tasks demo",
            f"  API:    {base}/arvados/v1/job_tasks",
            f"  Admin:  {base}/admin/",
            f"          log in as demo-manager or demo-user, password {DEMO_PASSWORD!r}",
            f"  Docs:   {base}/api/docs/   (OpenAPI schema: {base}/api/schema/)",
            "",
            f"  demo-manager (job manager) {user_uuid(manager)}",
            f"    token: {manager_token}",
            f"  demo-user                  {user_uuid(user)}",
            f"    token: {user_token}",
            "",
            "  Try:",
            f"    curl -s -H 'Authorization: Bearer {user_token}' \\",
            "         -H 'Content-Type: application/json' \\",
            '         -d \'{"job_task": {"sequence": 0}}\' \\',
            f"         {base}/arvados/v1/job_tasks",
            f"    curl -s -H 'Authorization: Bearer {user_token}' {base}/arvados/v1/job_tasks",
            "",
        ]
        self.stdout.write("\n".join(lines))
