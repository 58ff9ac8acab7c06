"""DRF permission classes. Each answers one question; the viewset lists them all.

Visibility (who may see which task) is not a permission: it is the queryset
(``JobTask.objects.visible_to``), so tasks a caller may not see are 404, never 403.
The questions themselves are answered by ``rules.py``, which the domain layer asks
again before writing, so the admin obeys the same rules.

The write permissions require a view with ``get_write(task)`` returning the planned
``operations.Write`` (``JobTaskViewSet`` has one): planning validates the request
first, so bad input is a 422 before any 403, as Arvados orders them.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from . import rules
from .identities import Actor
from .models import JobTask

_CREATE = frozenset({"create"})
_UPDATE = frozenset({"update", "partial_update"})


def _actor(request: Request) -> Actor:
    return Actor.for_request(request)


def _planned_write(view: Any, task: JobTask | None) -> Any:
    get_write = getattr(view, "get_write", None)
    if get_write is None:
        raise ImproperlyConfigured(
            f"{type(view).__name__} must define get_write(task) to use the job task "
            "write permissions."
        )
    return get_write(task)


class IsActiveUser(BasePermission):
    """Is the caller's account active? (Arvados refuses inactive users with 403.)"""

    message = rules.INACTIVE

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)


class CanWriteTask(BasePermission):
    """May the caller change or delete this task? (Safe methods need only visibility.)"""

    message = rules.NOT_WRITABLE

    def has_object_permission(self, request: Request, view: Any, obj: JobTask) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return rules.may_write_task(_actor(request), obj)


class _WriteRule(BasePermission):
    """Applies one ``rules`` function to the planned create (before the view runs) or
    update (once the task is found, so an unknown task stays a 404)."""

    def refusal(self, actor: Actor, write: Any) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def _allowed(self, request: Request, view: Any, task: JobTask | None) -> bool:
        reason = self.refusal(_actor(request), _planned_write(view, task))
        if reason:
            self.message = reason
        return reason is None

    def has_permission(self, request: Request, view: Any) -> bool:
        if getattr(view, "action", None) in _CREATE:
            return self._allowed(request, view, None)
        return True

    def has_object_permission(self, request: Request, view: Any, obj: JobTask) -> bool:
        if getattr(view, "action", None) in _UPDATE:
            return self._allowed(request, view, obj)
        return True


class CanSetManagerAttributes(_WriteRule):
    """May the caller set or change ``qsequence``, ``job_uuid`` and
    ``created_by_job_task_uuid`` as this write does? (Job managers; or a running
    task queuing follow-up work in its own job: spec §15.3.)"""

    def refusal(self, actor: Actor, write: Any) -> str | None:
        return rules.manager_attribute_refusal(actor, write)


class CanAssignOwner(_WriteRule):
    """May the caller give the task the ``owner_uuid`` this write names (and take it
    from the old owner)?"""

    def refusal(self, actor: Actor, write: Any) -> str | None:
        return rules.owner_refusal(actor, write)
