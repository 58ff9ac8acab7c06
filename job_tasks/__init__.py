"""django-job-tasks: the Arvados ``job_tasks`` REST API as a reusable Django app."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
