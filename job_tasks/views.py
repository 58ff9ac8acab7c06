"""HTTP views of the Arvados ``job_tasks`` API (spec §5): thin orchestration only.

Each method reads parameters (``params.py``), checks their shape (``serializers.py``),
calls the domain (``operations.py``) and renders (``representation.py``). All DRF
configuration is set here, on the views, so the host project's ``REST_FRAMEWORK``
settings never change the API's behaviour.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.contrib.auth.models import Group
from django.db import DEFAULT_DB_ALIAS, transaction
from django.http import HttpRequest, HttpResponseBase
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import listing, operations, pgwrites, rules, scheduling, uuids
from .app_settings import app_settings
from .authentication import ApiTokenAuthentication
from .errors import InvalidRequest, NotFound, PreconditionFailed
from .exceptions import exception_handler
from .filters import (
    group_filter,
    parse_count,
    parse_limit,
    parse_list_params,
    parse_offset,
    parse_select,
)
from .identities import Actor, group_uuid
from .models import AuditEvent, JobTask
from .params import job_task_attributes, request_params
from .permissions import CanAssignOwner, CanSetManagerAttributes, CanWriteTask, IsActiveUser
from .renderers import AlwaysJSON, ORJSONParser, ORJSONRenderer
from .representation import (
    format_timestamp,
    render_event,
    render_group,
    render_list,
    render_task,
    render_user,
    task_etag,
)
from .serializers import validated_attributes
from .uuids import base36

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, POST, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86486400",
}
_BOOLEAN_SPELLINGS = frozenset({"true", "false", "1", "0"})
#: How often an update reads the task without a lock before it locks it (views.update).
_UNLOCKED_TRIES = 3


def request_id(request: HttpRequest) -> str:
    """The client's ``X-Request-Id`` when 1–1024 characters, else ``req-`` + 20 base-36."""
    given = request.META.get("HTTP_X_REQUEST_ID", "")
    if 1 <= len(given) <= 1024:
        return given
    return "req-" + base36(secrets.randbits(104)).rjust(20, "0")[-20:]


def overridden_to_get(request: HttpRequest) -> bool:
    """A POST that asks to be a GET: a ``_method`` form field or ``X-HTTP-Method-Override``.

    The form is read first, while the request is still a POST: Django parses the form
    bodies of POST requests only, and the token lookup reads the same fields afterwards.
    """
    content_type = request.META.get("CONTENT_TYPE", "")
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))
    if is_form and request.POST.get("_method", "").upper() == "GET":
        return True
    return request.META.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").upper() == "GET"


