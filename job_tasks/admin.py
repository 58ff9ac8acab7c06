"""Django admin for job tasks, API tokens and the job-manager role.

Every task change goes through the domain layer (``operations.py``, ``scheduling.py``),
so the admin can never do what the API refuses: a change form is planned and checked
against the rules while it is validated, and a refusal is shown on the form, with the
operator's input kept. The changelist costs a constant number of queries, whatever
the number of rows, and never counts more than ``COUNT_CAP`` rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    F,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import operations, rules, scheduling, signals, uuids
from .errors import JobTasksError, PermissionRefused
from .identities import Actor
from .models import (
    LEVEL,
    MANAGER_PERMISSION,
    ApiToken,
    AuditEvent,
    GroupIdentity,
    JobTask,
    UserIdentity,
)
from .renderers import loads
from .representation import STORED_ATTRIBUTES
from .serializers import JobTaskSerializer

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
#: What a person may edit: the API's writable attributes but ``uuid``, in wire order.
WRITABLE_FIELDS = tuple(
    name for name in STORED_ATTRIBUTES if name in JobTaskSerializer.writable() - {"uuid"}
)
#: Shown on the change form, computed (never stored).
DISPLAY_FIELDS = ("state_badge", "job_link", "audit_log")

#: The changelist counts at most this many rows (then says "10000+"): a COUNT over a
#: whole large table costs more than the page it is for.
COUNT_CAP = 10_000
#: Tasks shown per sequence level on the per-job page (the rest are counted).
TASKS_PER_LEVEL = 50
#: Audit events shown on a task's change form.
AUDIT_EVENTS_SHOWN = 10
#: Deletions listed on the deleted-tasks page (search for older ones).
DELETED_SHOWN = 100
#: Audit events shown on a deleted task's page.
AUDIT_HISTORY_SHOWN = 200

STATE_LABELS = {
    "todo": _("todo"),
    "running": _("running"),
    "done": _("done"),
    "failed": _("failed"),
}


def actor_for(request: HttpRequest) -> Actor:
    """The ``Actor`` of an admin request (made once per request)."""
    return Actor.for_request(request)


# --------------------------------------------------------------------------- display


def state_badge_html(state: str) -> str:
    return format_html(
        '<span class="jt-badge jt-{}">{}</span>', state, STATE_LABELS.get(state, state)
    )


def progress_bar_html(progress: float | None, state: str) -> str:
    """A bar for ``progress`` in [0, 1]; a task that succeeded shows full."""
    if progress is None and state == "done":
        progress = 1.0
    if progress is None:
        return format_html('<span class="jt-progress-none">{}</span>', "–")
    percent = max(0, min(100, round(progress * 100)))
    return format_html(
        '<span class="jt-progress" title="{}%"><span class="jt-bar jt-bar-{}" '
        'style="width: {}%"></span></span><span class="jt-percent">{}%</span>',
        percent,
        state,
        percent,
        percent,
    )


def stacked_bar_html(counts: dict[str, int], progress: float | None) -> str:
    """A bar of many tasks: done, running and failed shares side by side, todo the rest."""
    total = sum(counts.values())
    segments = []
    for state in ("done", "running", "failed"):
        if total and counts.get(state):
            width = 100 * counts[state] / total
            segments.append((state, f"{width:.2f}", f"{counts[state]} {STATE_LABELS[state]}"))
    percent = round(100 * (progress or 0))
    bars = format_html_join(
        "",
        '<span class="jt-bar jt-bar-{}" style="width: {}%" title="{}"></span>',
        segments,
    )
    return format_html(
        '<span class="jt-progress jt-stacked">{}</span><span class="jt-percent">{}%</span>',
        bars,
        percent,
    )


def timestamp_html(value: datetime | None) -> str:
    """A compact local time ("Dec 03, 19:14"), the full value on hover."""
    if value is None:
        return format_html('<span class="jt-progress-none">{}</span>', "–")
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.isoformat(),
        formats.date_format(local, "M d, H:i"),
    )


def owner_names(owner_uuids: Iterable[str]) -> dict[str, str]:
    """Usernames and group names (tagged) of the given owner uuids: at most two queries."""
    wanted = {uuid for uuid in owner_uuids if uuid}
    users = {u for u in wanted if uuids.is_uuid(u) and uuids.infix_of(u) == uuids.USER_INFIX}
    groups = {u for u in wanted if uuids.is_uuid(u) and uuids.infix_of(u) == uuids.GROUP_INFIX}
    names: dict[str, str] = {}
    if users:
        username = f"user__{get_user_model().USERNAME_FIELD}"
        names.update(UserIdentity.objects.filter(uuid__in=users).values_list("uuid", username))
    if groups:
        rows = GroupIdentity.objects.filter(uuid__in=groups).values_list("uuid", "group__name")
        names.update(
            (uuid, format_html('{} <span class="jt-kind">{}</span>', name, _("group")))
            for uuid, name in rows
        )
    return names


def owner_html(owner_uuid: str, name: str | None) -> str:
    if not name:
        return format_html('<code class="jt-uuid">{}</code>', owner_uuid)
    return format_html('<span title="{}">{}</span>', owner_uuid, name)


def _audited_state(attributes: dict[str, Any]) -> str:
    """The state (todo, running, done, failed) of a task as an audit event recorded it."""
    if attributes.get("success") is True:
        return "done"
    if attributes.get("success") is False:
        return "failed"
    return "running" if attributes.get("started_at") else "todo"


# --------------------------------------------------------------------------- changelist


class AtLeast(int):
    """A count that stopped at a cap: renders as ``10000+`` in the admin's templates.

    Templates print counts through ``localize()``, which hands ints that define
    ``__html__`` back unchanged (unless ``USE_THOUSAND_SEPARATOR`` is on).
    """

    def __str__(self) -> str:
        return f"{int(self) - 1}+"

    def __html__(self) -> str:
        return str(self)


class CappedCountPaginator(Paginator):
    """Counts at most ``COUNT_CAP + 1`` rows (``SELECT COUNT(*) FROM (... LIMIT n)``).

    Beyond the cap the count is an ``AtLeast`` and the pages stop there: an operator
    narrows a list that long with the filters, the search or the date drill-down.
    """

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        counted = self.object_list.order_by()[: COUNT_CAP + 1].count()
        return AtLeast(counted) if counted > COUNT_CAP else counted


class JobTaskChangeList(ChangeList):
    """Leaves the large columns out of the rows, and names the owners of a page at once."""

    def get_queryset(self, request: HttpRequest, *args: Any, **kwargs: Any) -> QuerySet[JobTask]:
        return super().get_queryset(request, *args, **kwargs).defer("parameters", "output")

    @cached_property
    def date_hierarchy_links(self) -> dict[str, Any]:
        """The context of ``admin/date_hierarchy.html``, as Django's ``date_hierarchy`` tag
        makes it, but with every year, month or day between the first and the last row:
        one MIN/MAX query (an index probe) instead of a DISTINCT over every row."""
        name = self.date_hierarchy
        fields = {part: f"{name}__{part}" for part in ("year", "month", "day")}
        year, month, day = (self.params.get(fields[part]) for part in ("year", "month", "day"))

        def link(filters: dict[str, Any]) -> str:
            return self.get_query_string(filters, [f"{name}__"])

        context: dict[str, Any] = {
            "show": True,
            "field_name": self.model._meta.get_field(name).verbose_name,
            "back": None,
            "choices": [],
        }
        if year and month and day:
            chosen = date(int(year), int(month), int(day))
            context["back"] = {
                "link": link({fields["year"]: year, fields["month"]: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            }
            context["choices"] = [
                {"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}
            ]
            return context
        bounds = self.queryset.aggregate(first=Min(name), last=Max(name))
        first, last = bounds["first"], bounds["last"]
        if first is not None:
            first, last = timezone.localtime(first), timezone.localtime(last)
            if not year and first.year == last.year:
                year = first.year
                if first.month == last.month:
                    month = first.month
        if year and month:
            context["back"] = {"link": link({fields["year"]: year}), "title": str(year)}
            if first is not None:
                context["choices"] = [
                    {
                        "link": link(
                            {fields["year"]: year, fields["month"]: month, fields["day"]: d}
                        ),
                        "title": capfirst(
                            formats.date_format(date(int(year), int(month), d), "MONTH_DAY_FORMAT")
                        ),
                    }
                    for d in range(first.day, last.day + 1)
                ]
        elif year:
            context["back"] = {"link": link({}), "title": _("All dates")}
            if first is not None:
                context["choices"] = [
                    {
                        "link": link({fields["year"]: year, fields["month"]: m}),
                        "title": capfirst(
                            formats.date_format(date(int(year), m, 1), "YEAR_MONTH_FORMAT")
                        ),
                    }
                    for m in range(first.month, last.month + 1)
                ]
        elif first is not None:
            context["choices"] = [
                {"link": link({fields["year"]: str(y)}), "title": str(y)}
                for y in range(first.year, last.year + 1)
            ]
        return context

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        names = owner_names(task.owner_uuid for task in rows)
        for task in rows:
            task.owner_name = names.get(task.owner_uuid)
        self.result_list = rows


class StateFilter(admin.SimpleListFilter):
    """The task's state, from ``JobTaskQuerySet``'s state methods."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("todo", _("todo")),
            ("runnable", _("todo, runnable now")),
            ("running", _("running")),
            ("lease_expired", _("running, lease expired")),
            ("done", _("done")),
            ("failed", _("failed")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> QuerySet[JobTask]:
        value = self.value()
        if value == "todo":
            return queryset.todo()
        if value == "runnable":
            return queryset.runnable()
        if value == "running":
            return queryset.running()
        if value == "lease_expired":
            return queryset.running().leased().filter(lease_expires_at__lte=timezone.now())
        if value == "done":
            return queryset.succeeded()
        if value == "failed":
            return queryset.failed()
        return queryset


class JobFilter(admin.SimpleListFilter):
    """One job: the one chosen, or a recent one (jobs of the last tasks modified)."""

    title = _("job")
    parameter_name = "job"
    #: The choices come from this many most recently modified tasks (an index scan).
    RECENT_TASKS = 200
    RECENT_JOBS = 10
    NO_JOB = "none"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        recent = model_admin.get_queryset(request).order_by("-modified_at", "uuid")
        job_uuids = recent.values_list("job_uuid", flat=True)[: self.RECENT_TASKS]
        choices: list[str] = []
        chosen = self.value()
        if chosen and chosen != self.NO_JOB:
            choices.append(chosen)
        for job_uuid in job_uuids:
            if job_uuid and job_uuid not in choices and len(choices) < self.RECENT_JOBS:
                choices.append(job_uuid)
        return [(job_uuid, job_uuid) for job_uuid in choices] + [(self.NO_JOB, _("no job"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> QuerySet[JobTask]:
        value = self.value()
        if value == self.NO_JOB:
            return queryset.filter(job_uuid__isnull=True)
        if value:
            return queryset.filter(job_uuid=value)
        return queryset


class SequenceFilter(admin.SimpleListFilter):
    """The sequence levels present (of the chosen job, when one is)."""

    title = _("sequence")
    parameter_name = "sequence"
    MOST = 30
    NONE = "none"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        # Every level from the lowest to the highest: MIN and MAX are two index probes,
        # where a DISTINCT would read every row.
        queryset = model_admin.get_queryset(request)
        job = request.GET.get(JobFilter.parameter_name)
        if job == JobFilter.NO_JOB:
            queryset = queryset.filter(job_uuid__isnull=True)
        elif job:
            queryset = queryset.filter(job_uuid=job)
        bounds = queryset.aggregate(low=Min("sequence"), high=Max("sequence"))
        choices: list[tuple[str, Any]] = []
        if bounds["low"] is not None:
            high = min(bounds["high"], bounds["low"] + self.MOST - 1)
            choices = [(str(level), level) for level in range(bounds["low"], high + 1)]
        return [*choices, (self.NONE, _("none"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> QuerySet[JobTask]:
        value = self.value()
        if value == self.NONE:
            return queryset.filter(sequence__isnull=True)
        if value:
            try:
                return queryset.filter(sequence=int(value))
            except ValueError:
                return queryset.none()
        return queryset


# --------------------------------------------------------------------------- change form


class JSONObjectField(forms.JSONField):
    """A JSON object, shown indented and parsed strictly (exact integers, no NaN)."""

    default_error_messages = {
        "invalid": _("Enter valid JSON: %(error)s"),
        "not_object": _("Enter a JSON object ({…}), not %(kind)s."),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 12, "class": "jt-json"}))
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if self.disabled or not isinstance(value, str):
            return value
        if value.strip() in ("", "null"):
            return {}
        try:
            parsed = loads(value)
        except (ValueError, RecursionError) as exc:
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"error": exc}
            ) from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError(
                self.error_messages["not_object"],
                code="not_object",
                params={"kind": type(parsed).__name__},
            )
        return parsed

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Keep what the operator typed, even when it is not JSON: never lose input.
        return forms.fields.InvalidJSONInput(data) if isinstance(data, str) else data

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial if initial is not None else {})
        except forms.ValidationError:
            return True


#: Domain messages that are about one field start with its name ("Owner uuid ...").
_MESSAGE_FIELDS = {
    "owner uuid": "owner_uuid",
    "created by job task uuid": "created_by_job_task_uuid",
    "task cannot start": "started_at",
}


class JobTaskForm(forms.ModelForm):
    """Validates a task edit as the API would: shape (the API's serializer), then the domain.

    ``clean()`` plans the write (``operations.plan_create`` / ``plan_update``, with the
    row locked) and asks ``rules.refusals``, inside a savepoint; a refusal becomes a
    form error and the operator's input stays on the page. The planned write is kept
    in ``self.write`` for ``JobTaskAdmin.save_model``. ``actor`` is set per request.
    """

    actor: Actor
    write: operations.Write | None = None

    class Meta:
        model = JobTask
        fields = WRITABLE_FIELDS  # the admin narrows these to the fieldsets
        field_classes = {"parameters": JSONObjectField}

    def attributes(self) -> dict[str, Any]:
        """The attributes the operator changed, as the API would receive them."""
        return {
            name: self.cleaned_data[name]
            for name in self.changed_data
            if name in WRITABLE_FIELDS and name in self.cleaned_data
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        attrs = self.attributes()
        if not self._shape_is_valid(attrs):
            return cleaned
        try:
            with transaction.atomic():  # a savepoint: nothing here survives a refusal
                if self.instance.pk is None:
                    write = operations.plan_create(self.actor, attrs)
                else:
                    task = operations.get_task(self.actor, self.instance.uuid, for_update=True)
                    write = operations.plan_update(self.actor, task, attrs)
                reasons = rules.refusals(self.actor, write)
                if reasons:
                    raise PermissionRefused(*reasons)
        except JobTasksError as exc:
            for message in exc.messages:
                self._add_domain_error(message)
        else:
            self.write = write
        return cleaned

    def _shape_is_valid(self, attrs: dict[str, Any]) -> bool:
        """The API's type and range checks (``JobTaskSerializer``) on the changed values."""
        data = {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in attrs.items()
        }
        serializer = JobTaskSerializer(data=data, partial=True)
        if serializer.is_valid():
            return True
        for name, errors in serializer.errors.items():
            for error in errors:
                self.add_error(name if name in self.fields else None, f"{error}")
        return False

    def _add_domain_error(self, message: str) -> None:
        lowered = message.lower()
        for prefix, name in _MESSAGE_FIELDS.items():
            if lowered.startswith(prefix) and name in self.fields:
                self.add_error(name, message)
                return
        self.add_error(None, message)


# --------------------------------------------------------------------------- task admin


@admin.register(JobTask)
class JobTaskAdmin(admin.ModelAdmin):
    """Tasks: watched in the changelist and the per-job page, fixed in the change form.

    ``get_queryset`` shows each user the tasks the API shows them (``visible_to``).
    """

    form = JobTaskForm
    list_display = (
        "uuid",
        "job",
        "sequence",
        "qsequence",
        "state_badge",
        "progress_bar",
        "started",
        "finished",
        "owner",
    )
    list_filter = (StateFilter, SequenceFilter, JobFilter)
    # Anchored, so that they use the indexes: ``get_search_results`` makes them exact
    # (case-sensitive) lookups, since uuids are lowercase.
    search_fields = ("=uuid", "^job_uuid")
    search_help_text = _("A task uuid, a job uuid, or the start of a job uuid.")
    date_hierarchy = "created_at"
    show_full_result_count = False
    # JobTask has no foreign key; the owners of a page are named in one query per kind
    # (users, groups) by JobTaskChangeList.
    list_select_related = ()
    list_per_page = 100
    paginator = CappedCountPaginator
    show_facets = admin.ShowFacets.NEVER  # facet counts scan the whole table
    ordering = ("-modified_at", "uuid")
    actions = ("retry", "mark_failed", "release_expired_leases")
    readonly_fields = (*SERVER_FIELDS, *SCHEDULING_FIELDS, *DISPLAY_FIELDS)

    # ---- permissions and forms

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobTask]:
        return JobTask.objects.visible_to(actor_for(request))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobTaskChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: JobTask | None = None) -> Any:
        fields = (*SERVER_FIELDS, *SCHEDULING_FIELDS, *DISPLAY_FIELDS)
        if not actor_for(request).is_manager:
            fields = (*fields, *rules.MANAGER_ATTRIBUTES)
        if obj is not None and not self.has_change_permission(request, obj):
            fields = (*fields, "parameters_json")
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: JobTask | None = None) -> Any:
        parameters = (
            "parameters_json"
            if obj is not None and not self.has_change_permission(request, obj)
            else "parameters"
        )
        if obj is None:
            return [
                (
                    None,
                    {
                        "fields": (
                            "owner_uuid",
                            "job_uuid",
                            "created_by_job_task_uuid",
                            ("sequence", "qsequence"),
                        )
                    },
                ),
                (_("Work"), {"fields": (parameters, "output", "progress")}),
                (_("Outcome"), {"fields": ("success", "started_at", "finished_at")}),
            ]
        return [
            (
                None,
                {
                    "fields": (
                        ("uuid", "state_badge"),
                        "owner_uuid",
                        "job_uuid",
                        "job_link",
                        "created_by_job_task_uuid",
                        ("sequence", "qsequence"),
                    )
                },
            ),
            (_("Work"), {"fields": (parameters, "output", "progress")}),
            (_("Outcome"), {"fields": ("success", "started_at", "finished_at")}),
            (
                _("Lease"),
                # open while a claimant holds the task
                {
                    "fields": SCHEDULING_FIELDS,
                    "classes": () if obj.lease_expires_at else ("collapse",),
                },
            ),
            (
                _("Record"),
                {"fields": SERVER_FIELDS[1:], "classes": ("collapse",)},
            ),
            (_("Recent changes (audit log)"), {"fields": ("audit_log",)}),
        ]

    def get_form(
        self, request: HttpRequest, obj: JobTask | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": actor_for(request)})

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {
            "owner_uuid": actor_for(request).uuid,
            **super().get_changeform_initial_data(request),
        }

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Refusals are form errors (JobTaskForm.clean). This only catches a race
        # between validating and saving, e.g. a uuid taken in between.
        try:
            with transaction.atomic():
                return super().changeform_view(request, object_id, form_url, extra_context)
        except JobTasksError as exc:
            for message in exc.messages:
                self.message_user(request, message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request: HttpRequest, obj: JobTask, form: Any, change: bool) -> None:
        """Save the write planned and checked by ``JobTaskForm.clean``, through the domain."""
        actor = actor_for(request)
        write = form.write
        if write is None:  # a form validated without planning (never from the admin views)
            raise PermissionRefused("The change was not checked")
        saved = (
            operations.save_update(actor, write) if change else operations.save_create(actor, write)
        )
        obj.pk, obj.uuid = saved.pk, saved.uuid

    def delete_model(self, request: HttpRequest, obj: JobTask) -> None:
        operations.delete_task(actor_for(request), obj.uuid)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> None:
        actor = actor_for(request)
        for uuid in queryset.values_list("uuid", flat=True):
            operations.delete_task(actor, uuid)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[JobTask], search_term: str
    ) -> tuple[QuerySet[JobTask], bool]:
        """``=uuid`` and ``^job_uuid`` as index lookups: a whole uuid matches either exactly,
        anything else is the start of a job uuid (uuids are lowercase)."""
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if uuids.is_uuid(term):
            return queryset.filter(Q(uuid=term) | Q(job_uuid=term)), False
        if len(term) >= uuids.UUID_LENGTH:
            return queryset.none(), False
        # LIKE 'term%' cannot use a plain index outside the C collation; the range around
        # it can (every uuid starting with ``term`` lies between ``term`` and ``term``
        # padded with "z", the largest uuid character), and LIKE keeps it exact.
        upper = term + "z" * (uuids.UUID_LENGTH - len(term))
        return queryset.filter(
            job_uuid__gte=term, job_uuid__lte=upper, job_uuid__startswith=term
        ), False

    # ---- columns

    @admin.display(description=_("job"), ordering="job_uuid")
    def job(self, task: JobTask) -> str:
        if not task.job_uuid:
            return "–"
        url = reverse("admin:job_tasks_jobtask_job", args=[task.job_uuid])
        return format_html(
            '<a href="{}" title="{}"><code class="jt-uuid">{}</code></a>',
            url,
            _("All tasks of this job, by sequence level"),
            task.job_uuid,
        )

    @admin.display(description=_("state"))
    def state_badge(self, task: JobTask) -> str:
        return state_badge_html(task.state)

    @admin.display(description=_("progress"), ordering="progress")
    def progress_bar(self, task: JobTask) -> str:
        return progress_bar_html(task.progress, task.state)

    @admin.display(description=_("started at"), ordering="started_at")
    def started(self, task: JobTask) -> str:
        return timestamp_html(task.started_at)

    @admin.display(description=_("finished at"), ordering="finished_at")
    def finished(self, task: JobTask) -> str:
        return timestamp_html(task.finished_at)

    @admin.display(description=_("owner"), ordering="owner_uuid")
    def owner(self, task: JobTask) -> str:
        if not hasattr(task, "owner_name"):
            task.owner_name = owner_names([task.owner_uuid]).get(task.owner_uuid)
        return owner_html(task.owner_uuid, task.owner_name)

    @admin.display(description=_("tasks of the job"))
    def job_link(self, task: JobTask) -> str:
        if not task.job_uuid:
            return _("This task belongs to no job.")
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:job_tasks_jobtask_job", args=[task.job_uuid]),
            _("All tasks of this job, by sequence level, with its summary"),
        )

    @admin.display(description=_("parameters"))
    def parameters_json(self, task: JobTask) -> str:
        return format_html(
            '<pre class="jt-json">{}</pre>',
            json.dumps(task.parameters, indent=2, ensure_ascii=False),
        )

    @admin.display(description=_("changes"))
    def audit_log(self, task: JobTask) -> str:
        events = list(
            AuditEvent.objects.filter(object_uuid=task.uuid)
            .order_by("-id")
            .values_list("created_at", "event_type", "user_uuid", "summary", "new_attributes")[
                :AUDIT_EVENTS_SHOWN
            ]
        )
        if not events:
            return _("No recorded change.")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S"),
                    event,
                    user or _("system"),
                    summary,
                )
                for when, event, user, summary, _new in events
            ),
        )
        return format_html(
            '<table class="jt-audit"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "<th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("time"),
            _("event"),
            _("by"),
            _("summary"),
            rows,
        )

    # ---- actions

    @admin.action(description=_("Retry selected failed tasks"), permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> None:
        """Send the failed tasks among those selected back to the queue (``scheduling.retry``)."""
        actor = actor_for(request)
        selected = queryset.count()
        done = self._each(
            request,
            queryset.failed().values_list("uuid", flat=True),
            lambda uuid: scheduling.retry(actor, uuid),
        )
        self._report(
            request,
            ngettext(
                "%(count)d task sent back to the queue.",
                "%(count)d tasks sent back to the queue.",
                done,
            )
            % {"count": done},
            selected - done,
            _("not failed"),
        )

    @admin.action(description=_("Mark selected tasks as failed"), permissions=["change"])
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> Any:
        """Fail the unfinished tasks among those selected, after a confirmation page.

        Goes through ``operations.update_task`` (``success = false``, and a
        ``finished_at`` for a started task), so the direct children of each are deleted
        and every change is audited, as through the API.
        """
        candidates = (queryset.todo() | queryset.running()).order_by("qsequence", "id")
        if request.POST.get("post") != "yes":
            return self._confirm_mark_failed(request, queryset, candidates)
        actor = actor_for(request)
        selected = queryset.count()

        def fail(uuid: str) -> None:
            task = operations.get_task(actor, uuid)
            attrs: dict[str, Any] = {"success": False}
            if task.started_at is not None and task.finished_at is None:
                attrs["finished_at"] = timezone.now()
            operations.update_task(actor, uuid, attrs)

        done = self._each(request, candidates.values_list("uuid", flat=True), fail)
        self._report(
            request,
            ngettext("%(count)d task marked as failed.", "%(count)d tasks marked as failed.", done)
            % {"count": done},
            selected - done,
            _("already finished"),
        )
        return None

    def _confirm_mark_failed(
        self, request: HttpRequest, queryset: QuerySet[JobTask], candidates: QuerySet[JobTask]
    ) -> TemplateResponse:
        shown = list(candidates.values_list("pk", "uuid", "job_uuid", "sequence")[:200])
        count = candidates.count()
        children = JobTask.objects.filter(
            created_by_job_task_uuid__in=candidates.values("uuid")
        ).count()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Mark tasks as failed?"),
            "opts": self.opts,
            "tasks": shown,
            "count": count,
            "more": count - len(shown),
            "skipped": queryset.count() - count,
            "children": children,
            "selected_pks": queryset.values_list("pk", flat=True),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/job_tasks/jobtask/mark_failed_confirmation.html", context
        )

    @admin.action(description=_("Release expired leases of selected tasks"), permissions=["change"])
    def release_expired_leases(self, request: HttpRequest, queryset: QuerySet[JobTask]) -> None:
        """Apply the expired leases now (``scheduling.expire_leases``), as the next claim would.

        Acts when a selected task is running on a lease that ran out. ``expire_leases``
        applies every expired lease (at most ``EXPIRE_BATCH`` a call), not only those
        selected: the others are reported apart.
        """
        now = timezone.now()
        expired = queryset.running().leased().filter(lease_expires_at__lte=now)
        wanted = set(expired.values_list("uuid", flat=True))
        selected = queryset.count()
        if not wanted:
            self.message_user(
                request, _("No selected task is running on an expired lease."), messages.WARNING
            )
            return
        requeued: set[str] = set()
        failed: set[str] = set()
        others = 0
        while True:
            result = scheduling.expire_leases(now=now)
            if not len(result):
                break
            requeued |= wanted.intersection(result.requeued)
            failed |= wanted.intersection(result.failed)
            others += len(set(result.requeued) - wanted) + len(set(result.failed) - wanted)
            if wanted <= requeued | failed:
                break
        done = len(requeued) + len(failed)
        message = ngettext(
            "%(count)d expired lease released: %(requeued)d task back in the queue, "
            "%(failed)d failed (its lease ran out too often).",
            "%(count)d expired leases released: %(requeued)d tasks back in the queue, "
            "%(failed)d failed (their lease ran out too often).",
            done,
        ) % {"count": done, "requeued": len(requeued), "failed": len(failed)}
        if others:
            message += " " + ngettext(
                "%(others)d other expired lease was released too.",
                "%(others)d other expired leases were released too.",
                others,
            ) % {"others": others}
        self._report(request, message, selected - done, _("not on an expired lease"))

    def _each(self, request: HttpRequest, uuids_: Iterable[str], change: Any) -> int:
        """Apply ``change`` to each uuid in its own transaction; refusals become messages."""
        done = 0
        for uuid in list(uuids_):
            try:
                change(uuid)
            except JobTasksError as exc:
                self.message_user(request, f"{uuid}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                done += 1
        return done

    def _report(self, request: HttpRequest, message: str, skipped: int, why: str) -> None:
        if skipped > 0:
            message += " " + ngettext(
                "%(count)d selected task skipped (%(why)s).",
                "%(count)d selected tasks skipped (%(why)s).",
                skipped,
            ) % {"count": skipped, "why": why}
        self.message_user(request, message, messages.SUCCESS)

    # ---- the per-job page

    def get_urls(self) -> list[URLPattern]:
        job_view = self.admin_site.admin_view(self.job_view)
        deleted_view = self.admin_site.admin_view(self.deleted_view)
        deleted_task_view = self.admin_site.admin_view(self.deleted_task_view)
        return [
            path("job/<str:job_uuid>/", job_view, name="job_tasks_jobtask_job"),
            path("deleted/", deleted_view, name="job_tasks_jobtask_deleted"),
            path(
                "deleted/<str:task_uuid>/", deleted_task_view, name="job_tasks_jobtask_deleted_task"
            ),
            *super().get_urls(),
        ]

    # ---- deleted tasks: their last state, their history, restore

    def deleted_events(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        """The deletions still in force that the user may see: the last event of a task
        that is gone. Judged, like the API's history, by the owner in its last state."""
        actor = actor_for(request)
        later = AuditEvent.objects.filter(
            object_uuid=OuterRef("object_uuid"), id__gt=OuterRef("id")
        )
        events = AuditEvent.objects.filter(event_type=AuditEvent.Event.DELETE).exclude(
            Exists(JobTask.objects.filter(uuid=OuterRef("object_uuid")))
        )
        events = events.exclude(Exists(later))
        if not actor.sees_everything:
            events = events.filter(
                old_attributes__owner_uuid__in=[actor.uuid, *sorted(actor.group_uuids)]
            )
        return events.order_by("-id")

    def deleted_view(self, request: HttpRequest) -> TemplateResponse:
        """The most recent deletions (``DELETED_SHOWN``), searchable by task or job uuid."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        events = self.deleted_events(request)
        term = request.GET.get("q", "").strip().lower()
        if term:
            events = events.filter(Q(object_uuid=term) | Q(old_attributes__job_uuid=term))
        rows = [
            {
                "uuid": event.object_uuid,
                "job_uuid": (event.old_attributes or {}).get("job_uuid"),
                "sequence": (event.old_attributes or {}).get("sequence"),
                "badge": state_badge_html(_audited_state(event.old_attributes or {})),
                "deleted_at": event.created_at,
                "deleted_by": event.user_uuid,
                "summary": event.summary,
                "url": reverse("admin:job_tasks_jobtask_deleted_task", args=[event.object_uuid]),
            }
            for event in events[: DELETED_SHOWN + 1]
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Deleted tasks"),
            "opts": self.opts,
            "rows": rows[:DELETED_SHOWN],
            "more": len(rows) > DELETED_SHOWN,
            "shown": DELETED_SHOWN,
            "term": term,
        }
        return TemplateResponse(request, "admin/job_tasks/jobtask/deleted.html", context)

    def deleted_task_view(self, request: HttpRequest, task_uuid: str) -> HttpResponse:
        """A deleted task: its last state and its whole history; POST restores it
        (``operations.restore_task``: same uuid, audited)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        actor = actor_for(request)
        if request.method == "POST":
            if not self.has_add_permission(request):
                raise PermissionDenied
            try:
                task = operations.restore_task(actor, task_uuid)
            except JobTasksError as exc:
                for message in exc.messages:
                    self.message_user(request, message, messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            self.message_user(
                request,
                _("Task %(uuid)s restored from its last state.") % {"uuid": task.uuid},
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:job_tasks_jobtask_change", args=[task.pk]))
        events = AuditEvent.objects.filter(object_uuid=task_uuid).order_by("-id")
        last = events.first()
        if last is None or not rules.may_see_event(actor, last):
            raise Http404(_("No deleted task %(uuid)s is visible to you.") % {"uuid": task_uuid})
        history = list(events[:AUDIT_HISTORY_SHOWN])
        context = {
            **self.admin_site.each_context(request),
            "title": _("Deleted task %(uuid)s") % {"uuid": task_uuid},
            "opts": self.opts,
            "task_uuid": task_uuid,
            "deleted": last.event_type == AuditEvent.Event.DELETE,
            "exists_pk": JobTask.objects.filter(uuid=task_uuid)
            .values_list("pk", flat=True)
            .first(),
            "last_state": json.dumps(
                last.old_attributes if last.event_type == AuditEvent.Event.DELETE else None,
                indent=2,
                ensure_ascii=False,
            ),
            "deletion": last,
            "history": history,
            "more_history": events.count() - len(history)
            if len(history) == AUDIT_HISTORY_SHOWN
            else 0,
            "may_restore": self.has_add_permission(request),
        }
        return TemplateResponse(request, "admin/job_tasks/jobtask/deleted_task.html", context)

    def job_view(self, request: HttpRequest, job_uuid: str) -> TemplateResponse:
        """A job's tasks grouped by sequence level, with the job summary (constant queries)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        actor = actor_for(request)
        summary = scheduling.summary(actor, job_uuid=job_uuid)
        if not summary["items_available"]:
            raise Http404(_("No task of this job is visible to you."))
        tasks = self.get_queryset(request).filter(job_uuid=job_uuid)
        levels = {
            row["level"]: {**row, "tasks": []}
            for row in tasks.values(level=LEVEL)
            .annotate(
                # The states of JobTaskQuerySet.todo / running / succeeded / failed.
                total=Count("pk"),
                todo=Count("pk", filter=Q(started_at__isnull=True, success__isnull=True)),
                running=Count("pk", filter=Q(started_at__isnull=False, success__isnull=True)),
                done=Count("pk", filter=Q(success=True)),
                failed=Count("pk", filter=Q(success=False)),
                progress=Avg(
                    Case(
                        When(success=True, then=Value(1.0)),
                        default=Coalesce(F("progress"), Value(0.0)),
                        output_field=FloatField(),
                    )
                ),
            )
            .order_by("level")
        }
        rows = list(
            tasks.defer("parameters", "output")
            .annotate(
                level=LEVEL,
                row=Window(
                    RowNumber(), partition_by=[LEVEL], order_by=[F("qsequence").asc(), "id"]
                ),
            )
            .filter(row__lte=TASKS_PER_LEVEL)
            .order_by("level", "qsequence", "id")
        )
        names = owner_names(task.owner_uuid for task in rows)
        for task in rows:
            task.owner_html = owner_html(task.owner_uuid, names.get(task.owner_uuid))
            task.badge = state_badge_html(task.state)
            task.bar = progress_bar_html(task.progress, task.state)
            task.started = timestamp_html(task.started_at)
            task.finished = timestamp_html(task.finished_at)
            levels[task.level]["tasks"].append(task)
        changelist = reverse("admin:job_tasks_jobtask_changelist")
        for level in levels.values():
            level["more"] = level["total"] - len(level["tasks"])
            level["bar"] = stacked_bar_html(
                {name: level[name] for name in ("todo", "running", "done", "failed")},
                level["progress"],
            )
            level["list_url"] = (
                changelist + "?" + urlencode({"job": job_uuid, "sequence": level["level"]})
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Job %(job)s") % {"job": job_uuid},
            "opts": self.opts,
            "job_uuid": job_uuid,
            "summary": summary,
            "summary_bar": stacked_bar_html(
                {name: summary[name] for name in ("todo", "running", "done", "failed")},
                summary["progress"],
            ),
            "counts": [
                (name, STATE_LABELS[name], summary[name])
                for name in ("todo", "running", "done", "failed")
            ],
            "levels": list(levels.values()),
            "list_url": changelist + "?" + urlencode({"job": job_uuid}),
            "tasks_per_level": TASKS_PER_LEVEL,
        }
        return TemplateResponse(request, "admin/job_tasks/jobtask/job.html", context)


# --------------------------------------------------------------------------- tokens and roles


class TokenStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("usable", _("usable")), ("expired", _("expired")), ("revoked", _("revoked"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
        value = self.value()
        if value == "usable":
            return queryset.usable()
        if value == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=timezone.now())
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Issue (the secret is shown once), revoke and expire tokens; grant the job-manager role.

    Secrets are never stored. The roles page (``roles/``) needs the permission to
    change users, the power that already lets an admin edit anyone's groups.
    """

    list_display = (
        "uuid",
        "user",
        "description",
        "created_at",
        "expires_at",
        "revoked_at",
        "usable",
    )
    list_filter = (TokenStatusFilter,)
    search_fields = ("=uuid", "description")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("uuid", "created_at", "revoked_at")
    actions = ("revoke", "expire_now")
    ordering = ("-created_at", "-id")

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
            format_html(
                '{} <code class="jt-secret">{}</code>',
                _("New token (copy it now, it is not stored and will not be shown again):"),
                secret,
            ),
            messages.WARNING,
        )

    @admin.action(description=_("Revoke selected tokens"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request, ngettext("%d token revoked.", "%d tokens revoked.", count) % count
        )

    @admin.action(description=_("Expire selected tokens now"), permissions=["change"])
    def expire_now(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        now = timezone.now()
        count = queryset.usable().update(expires_at=now)
        self.message_user(
            request, ngettext("%d token expired.", "%d tokens expired.", count) % count
        )

    # ---- the job-manager role

    def get_urls(self) -> list[URLPattern]:
        roles = self.admin_site.admin_view(self.roles_view)
        return [
            path("roles/", roles, name="job_tasks_apitoken_roles"),
            *super().get_urls(),
        ]

    @staticmethod
    def may_manage_roles(request: HttpRequest) -> bool:
        User = get_user_model()
        return bool(request.user.has_perm(f"{User._meta.app_label}.change_{User._meta.model_name}"))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"may_manage_roles": self.may_manage_roles(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def roles_view(self, request: HttpRequest) -> HttpResponse:
        """List job managers; grant the role (the manager group) or take it back."""
        if not self.may_manage_roles(request):
            raise PermissionDenied
        User = get_user_model()
        if not hasattr(User, "groups") or not hasattr(User, "user_permissions"):
            raise Http404(_("This user model has no groups or permissions."))
        group = signals.manager_group()
        app_label, codename = MANAGER_PERMISSION.split(".")
        permission = Permission.objects.get(content_type__app_label=app_label, codename=codename)
        url = reverse("admin:job_tasks_apitoken_roles")
        if request.method == "POST":
            username = request.POST.get("username", "").strip()
            try:
                user = User._default_manager.get_by_natural_key(username)
            except User.DoesNotExist:
                self.message_user(request, _("No user %(name)s.") % {"name": username}, "error")
                return HttpResponseRedirect(url)
            if "grant" in request.POST:
                user.groups.add(group)
                self.message_user(
                    request,
                    _("%(name)s is now a job manager (member of “%(group)s”).")
                    % {"name": username, "group": group.name},
                )
            elif "revoke" in request.POST:
                user.groups.remove(group)
                user.user_permissions.remove(permission)
                message = _("%(name)s is no longer a job manager.") % {"name": username}
                if getattr(user, "is_superuser", False):
                    message = _(
                        "%(name)s left the job-manager group but, as a superuser, keeps the role."
                    ) % {"name": username}
                self.message_user(request, message)
            return HttpResponseRedirect(url)
        managers = (
            User._default_manager.filter(
                Q(groups=group) | Q(user_permissions=permission) | Q(is_superuser=True)
            )
            .distinct()
            .order_by(User.USERNAME_FIELD)
        )
        in_group = set(group.user_set.values_list("pk", flat=True))
        direct = set(permission.user_set.values_list("pk", flat=True))
        other_groups = permission.group_set.exclude(pk=group.pk)
        rows = [
            {
                "username": user.get_username(),
                "active": user.is_active,
                "how": ", ".join(
                    str(reason)
                    for reason, holds in (
                        (_("group “%(group)s”") % {"group": group.name}, user.pk in in_group),
                        (_("direct permission"), user.pk in direct),
                        (_("superuser"), getattr(user, "is_superuser", False)),
                    )
                    if holds
                ),
                "removable": user.pk in in_group or user.pk in direct,
            }
            for user in managers
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Job managers"),
            "opts": self.opts,
            "rows": rows,
            "group": group,
            "other_groups": list(other_groups.values_list("name", flat=True)),
            "permission": MANAGER_PERMISSION,
        }
        return TemplateResponse(request, "admin/job_tasks/apitoken/roles.html", context)
