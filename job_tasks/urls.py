"""URLs of the API. Include them at the site root: ``path("", include("job_tasks.urls"))``.

Paths have no trailing slash and never redirect (one is tolerated if sent).
"""

from __future__ import annotations

from django.urls import re_path

from .discovery import DiscoveryView
from .views import CurrentUserView, GroupListView, JobTaskViewSet, PathNotFoundView

app_name = "job_tasks"

job_task_list = JobTaskViewSet.as_view({"get": "list", "post": "create"})
# Scheduling extensions (issue 5), routed before the member path that would take
# "claim" and "summary" for uuids.
_MEMBER = r"arvados/v1/job_tasks/(?P<uuid>[^/]+)"
job_task_claim = JobTaskViewSet.as_view({"post": "claim"})
job_task_summary = JobTaskViewSet.as_view({"get": "summary"})
job_task_renew = JobTaskViewSet.as_view({"post": "renew"})
job_task_release = JobTaskViewSet.as_view({"post": "release"})
job_task_retry = JobTaskViewSet.as_view({"post": "retry"})
job_task_history = JobTaskViewSet.as_view({"get": "history"})
job_task_detail = JobTaskViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
)

urlpatterns = [
    re_path(r"^arvados/v1/job_tasks/?$", job_task_list, name="jobtask-list"),
    re_path(r"^arvados/v1/job_tasks/claim/?$", job_task_claim, name="jobtask-claim"),
    re_path(r"^arvados/v1/job_tasks/summary/?$", job_task_summary, name="jobtask-summary"),
    re_path(rf"^{_MEMBER}/renew/?$", job_task_renew, name="jobtask-renew"),
    re_path(rf"^{_MEMBER}/release/?$", job_task_release, name="jobtask-release"),
    re_path(rf"^{_MEMBER}/retry/?$", job_task_retry, name="jobtask-retry"),
    re_path(rf"^{_MEMBER}/history/?$", job_task_history, name="jobtask-history"),
    re_path(r"^arvados/v1/job_tasks/(?P<uuid>[^/]+)/?$", job_task_detail, name="jobtask-detail"),
    re_path(r"^arvados/v1/users/current/?$", CurrentUserView.as_view(), name="user-current"),
    re_path(r"^arvados/v1/groups/?$", GroupListView.as_view(), name="group-list"),
    re_path(r"^discovery/v1/apis/arvados/v1/rest/?$", DiscoveryView.as_view(), name="discovery"),
    re_path(r"^arvados/v1(?:/.*)?$", PathNotFoundView.as_view(), name="not-found"),
]
