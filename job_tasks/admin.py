"""Django admin for job tasks and API tokens.

Task edits go through the same domain functions as the API (``operations.py``), so
the admin can never do what the API refuses.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import operations, rules, scheduling
from .errors import JobTasksError
from .identities import Actor
from .models import ApiToken, JobTask

#: Set by the server, never typed in the admin.
SERVER_FIELDS = (
    "uuid",
    "created_at",
    "modified_at",
    "modified_by_user_uuid",
    "modified_by_client_uuid",
    "updated_at",
)
#: The lease of a claimed task (``scheduling.py``): shown, never edited.
SCHEDULING_FIELDS = (
    "claimed_by_user_uuid",
    "claimed_by_token_uuid",
    "lease_expires_at",
    "attempts",
    "expired_leases",
)
WRITABLE_FIELDS = (
    "owner_uuid",
    "job_uuid",
    "created_by_job_task_uuid",
    "sequence",
    "qsequence",
    "parameters",
    "output",
    "progress",
    "success",
    "started_at",
    "finished_at",
)


@admin.register(JobTask)
class JobTaskAdmin(admin.ModelAdmin):
    list_display = (
        "uuid",
        "job_uuid",
        "sequence",
        "qsequence",
        "state",
        "progress",
        "started_at",
        "finished_at",
        "owner_uuid",
    )
    list_filter = ("success", "sequence")
    search_fields = ("=uuid", "^job_uuid")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = (*SERVER_FIELDS, *SCHEDULING_FIELDS)
    fields = (*SERVER_FIELDS, *WRITABLE_FIELDS, *SCHEDULING_FIELDS)
    ordering = ("-modified_at", "uuid")
    actions = ("retry",)

    @admin.display(description=_("state"))
    def state(self, task: JobTask) -> str:
        return task.state

    def get_readonly_fields(self, request: HttpRequest, obj: JobTask | None = None) -> Any:
        if Actor.for_user(request.user).is_manager:
            return (*SERVER_FIELDS, *SCHEDULING_FIELDS)
        return (*SERVER_FIELDS, *SCHEDULING_FIELDS, *rules.MANAGER_ATTRIBUTES)

    @admin.action(description=_("Retry selected failed tasks"))
    def retry(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> None:
        """Send the failed tasks among those selected back to the queue (``scheduling.retry``)."""
        actor = Actor.for_user(request.user)
        count = 0
        for uuid in queryset.failed().values_list("uuid", flat=True):
            try:
                scheduling.retry(actor, uuid)
            except JobTasksError as exc:
                self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            else:
                count += 1
        self.message_user(
            request,
            ngettext("%d task sent back to the queue.", "%d tasks sent back to the queue.", count)
            % count,
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobTask]:
        return JobTask.objects.visible_to(Actor.for_user(request.user))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            with transaction.atomic():
                return super().changeform_view(request, object_id, form_url, extra_context)
        except JobTasksError as exc:
            for message in exc.messages:
                self.message_user(request, message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request: HttpRequest, obj: JobTask, form: Any, change: bool) -> None:
        actor = Actor.for_user(request.user)
        attrs = {
            name: form.cleaned_data[name] for name in form.changed_data if name in WRITABLE_FIELDS
        }
        if change:
            saved = operations.update_task(actor, obj.uuid, attrs)
        else:
            saved = operations.create_task(actor, attrs)
        obj.pk, obj.uuid = saved.pk, saved.uuid

    def delete_model(self, request: HttpRequest, obj: JobTask) -> None:
        operations.delete_task(Actor.for_user(request.user), obj.uuid)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> None:
        actor = Actor.for_user(request.user)
        for uuid in queryset.values_list("uuid", flat=True):
            operations.delete_task(actor, uuid)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Issue (the secret is shown once), revoke and expire tokens. Secrets are never stored."""

    list_display = (
        "uuid",
        "user",
        "description",
        "created_at",
        "expires_at",
        "revoked_at",
        "usable",
    )
    list_filter = ("revoked_at",)
    search_fields = ("=uuid", "description")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("uuid", "created_at", "revoked_at")
    actions = ("revoke", "expire_now")

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        username = get_user_model().USERNAME_FIELD  # whatever AUTH_USER_MODEL is
        return (*self.search_fields, f"user__{username}")

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return ["user", "description", "expires_at"]
        return ["uuid", "user", "description", "created_at", "expires_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        if obj is None:
            return ()
        return ("uuid", "user", "created_at", "revoked_at")

    @admin.display(boolean=True, description=_("usable"))
    def usable(self, token: ApiToken) -> bool:
        return token.is_usable

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, secret = ApiToken.issue(
            form.cleaned_data["user"],
            description=form.cleaned_data["description"],
            expires_at=form.cleaned_data["expires_at"],
        )
        obj.pk = token.pk
        obj.uuid = token.uuid
        self.message_user(
            request,
            _("New token (copy it now, it is not stored and will not be shown again): %s") % secret,
            messages.WARNING,
        )

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request, ngettext("%d token revoked.", "%d tokens revoked.", count) % count
        )

    @admin.action(description=_("Expire selected tokens now"))
    def expire_now(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        now = timezone.now()
        count = queryset.usable().update(expires_at=now)
        self.message_user(
            request, ngettext("%d token expired.", "%d tokens expired.", count) % count
        )
