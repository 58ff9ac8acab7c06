"""``manage.py job_tasks_token USERNAME``: issue an API token and print it (and nothing else)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from job_tasks.models import ApiToken
from job_tasks.signals import manager_group


class Command(BaseCommand):
    help = (
        "Issue a new API token for USERNAME and print it on stdout. "
        "Only the token's hash is stored: this is the one time it can be seen."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--create-user", action="store_true", help="Create the user if it does not exist."
        )
        parser.add_argument(
            "--manager",
            action="store_true",
            help="Grant the user the job-manager role (adds them to the job managers group).",
        )
        parser.add_argument(
            "--superuser", action="store_true", help="Make the user a superuser (an admin)."
        )
        parser.add_argument(
            "--expires-in",
            type=int,
            metavar="SECONDS",
            help="Make the token expire after this many seconds.",
        )
        parser.add_argument("--description", default="", help="A note stored with the token.")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = options["username"]
        expires_in = options["expires_in"]
        if expires_in is not None and expires_in <= 0:
            raise CommandError("--expires-in must be a positive number of seconds.")
        with transaction.atomic():
            try:
                user = User._default_manager.get_by_natural_key(username)
            except User.DoesNotExist:
                if not options["create_user"]:
                    raise CommandError(
                        f"No user {username!r}. Use --create-user to create one."
                    ) from None
                user = User._default_manager.create_user(**{User.USERNAME_FIELD: username})
            if options["superuser"] and not (user.is_superuser and user.is_staff):
                user.is_superuser = user.is_staff = True
                user.save(update_fields=["is_superuser", "is_staff"])
            if options["manager"]:
                user.groups.add(manager_group())
            expires_at = (
                timezone.now() + timedelta(seconds=expires_in) if expires_in is not None else None
            )
            _, secret = ApiToken.issue(
                user, description=options["description"], expires_at=expires_at
            )
        self.stdout.write(secret)
