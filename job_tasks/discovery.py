"""The Arvados discovery document (spec §14), which the Python SDK builds itself from.

``GET /discovery/v1/apis/arvados/v1/rest`` (POST too) answers, without authentication,
a Google-discovery ``restDescription`` of every resource and method the server offers.

The document is assembled from a small registry: schemas (the shapes of objects) and
:class:`DiscoveryMethod` entries (one per SDK method). Adding a method is one entry::

    registry.add_methods(
        DiscoveryMethod("job_tasks", "claim", "POST", "job_tasks/claim",
                        "Claim the next runnable task.", response="LeasedJobTaskList"),
    )

and a resource with the usual CRUD methods is ``registry.add_schema(...)`` plus
``registry.add_methods(*crud_methods(...))``. Everything but ``rootUrl`` / ``baseUrl``
is cached per ``JOB_TASKS`` settings (and rebuilt when the registry changes); those
two come from the request's scheme and ``Host``, port included.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rest_framework.request import Request
from rest_framework.response import Response

from .app_settings import DEFAULTS, app_settings
from .uuids import JOB_TASK_INFIX
from .views import ArvadosAPIView

#: Where the SDK looks for the document, relative to the API's root.
DISCOVERY_PATH = "discovery/v1/apis/arvados/v1/rest"
#: Where the methods' paths are relative to, from the API's root.
SERVICE_PATH = "arvados/v1/"

SCOPE = "https://api.curoverse.com/auth/arvados"
READONLY_SCOPE = "https://api.curoverse.com/auth/arvados.readonly"

#: Arvados let clients cache the document for 24 hours; one hour here, so that methods
#: added by a server upgrade reach SDK clients (which cache it on disk) the same day.
CACHE_CONTROL = "public, max-age=3600"

ParameterType = Literal["string", "integer", "number", "boolean", "array", "object"]
_PATH_PARAMETER_RE = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class DiscoveryParameter:
    """One parameter of a method (or of every method, at the top level).

    ``array`` and ``object`` parameters are sent by the SDK as JSON-encoded strings in
    the query string. ``default`` is written as a string (as Arvados did, for the Java
    SDK); it may be a callable, read when the document is built (for settings).
    """

    type: ParameterType = "string"
    description: str = ""
    location: Literal["query", "path"] = "query"
    required: bool = False
    default: object | Callable[[], object] | None = None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "type": self.type,
            "description": self.description,
            "location": self.location,
            "required": self.required,
        }
        default = self.default() if callable(self.default) else self.default
        if default is not None:
            described["default"] = _as_default_string(default)
        return described


def _as_default_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class DiscoveryMethod:
    """One SDK method: ``api.<resource>().<name>(**parameters)``.

    ``path`` is relative to ``/arvados/v1/``; each ``{name}`` in it is a required path
    parameter (a string, unless ``parameters`` describes it), and together they make
    ``parameterOrder``. ``request`` names the body's wrapper key and its schema, e.g.
    ``("job_task", "JobTask")`` for ``{"job_task": {...}}``. ``response`` names the
    schema of the answer (``None``: untyped JSON). ``read_only`` methods also accept
    the read-only scope.
    """

    resource: str
    name: str
    http_method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    description: str
    parameters: Mapping[str, DiscoveryParameter] = field(default_factory=dict)
    request: tuple[str, str] | None = None
    response: str | None = None
    read_only: bool = False

    @property
    def id(self) -> str:
        return f"arvados.{self.resource}.{self.name}"

    @property
    def path_parameters(self) -> list[str]:
        return _PATH_PARAMETER_RE.findall(self.path)

    def alias(self, name: str) -> DiscoveryMethod:
        """The same method under another name (``index`` for ``list``, ...)."""
        return replace(self, name=name)

    def describe(self) -> dict[str, Any]:
        parameters = {
            name: DiscoveryParameter(
                description="The UUID of the object in question.",
                location="path",
                required=True,
            )
            for name in self.path_parameters
        }
        parameters.update(self.parameters)
        described: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "httpMethod": self.http_method,
            "description": self.description,
            "parameters": {name: value.describe() for name, value in parameters.items()},
            "parameterOrder": self.path_parameters,
        }
        if self.request is not None:
            key, schema = self.request
            described["request"] = {"required": True, "properties": {key: {"$ref": schema}}}
        described["response"] = {"$ref": self.response} if self.response else {}
        described["scopes"] = [SCOPE, READONLY_SCOPE] if self.read_only else [SCOPE]
        return described


def object_schema(
    name: str,
    description: str,
    properties: Mapping[str, tuple[str, str]],
    uuid_prefix: str | None = None,
) -> dict[str, Any]:
    """An object schema: ``properties`` maps each attribute to (type, description).

    ``uuid_prefix`` is the type infix of the objects' uuids, for objects that have one.
    """
    schema: dict[str, Any] = {"id": name, "description": description, "type": "object"}
    if uuid_prefix is not None:
        schema["uuidPrefix"] = uuid_prefix
    schema["properties"] = {
        attribute: {"type": type_, "description": text}
        for attribute, (type_, text) in properties.items()
    }
    return schema


def list_schema(name: str, kind: str) -> dict[str, Any]:
    """The schema of a list of ``name`` objects (Arvados's, plus what we really send)."""
    return {
        "id": f"{name}List",
        "description": f"A list of {name} objects.",
        "type": "object",
        "properties": {
            "kind": {
                "type": "string",
                "description": f"Object type. Always {kind}.",
                "default": kind,
            },
            "etag": {"type": "string", "description": "List version (always empty)."},
            "self_link": {"type": "string", "description": "Always empty."},
            "offset": {"type": "integer", "description": "The offset of the first item."},
            "limit": {"type": "integer", "description": "The effective page size."},
            "items": {
                "type": "array",
                "description": f"The list of {name} objects.",
                "items": {"$ref": name},
            },
            "items_available": {
                "type": "integer",
                "description": "How many objects match (left out with count=none).",
            },
            "next_link": {"type": "string", "description": "Never sent."},
            "next_page_token": {"type": "string", "description": "Never sent."},
            "selfLink": {"type": "string", "description": "Never sent."},
        },
    }


def _select() -> DiscoveryParameter:
    return DiscoveryParameter("array", "Attributes of the object to return in the response.")


def crud_methods(
    resource: str,
    schema: str,
    wrapper: str,
    *,
    list_parameters: Mapping[str, DiscoveryParameter],
    create_parameters: Mapping[str, DiscoveryParameter],
) -> list[DiscoveryMethod]:
    """get, list, create, update, delete and their Rails aliases show, index, destroy."""
    member = f"{resource}/{{uuid}}"
    select = {"select": _select()}
    get = DiscoveryMethod(
        resource,
        "get",
        "GET",
        member,
        f"Get a {schema} by UUID.",
        select,
        response=schema,
        read_only=True,
    )
    list_ = DiscoveryMethod(
        resource,
        "list",
        "GET",
        resource,
        f"List {schema} objects the caller can read.",
        list_parameters,
        response=f"{schema}List",
        read_only=True,
    )
    create = DiscoveryMethod(
        resource,
        "create",
        "POST",
        resource,
        f"Create a new {schema}.",
        {**create_parameters, **select},
        request=(wrapper, schema),
        response=schema,
    )
    update = DiscoveryMethod(
        resource,
        "update",
        "PUT",
        member,
        f"Update attributes of an existing {schema} (only those given).",
        select,
        request=(wrapper, schema),
        response=schema,
    )
    delete = DiscoveryMethod(
        resource,
        "delete",
        "DELETE",
        member,
        f"Delete an existing {schema}; the answer is the object as it was.",
        select,
        response=schema,
    )
    return [
        get,
        list_,
        create,
        update,
        delete,
        list_.alias("index"),
        get.alias("show"),
        delete.alias("destroy"),
    ]


#: Parameters every method takes (Google's standard set, as Arvados listed them).
GLOBAL_PARAMETERS: dict[str, dict[str, Any]] = {
    "alt": {
        "type": "string",
        "description": "Data format for the response.",
        "default": "json",
        "enum": ["json"],
        "enumDescriptions": ["Responses with Content-Type of application/json"],
        "location": "query",
    },
    "fields": {
        "type": "string",
        "description": "Selector specifying which fields to include in a partial response.",
        "location": "query",
    },
    "key": {
        "type": "string",
        "description": "API key. Your API key identifies your project and provides you with "
        "API access, quota, and reports. Required unless you provide an OAuth 2.0 token.",
        "location": "query",
    },
    "oauth_token": {
        "type": "string",
        "description": "OAuth 2.0 token for the current user.",
        "location": "query",
    },
    "prettyPrint": {
        "type": "boolean",
        "description": "Returns response with indentations and line breaks.",
        "default": "true",
        "location": "query",
    },
    "quotaUser": {
        "type": "string",
        "description": "Available to use for quota purposes for server-side applications. "
        "Can be any arbitrary string assigned to a user, but should not exceed 40 "
        "characters. Overrides userIp if both are provided.",
        "location": "query",
    },
    "userIp": {
        "type": "string",
        "description": "IP address of the site where the request originates. Use this if "
        "you want to enforce per-user limits.",
        "location": "query",
    },
}


class DiscoveryRegistry:
    """The schemas and methods the document describes, and the document built from them."""

    def __init__(self) -> None:
        self._schemas: dict[str, dict[str, Any]] = {}
        self._methods: dict[tuple[str, str], DiscoveryMethod] = {}
        self._cache: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add_schema(self, schema: dict[str, Any]) -> None:
        """Add (or replace) a schema; its name is its ``id``."""
        with self._lock:
            self._schemas[schema["id"]] = schema
            self._cache.clear()

    def add_methods(self, *methods: DiscoveryMethod) -> None:
        """Add (or replace, by resource and name) methods."""
        with self._lock:
            for method in methods:
                self._methods[(method.resource, method.name)] = method
            self._cache.clear()

    @property
    def methods(self) -> list[DiscoveryMethod]:
        return list(self._methods.values())

    def document(self, root_url: str) -> dict[str, Any]:
        """The whole document for clients reaching the API at ``root_url`` (ends in ``/``)."""
        settings_key = tuple(repr(getattr(app_settings, name)) for name in DEFAULTS)
        with self._lock:
            static = self._cache.get(settings_key)
            if static is None:
                static = self._cache[settings_key] = self._assemble()
        document = dict(static)  # the keys are already in place, so their order is kept
        document["rootUrl"] = root_url
        document["baseUrl"] = root_url + SERVICE_PATH
        return document

    def _assemble(self) -> dict[str, Any]:
        resources: dict[str, dict[str, Any]] = {}
        for method in self._methods.values():
            methods = resources.setdefault(method.resource, {"methods": {}})["methods"]
            methods[method.name] = method.describe()
        return {
            "kind": "discovery#restDescription",
            "discoveryVersion": "v1",
            "id": "arvados:v1",
            "name": "arvados",
            "version": "v1",
            "revision": "20131114",
            "title": "Arvados API",
            "description": "The API to interact with Arvados (job_tasks, served by Django).",
            "documentationLink": "http://doc.arvados.org/api/index.html",
            "protocol": "rest",
            "baseUrl": "",
            "basePath": f"/{SERVICE_PATH}",
            "rootUrl": "",
            "servicePath": SERVICE_PATH,
            "batchPath": "batch",
            "uuidPrefix": app_settings.CLUSTER_ID,
            "maxRequestSize": app_settings.MAX_BODY_BYTES,
            "maxItemsPerResponse": app_settings.MAX_LIMIT,
            "parameters": GLOBAL_PARAMETERS,
            "auth": {
                "oauth2": {
                    "scopes": {
                        SCOPE: {"description": "View and manage objects"},
                        READONLY_SCOPE: {"description": "View objects"},
                    }
                }
            },
            "schemas": dict(self._schemas),
            "resources": resources,
        }


def job_task_schema() -> dict[str, Any]:
    """``JobTask``: the attributes of spec §2.1, typed as Arvados's discovery typed them."""
    properties: dict[str, tuple[str, str]] = {
        "uuid": ("string", "Object ID."),
        "etag": ("string", "Object version."),
        "owner_uuid": ("string", "The UUID of the user or group that owns this task."),
        "created_at": ("datetime", "When this task was created."),
        "modified_by_client_uuid": ("string", "The API client that last changed this task."),
        "modified_by_user_uuid": ("string", "The user who last changed this task."),
        "modified_at": ("datetime", "When this task was last changed."),
        "job_uuid": ("string", "The job this task belongs to."),
        "created_by_job_task_uuid": ("string", "The task that queued this task."),
        "sequence": ("integer", "Execution level: a task runs after every lower level."),
        "qsequence": ("integer", "Order of arrival, assigned by the server."),
        "parameters": ("Hash", "Arbitrary JSON object given to the worker."),
        "output": ("text", "What the task produced (e.g. a manifest or a locator)."),
        "progress": ("float", "Between 0 and 1."),
        "success": ("boolean", "null: not finished; true: succeeded; false: failed."),
        "started_at": ("datetime", "When the task started."),
        "finished_at": ("datetime", "When the task finished."),
    }
    return object_schema("JobTask", "Arvados job task.", properties, JOB_TASK_INFIX)


#: The keys the scheduling calls add after a task's attributes (spec §2.1 order first).
LEASE_PROPERTIES: dict[str, tuple[str, str]] = {
    "lease_expires_at": ("datetime", "When the caller's lease ends (null: not leased)."),
    "attempt": (
        "integer",
        "How many times the task has been claimed; give it back to renew and release.",
    ),
}


def leased_job_task_schema() -> dict[str, Any]:
    """``LeasedJobTask``: a task answered by claim, renew, release and retry.

    Every ``JobTask`` attribute, then ``lease_expires_at`` and ``attempt`` (the
    discovery format has no ``allOf``, so the attributes are repeated). No
    ``uuidPrefix``, so that a uuid's infix (``ot0gb``) still names one schema only.
    """
    task = job_task_schema()
    properties = {
        **{
            name: (value["type"], value["description"])
            for name, value in task["properties"].items()
        },
        **LEASE_PROPERTIES,
    }
    return object_schema("LeasedJobTask", "A job task and the caller's lease on it.", properties)


def _list_parameters() -> dict[str, DiscoveryParameter]:
    return {
        "filters": DiscoveryParameter("array", 'Conditions, e.g. [["sequence","=",1]].'),
        "where": DiscoveryParameter("object", "Legacy equality conditions."),
        "order": DiscoveryParameter("array", 'Sort order, e.g. ["sequence desc"].'),
        "select": DiscoveryParameter("array", "Attributes of each object to return."),
        "distinct": DiscoveryParameter("boolean", "Merge identical (selected) items."),
        "limit": DiscoveryParameter(
            "integer", "Page size.", default=lambda: app_settings.DEFAULT_LIMIT
        ),
        "offset": DiscoveryParameter("integer", "Items to skip.", default=0),
        "count": DiscoveryParameter(
            "string", "exact: report items_available; none: skip counting.", default="exact"
        ),
        "cluster_id": DiscoveryParameter("string", "Federation only: ignored."),
    }


def _create_parameters() -> dict[str, DiscoveryParameter]:
    return {
        "ensure_unique_name": DiscoveryParameter(
            "boolean", "Accepted for compatibility (tasks have no name).", default=False
        ),
        "cluster_id": DiscoveryParameter("string", "Federation only: ignored."),
    }


#: The registry the view serves. Other modules add their resources and methods to it.
registry = DiscoveryRegistry()
registry.add_schema(job_task_schema())
registry.add_schema(list_schema("JobTask", "arvados#jobTaskList"))
registry.add_methods(
    *crud_methods(
        "job_tasks",
        "JobTask",
        "job_task",
        list_parameters=_list_parameters(),
        create_parameters=_create_parameters(),
    )
)


def scheduling_methods() -> list[DiscoveryMethod]:
    """The scheduling extensions (issue 5): claim, renew, release, retry, summary."""
    lease = DiscoveryParameter(
        "integer",
        "Lease length in seconds.",
        default=lambda: app_settings.DEFAULT_LEASE_SECONDS,
    )
    attempt = DiscoveryParameter(
        "integer", "The attempt the caller's claim answered; refused if the task moved on."
    )
    job = DiscoveryParameter("string", "Only tasks of this job.")
    return [
        DiscoveryMethod(
            "job_tasks",
            "claim",
            "POST",
            "job_tasks/claim",
            "Take up to limit runnable tasks (lowest sequence, then qsequence), marked "
            "started and leased to the caller. An empty list when nothing is runnable.",
            {
                "job_uuid": job,
                "limit": DiscoveryParameter("integer", "Most tasks to take.", default=1),
                "lease_seconds": lease,
            },
            response="LeasedJobTaskList",
        ),
        DiscoveryMethod(
            "job_tasks",
            "renew",
            "POST",
            "job_tasks/{uuid}/renew",
            "Extend the caller's lease on a task it claimed.",
            {"lease_seconds": lease, "attempt": attempt},
            response="LeasedJobTask",
        ),
        DiscoveryMethod(
            "job_tasks",
            "release",
            "POST",
            "job_tasks/{uuid}/release",
            "Give a claimed task back to the queue.",
            {"attempt": attempt},
            response="LeasedJobTask",
        ),
        DiscoveryMethod(
            "job_tasks",
            "retry",
            "POST",
            "job_tasks/{uuid}/retry",
            "Send a failed task back to the queue.",
            response="LeasedJobTask",
        ),
        DiscoveryMethod(
            "job_tasks",
            "summary",
            "GET",
            "job_tasks/summary",
            "Counts of a job's tasks (todo, running, done, failed, runnable), its current "
            "sequence level and mean progress.",
            {"job_uuid": job},
            response="JobTaskSummary",
            read_only=True,
        ),
    ]


def job_task_summary_schema() -> dict[str, Any]:
    properties = {
        "kind": ("string", "Always arvados#jobTaskSummary."),
        "job_uuid": ("string", "The job summarised (null: every visible task)."),
        "todo": ("integer", "Tasks not started."),
        "running": ("integer", "Tasks started and not finished."),
        "done": ("integer", "Tasks that succeeded."),
        "failed": ("integer", "Tasks that failed."),
        "runnable": ("integer", "Tasks not started that may start now."),
        "current_sequence": ("integer", "Lowest sequence with a task not succeeded."),
        "progress": ("float", "Mean progress (a succeeded task counts 1)."),
        "items_available": ("integer", "Tasks counted."),
    }
    schema = object_schema("JobTaskSummary", "Counts of a job's tasks.", properties, "")
    del schema["uuidPrefix"]
    return schema


registry.add_schema(leased_job_task_schema())
registry.add_schema(list_schema("LeasedJobTask", "arvados#jobTaskList"))
registry.add_schema(job_task_summary_schema())
registry.add_methods(*scheduling_methods())


def identity_schemas() -> list[dict[str, Any]]:
    """``User`` and ``Group``: who the caller is, and the groups it may use as owners."""
    user = object_schema(
        "User",
        "A user (the caller, from users.current).",
        {
            "uuid": ("string", "Object ID: use it as owner_uuid."),
            "etag": ("string", "Object version."),
            "owner_uuid": ("string", "The system user."),
            "created_at": ("datetime", "When the user joined."),
            "email": ("string", "Email address."),
            "username": ("string", "Login name."),
            "first_name": ("string", "First name."),
            "last_name": ("string", "Last name."),
            "is_admin": ("boolean", "A superuser: reads and writes every task."),
            "is_active": ("boolean", "Inactive users are refused (403)."),
            "is_job_manager": ("boolean", "Holds the job-manager role."),
        },
        "tpzed",
    )
    group = object_schema(
        "Group",
        "A group of users (a Django group).",
        {
            "uuid": ("string", "Object ID: use it as owner_uuid."),
            "etag": ("string", "Object version."),
            "owner_uuid": ("string", "The system user."),
            "name": ("string", "Group name."),
            "group_class": ("string", "Always role."),
            "is_job_manager_group": ("boolean", "Membership grants the job-manager role."),
        },
        "j7d0g",
    )
    return [user, group, list_schema("Group", "arvados#groupList")]


def identity_methods() -> list[DiscoveryMethod]:
    """``users.current`` and ``groups.list`` (and its alias ``groups.index``)."""
    group_list = DiscoveryMethod(
        "groups",
        "list",
        "GET",
        "groups",
        "The groups the caller may use as owner_uuid (all of them for job managers).",
        {
            "filters": DiscoveryParameter("array", "Conditions on uuid and name."),
            "limit": DiscoveryParameter(
                "integer", "Page size.", default=lambda: app_settings.DEFAULT_LIMIT
            ),
            "offset": DiscoveryParameter("integer", "Items to skip.", default=0),
            "count": DiscoveryParameter(
                "string", "exact: report items_available; none: skip counting.", default="exact"
            ),
        },
        response="GroupList",
        read_only=True,
    )
    return [
        DiscoveryMethod(
            "users",
            "current",
            "GET",
            "users/current",
            "The caller, as a user object.",
            response="User",
            read_only=True,
        ),
        group_list,
        group_list.alias("index"),
    ]


for _schema in identity_schemas():
    registry.add_schema(_schema)
registry.add_methods(*identity_methods())


def history_schemas() -> list[dict[str, Any]]:
    """``Log``: one audit event of a task (Arvados's log object)."""
    log = object_schema(
        "Log",
        "One change to a job task, from the audit log.",
        {
            "uuid": ("string", "Object ID."),
            "etag": ("string", "Always empty."),
            "object_uuid": ("string", "The task changed."),
            "object_owner_uuid": ("string", "The task's owner at that time."),
            "event_type": ("string", "create, update, delete, claim, renew, release, ..."),
            "event_at": ("datetime", "When it happened."),
            "modified_by_user_uuid": ("string", "Who did it (null: the system)."),
            "modified_by_token_uuid": ("string", "With which token."),
            "summary": ("string", "Why, in words, when the system did it."),
            "properties": ("Hash", "old_attributes and new_attributes of the task."),
        },
        "57u5n",
    )
    return [log, list_schema("Log", "arvados#logList")]


for _schema in history_schemas():
    registry.add_schema(_schema)
registry.add_methods(
    DiscoveryMethod(
        "job_tasks",
        "history",
        "GET",
        "job_tasks/{uuid}/history",
        "The task's audit events, newest first (also for a deleted task).",
        {
            "limit": DiscoveryParameter(
                "integer", "Page size.", default=lambda: app_settings.DEFAULT_LIMIT
            ),
            "offset": DiscoveryParameter("integer", "Items to skip.", default=0),
            "count": DiscoveryParameter(
                "string", "exact: report items_available; none: skip counting.", default="exact"
            ),
        },
        response="LogList",
        read_only=True,
    )
)


def api_root_url(request: Request) -> str:
    """``scheme://host[:port]/`` plus any script prefix: where ``arvados/v1/`` lives.

    The same as ``request.build_absolute_uri("/")`` when the app is at the site root;
    under a prefix (``SCRIPT_NAME`` or ``include()`` at a sub-path) the prefix is kept.
    """
    path = request.path
    index = path.rfind(DISCOVERY_PATH)
    return request.build_absolute_uri(path[:index] if index > 0 else "/")


class DiscoveryView(ArvadosAPIView):
    """``/discovery/v1/apis/arvados/v1/rest``: the discovery document, for anyone."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        document = registry.document(api_root_url(request))
        return Response(document, headers={"Cache-Control": CACHE_CONTROL})

    post = get
