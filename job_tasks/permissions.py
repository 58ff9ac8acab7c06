"""DRF permission classes. Each answers one question; views combine them with ``&``.

Visibility (who may see which task) is not a permission: it is the queryset
(``JobTask.objects.visible_to``), so tasks a caller may not see are 404, never 403.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class IsActiveUser(BasePermission):
    """The caller's account is active (Arvados refuses inactive users with 403)."""

    message = "#<ArvadosModel::PermissionDeniedError: user is inactive>"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)
