"""App configuration."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JobTasksConfig(AppConfig):
    name = "job_tasks"
    label = "job_tasks"
    verbose_name = _("Job tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from .signals import create_manager_group

        post_migrate.connect(create_manager_group, sender=self)
        import importlib.util  # the OpenAPI description, only when drf-spectacular is there

        if importlib.util.find_spec("drf_spectacular") is not None:
            from . import openapi  # noqa: F401  (registers the drf-spectacular extensions)
