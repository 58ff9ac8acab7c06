"""Signal handlers: after ``migrate``, the job-manager group exists and holds the role."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS

from .app_settings import app_settings
from .models import MANAGER_PERMISSION


def create_manager_group(
    app_config: AppConfig,
    using: str = DEFAULT_DB_ALIAS,
    apps: Any = global_apps,
    **kwargs: Any,
) -> None:
    """Create the ``JOB_TASKS['MANAGER_GROUP_NAME']`` group holding the job-manager permission.

    Runs on ``post_migrate`` for this app. Idempotent: an existing group keeps its
    members and gets the permission if it lacks it.
    """
    from django.contrib.auth.management import create_permissions

    try:
        Group = apps.get_model("auth", "Group")
        Permission = apps.get_model("auth", "Permission")
    except LookupError:  # auth is not migrated (yet) in this state
        return
    create_permissions(app_config, verbosity=0, using=using, apps=apps)
    app_label, codename = MANAGER_PERMISSION.split(".")
    permission = (
        Permission.objects.using(using)
        .filter(content_type__app_label=app_label, codename=codename)
        .first()
    )
    if permission is None:
        return
    group, _ = Group.objects.using(using).get_or_create(name=app_settings.MANAGER_GROUP_NAME)
    group.permissions.add(permission)


def manager_group(using: str = DEFAULT_DB_ALIAS) -> Any:
    """The job-manager group (made if missing, e.g. after a test database flush)."""
    create_manager_group(global_apps.get_app_config("job_tasks"), using=using)
    from django.contrib.auth.models import Group

    return Group.objects.using(using).get(name=app_settings.MANAGER_GROUP_NAME)
