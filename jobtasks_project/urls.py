"""URLs of the reference project: the API at the root, the admin at ``/admin/``."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("job_tasks.urls")),
]