class ArvadosAPIView(APIView):
    """Base of every API view: token auth, the error envelope, CORS and request ids."""

    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [IsAuthenticated, IsActiveUser]
    renderer_classes = [ORJSONRenderer]
    parser_classes = [ORJSONParser, FormParser, MultiPartParser]
    content_negotiation_class = AlwaysJSON
    throttle_classes: list[Any] = []
    versioning_class = None
    metadata_class = None

    def get_exception_handler(self) -> Any:
        return exception_handler

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.request_id = request_id(request)
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # The method override reads the form body, which Django refuses when it is over
        # DATA_UPLOAD_MAX_MEMORY_SIZE or DATA_UPLOAD_MAX_NUMBER_FIELDS: here, inside
        # dispatch's exception handling, that refusal is answered in the envelope.
        if request.method == "POST" and overridden_to_get(request._request):
            request._request.method = "GET"
            action_map = getattr(self, "action_map", None)
            if action_map is not None:  # a viewset: the action follows the method
                self.action = action_map.get("get")
        super().initial(request, *args, **kwargs)

    # OPTIONS is a CORS preflight: 200, empty, before authentication (spec §5).
    def perform_authentication(self, request: Request) -> None:
        if request.method != "OPTIONS":
            super().perform_authentication(request)

    def check_permissions(self, request: Request) -> None:
        if request.method != "OPTIONS":
            super().check_permissions(request)

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(None)

    def finalize_response(
        self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        response = super().finalize_response(request, response, *args, **kwargs)
        for header, value in CORS_HEADERS.items():
            response[header] = value
        response["X-Request-Id"] = self.request_id
        return response

    @property
    def actor(self) -> Actor:
        """Who this request acts for (made once per request)."""
        return Actor.for_request(self.request)


class JobTaskViewSet(ArvadosAPIView, viewsets.GenericViewSet):
    """``/arvados/v1/job_tasks[/{uuid}]``: list, get, create, update (PUT/PATCH), delete.

    Every success is 200 with a body, as Arvados answered (never 201 or 204).
    """

    lookup_field = "uuid"
    lookup_value_regex = "[^/]+"
    permission_classes = [
        IsAuthenticated,
        IsActiveUser,
        CanWriteTask,
        CanSetManagerAttributes,
        CanAssignOwner,
    ]

    def get_queryset(self) -> Any:
        queryset = JobTask.objects.visible_to(self.actor)
        if self.request.method not in ("GET", "HEAD"):
            queryset = queryset.select_for_update()
        return queryset

    def get_object(self, *, for_update: bool | None = None) -> JobTask:
        """The task of the path if the caller may see it (else 404); locked for writes
        unless ``for_update`` says otherwise."""
        if for_update is None:
            for_update = self.request.method not in ("GET", "HEAD")
        task = operations.get_task(self.actor, self.kwargs["uuid"], for_update=for_update)
        self.check_object_permissions(self.request, task)
        return task

    def get_write(self, task: JobTask | None) -> operations.Write:
        """The planned create (``task`` None) or update of ``task``, validated (else 422).

        Made once per request; the write permission classes inspect it.
        """
        write = getattr(self, "_write", None)
        if write is None or write.task is not task:
            params = self.get_params()
            attrs = validated_attributes(job_task_attributes(self.request, params))
            if task is None:
                write = operations.plan_create(self.actor, attrs)
            else:
                write = operations.plan_update(self.actor, task, attrs)
            self._write = write
        return write

    def get_params(self) -> dict[str, Any]:
        params = getattr(self, "_params", None)
        if params is None:
            params = self._params = request_params(self.request)
        return params

    def list(self, request: Request) -> Response:
        query = parse_list_params(self.get_params())
        # Compiled once per shape of request (listing.py); the count rides on the rows.
        queryset = self.get_queryset()
        page = listing.page_rows(queryset, query, key=self.actor.visibility_key)
        total = page.total
        if query.count and total is None:
            # No row carried the count: past the end (or limit=0) it is a query of its
            # own; an empty first page with room for rows means nothing matches.
            total = query.filter(queryset).count() if query.offset or not query.limit else 0
        return Response(
            render_list(
                page.rows,
                names=page.names,
                select=query.select,
                offset=query.offset,
                limit=query.limit,
                items_available=total,
            )
        )

    def check_object_permissions(self, request: Request, obj: JobTask) -> None:
        # Preconditions come first: a stale writer learns it (412) before anything else.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            check_if_match(request.META.get("HTTP_IF_MATCH"), task_etag(obj))
        super().check_object_permissions(request, obj)

    def retrieve(self, request: Request, uuid: str) -> Response:
        select = parse_select(self.get_params().get("select"))
        return self._object_response(self.get_object(), select)

    @action(detail=True, methods=["get"])
    def history(self, request: Request, uuid: str) -> Response:
        """``GET job_tasks/{uuid}/history``: the task's audit events, newest first.

        Readable by whoever may read the task, also once it is deleted (judged by the
        owner in its last recorded state). Paged like a list: ``limit``, ``offset``,
        ``count``.
        """
        params = self.get_params()
        limit, offset = parse_limit(params.get("limit")), parse_offset(params.get("offset"))
        count = parse_count(params.get("count"))
        events = AuditEvent.objects.filter(object_uuid=uuid).order_by("-id")
        if not JobTask.objects.visible_to(self.actor).filter(uuid=uuid).exists():
            last = events.first()
            if last is None or not rules.may_see_event(self.actor, last):
                raise NotFound("Path not found")
        page = list(events[offset : offset + limit])
        body: dict[str, Any] = {
            "kind": "arvados#logList",
            "etag": "",
            "self_link": "",
            "offset": offset,
            "limit": limit,
            "items": [render_event(event, app_settings.CLUSTER_ID) for event in page],
        }
        if count:
            body["items_available"] = events.count()
        return Response(body)

    def create(self, request: Request) -> Response:
        params = self.get_params()
        _check_boolean(params, "ensure_unique_name")
        select = parse_select(params.get("select"))
        task = operations.save_create(self.actor, self.get_write(None))  # (atomic)
        return self._object_response(task, select)

    def update(self, request: Request, uuid: str) -> Response:
        select = parse_select(self.get_params().get("select"))
        return self._object_response(self._save_update(), select)

    def _save_update(self) -> JobTask:
        """Find, check and store the update; object permissions are checked on the plan.

        On PostgreSQL first without a lock: the task is read, and the update written in
        one statement only if the row is unchanged since (else read again). Updates that
        cannot be written so, and a task that keeps changing, are read locked instead.
        """
        tries = _UNLOCKED_TRIES if pgwrites.enabled(DEFAULT_DB_ALIAS) else 0
        for _ in range(tries):
            write = self.get_write(self.get_object(for_update=False))
            if not operations.updates_unlocked(write):
                break
            task = operations.save_update_unlocked(self.actor, write)
            if task is not None:
                return task
        with transaction.atomic():
            task = self.get_object(for_update=True)
            return operations.save_update(self.actor, self.get_write(task))

    partial_update = update  # PUT is partial too: SDKs send only the changed attributes

    def destroy(self, request: Request, uuid: str) -> Response:
        select = parse_select(self.get_params().get("select"))
        with transaction.atomic():
            task = operations.save_delete(self.actor, self.get_object())
        return self._object_response(task, select)

    # Scheduling (issue 5): extensions, routed explicitly in urls.py. Tasks they answer
    # are the object of spec §2.1 followed by ``lease_expires_at`` and ``attempt``.

    @action(detail=False, methods=["post"])
    def claim(self, request: Request) -> Response:
        """``POST job_tasks/claim``: take up to ``limit`` runnable tasks, leased to the caller."""
        params = self.get_params()
        limit = scheduling.claim_limit(_int_param(params, "limit"))
        tasks = scheduling.claim(
            self.actor,
            job_uuid=_uuid_param(params, "job_uuid"),
            limit=limit,
            lease=_int_param(params, "lease_seconds"),
        )
        body = render_list(
            [], names=(), select=None, offset=0, limit=limit, items_available=len(tasks)
        )
        body["items"] = [_leased(task) for task in tasks]
        return Response(body)

    @action(detail=True, methods=["post"])
    def renew(self, request: Request, uuid: str) -> Response:
        """``POST job_tasks/{uuid}/renew``: extend the caller's lease (``lease_seconds``)."""
        params = self.get_params()
        task = scheduling.renew(
            self.actor,
            uuid,
            lease=_int_param(params, "lease_seconds"),
            attempt=_int_param(params, "attempt"),
        )
        return Response(_leased(task))

    @action(detail=True, methods=["post"])
    def release(self, request: Request, uuid: str) -> Response:
        """``POST job_tasks/{uuid}/release``: the claimant gives the task back to the queue."""
        task = scheduling.release(
            self.actor, uuid, attempt=_int_param(self.get_params(), "attempt")
        )
        return Response(_leased(task))

    @action(detail=True, methods=["post"])
    def retry(self, request: Request, uuid: str) -> Response:
        """``POST job_tasks/{uuid}/retry``: a failed task goes back to the queue."""
        return Response(_leased(scheduling.retry(self.actor, uuid)))

    @action(detail=False, methods=["get"])
    def summary(self, request: Request) -> Response:
        """``GET job_tasks/summary[?job_uuid=J]``: counts, current level, mean progress."""
        job_uuid = _uuid_param(self.get_params(), "job_uuid")
        return Response(scheduling.summary(self.actor, job_uuid=job_uuid))

    def _object_response(self, task: JobTask, select: Any) -> Response:
        response = Response(render_task(task, select))
        response["ETag"] = f'"{task_etag(task)}"'
        return response


def _leased(task: JobTask) -> dict[str, Any]:
    """The wire object, then the task's lease: when it ends, and which claim it is."""
    body = render_task(task)
    body["lease_expires_at"] = format_timestamp(task.lease_expires_at)
    body["attempt"] = task.attempts
    return body


#: ASCII digits only: ``str.isdigit()`` also accepts "²" and "①", which ``int()`` refuses.
_INTEGER_RE = re.compile(r"-?[0-9]{1,19}")


def _int_param(params: dict[str, Any], name: str) -> int | None:
    """An integer parameter (a JSON integer or a string of digits), or None when absent."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
        return int(value)
    raise InvalidRequest(f"{name} parameter must be an integer")


def _uuid_param(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not uuids.is_uuid(value):
        raise InvalidRequest(f"{name} parameter must be an Arvados uuid")
    return value


def check_if_match(header: str | None, current: str) -> None:
    """``If-Match`` (spec §15.8): the etag(s) the client's change was based on.

    Quoted or bare, comma-separated, or ``*``; weak (``W/``) tags never match (RFC
    9110 §13.1.1 uses strong comparison). No header: no condition.
    """
    if header is None:
        return
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if "*" in tags:
        return
    if any(tag.strip('"') == current for tag in tags if not tag.startswith("W/")):
        return
    raise PreconditionFailed(
        f"Precondition failed: the task has changed (its etag is now {current}); "
        "get it again and reapply your change"
    )


def _check_boolean(params: dict[str, Any], name: str) -> None:
    value = params.get(name)
    if value is None:
        return
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return
    if isinstance(value, str) and value.lower() in _BOOLEAN_SPELLINGS:
        return
    raise InvalidRequest(f"{name} parameter must be a boolean, true or false")


class CurrentUserView(ArvadosAPIView):
    """``GET /arvados/v1/users/current``: the caller as an ``arvados#user``.

    Inactive users may ask (and learn that they are inactive), as in Arvados.
    """

    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        actor = self.actor
        return Response(
            render_user(
                request.user,
                uuid=actor.uuid,
                is_job_manager=actor.is_manager,
                cluster_id=app_settings.CLUSTER_ID,
            )
        )


class GroupListView(ArvadosAPIView):
    """``GET /arvados/v1/groups``: the groups whose uuids the caller may use as ``owner_uuid``.

    A user gets the groups they belong to; job managers and admins, who may give
    tasks to any group, get every group. ``filters`` on ``uuid`` and ``name``;
    ``limit``, ``offset`` and ``count`` as for tasks; ordered by name.
    """

    def get(self, request: Request) -> Response:
        params = request_params(request)
        keep = group_filter(params)
        limit, offset = parse_limit(params.get("limit")), parse_offset(params.get("offset"))
        count = parse_count(params.get("count"))
        actor = self.actor
        groups = Group.objects.order_by("name", "pk")
        if not actor.sees_everything:
            groups = groups.filter(pk__in=actor.group_ids_query())
        manager_group = app_settings.MANAGER_GROUP_NAME
        rows = [
            {"uuid": group_uuid(group), "name": group.name}
            for group in groups.select_related("job_tasks_identity")
        ]
        rows = [row for row in rows if keep(row)]
        items = [
            render_group(
                row["name"],
                row["uuid"],
                is_manager_group=row["name"] == manager_group,
                cluster_id=app_settings.CLUSTER_ID,
            )
            for row in rows[offset : offset + limit]
        ]
        body: dict[str, Any] = {
            "kind": "arvados#groupList",
            "etag": "",
            "self_link": "",
            "offset": offset,
            "limit": limit,
            "items": items,
        }
        if count:
            body["items_available"] = len(rows)
        return Response(body)


class PathNotFoundView(ArvadosAPIView):
    """Any other path under ``/arvados/v1/``: 404 ``Path not found`` in the envelope."""

    permission_classes: list[Any] = []
    authentication_classes: list[Any] = []

    def _not_found(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound("Path not found")

    get = post = put = patch = delete = head = _not_found
