"""Who is asking: stable uuids for users and groups, and the ``Actor`` behind a request."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from . import uuids
from .models import MANAGER_PERMISSION, GroupIdentity, UserIdentity


def user_uuid(user: Any) -> str:
    """The user's Arvados uuid, made (once, race-safely) the first time it is needed."""
    cached = getattr(user, "_job_tasks_uuid", None)
    if cached is not None:
        return cached
    try:
        value = user.job_tasks_identity.uuid
    except UserIdentity.DoesNotExist:
        value = _make_identity(UserIdentity, "user", user, uuids.USER_INFIX)
    user._job_tasks_uuid = value
    return value


def group_uuid(group: Group) -> str:
    """The group's Arvados uuid, made the first time it is needed."""
    try:
        return group.job_tasks_identity.uuid
    except GroupIdentity.DoesNotExist:
        return _make_identity(GroupIdentity, "group", group, uuids.GROUP_INFIX)


def _make_identity(model: type[Any], field_name: str, obj: Any, infix: str) -> str:
    try:
        with transaction.atomic():
            return model.objects.create(**{field_name: obj, "uuid": uuids.new_uuid(infix)}).uuid
    except IntegrityError:  # another request made it first
        return model.objects.get(**{field_name: obj}).uuid


def is_manager(user: Any) -> bool:
    """Job managers hold the app's permission directly or through a group; superusers implicitly."""
    if not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    known = getattr(user, "_job_tasks_has_manager_permission", None)  # read with the token
    if known is not None:
        return bool(known)
    has_perm = getattr(user, "has_perm", None)  # user models without PermissionsMixin
    return bool(has_perm is not None and has_perm(MANAGER_PERMISSION))


@dataclass
class Actor:
    """The user (and token) a request or an admin action acts for.

    The domain layer takes an ``Actor`` instead of a request, so the API, the admin
    and management commands share the same rules.
    """

    user: Any
    token_uuid: str | None = None
    _uuid: str | None = field(default=None, repr=False)

    @classmethod
    def for_user(cls, user: Any, token_uuid: str | None = None) -> Actor:
        return cls(user=user, token_uuid=token_uuid)

    @classmethod
    def for_request(cls, request: Any) -> Actor:
        """The actor of a (DRF or Django) request, made once and kept on it.

        Sharing one instance lets the view, every permission class and the domain
        reuse its cached uuid, role and groups instead of querying them again.
        """
        actor = getattr(request, "_job_tasks_actor", None)
        if actor is None or actor.user is not request.user:
            token_uuid = getattr(getattr(request, "auth", None), "uuid", None)
            actor = cls.for_user(request.user, token_uuid=token_uuid)
            request._job_tasks_actor = actor
        return actor

    @property
    def is_authenticated(self) -> bool:
        return not isinstance(self.user, AnonymousUser) and self.user.is_authenticated

    @cached_property
    def uuid(self) -> str:
        return user_uuid(self.user)

    @property
    def is_admin(self) -> bool:
        return bool(self.user.is_active and getattr(self.user, "is_superuser", False))

    @cached_property
    def is_manager(self) -> bool:
        return is_manager(self.user)

    @property
    def sees_everything(self) -> bool:
        return self.is_admin or self.is_manager

    @property
    def visibility_key(self) -> Hashable:
        """What gives ``visible_to(self)`` its SQL: everyone, or the caller's uuids.

        Keys the compiled queries of ``prepared.PreparedQuery`` (a new group
        membership makes a new query).
        """
        if self.sees_everything:
            return "everyone"
        return (self.uuid, *sorted(self.group_uuids))

    def group_ids_query(self) -> QuerySet[Any]:
        """The ids of the caller's groups, as a subquery (no round trip of its own).

        Read from the membership table alone (no join to the groups themselves: less
        for the database to plan on every request).
        """
        try:
            field = self.user._meta.get_field("groups")  # (the user may be a lazy object)
        except (AttributeError, FieldDoesNotExist):  # user models without PermissionsMixin
            return Group.objects.none().values("pk")
        memberships = field.remote_field.through.objects.filter(
            **{f"{field.m2m_field_name()}_id": self.user.pk}
        )
        return memberships.values(f"{field.m2m_reverse_field_name()}_id")

    @cached_property
    def group_uuids(self) -> frozenset[str]:
        """The uuids of the caller's groups: read with the token, or asked here."""
        known = getattr(self.user, "_job_tasks_group_uuids", None)
        if known is not None:
            return known
        return frozenset(
            GroupIdentity.objects.filter(group__in=self.group_ids_query()).values_list(
                "uuid", flat=True
            )
        )
