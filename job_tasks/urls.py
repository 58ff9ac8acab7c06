"""URLs of the API. Include them at the site root: ``path("", include("job_tasks.urls"))``.

Paths have no trailing slash and never redirect (one is tolerated if sent).
"""

from __future__ import annotations

from django.urls import re_path

from .discovery import DiscoveryView
from .views import CurrentUserView, JobTaskViewSet, PathNotFoundView

app_name = "job_tasks"

job_task_list = JobTaskViewSet.as_view({"get": "list", "post": "create"})
job_task_detail = JobTaskViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
)

urlpatterns = [
    re_path(r"^arvados/v1/job_tasks/?$", job_task_list, name="jobtask-list"),
    re_path(r"^arvados/v1/job_tasks/(?P<uuid>[^/]+)/?$", job_task_detail, name="jobtask-detail"),
    re_path(r"^arvados/v1/users/current/?$", CurrentUserView.as_view(), name="user-current"),
    re_path(r"^discovery/v1/apis/arvados/v1/rest/?$", DiscoveryView.as_view(), name="discovery"),
    re_path(r"^arvados/v1(?:/.*)?$", PathNotFoundView.as_view(), name="not-found"),
]
