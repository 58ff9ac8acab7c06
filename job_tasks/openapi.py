"""The OpenAPI 3 description of the API, for drf-spectacular (an optional dependency).

``JobTasksConfig.ready()`` imports this module only when drf-spectacular is installed;
nothing else in the app imports it, so the app works without it. It registers:

* an ``OpenApiViewExtension`` per API view. Each swaps the view, for schema generation
  only, for a subclass whose ``schema`` is :class:`JobTasksSchema`; the schema reads the
  view's operations (:func:`job_task_operations`, ...): operation ids, parameters,
  request bodies, responses. The views themselves carry no schema code, and answer
  plain dicts, not serializers, so everything the schema says about bodies is here;
* an ``OpenApiAuthenticationExtension`` for ``ApiTokenAuthentication``: a bearer token
  (``Authorization: Bearer|OAuth2 <token>``) or an ``api_token`` query parameter;
* :func:`preprocess_endpoints`, a drf-spectacular preprocessing hook that writes the
  paths without their optional trailing slash (``/arvados/v1/job_tasks/{uuid}``) and
  drops the catch-all 404 route. Projects add it to their settings::

      SPECTACULAR_SETTINGS = {
          "PREPROCESSING_HOOKS": ["job_tasks.openapi.preprocess_endpoints"],
          "SERVE_INCLUDE_SCHEMA": False,
      }

Conventions of the description:

* Arvados clients send array and object parameters as JSON-encoded strings in the query
  (``?filters=[["sequence","=",1]]``). Every such query parameter is described with
  ``content: application/json`` (what OpenAPI provides for a JSON-serialised parameter)
  rather than a ``schema``; the conversion is one rule in
  :meth:`JobTasksSchema._get_parameters`.
* Objects are described from ``representation.WIRE_ATTRIBUTES`` and the writable
  attributes from ``JobTaskSerializer.writable()``: adding an attribute without
  describing it fails schema generation (a ``KeyError`` here), not silently.
* ``select`` (list, get, create, update, delete) makes the answer hold ``kind`` and the
  selected attributes only: those answers are ``JobTask`` (every key) or
  ``JobTaskSelection`` (the same keys, only ``kind`` required).
* Every error is the Arvados envelope ``ArvadosError`` (spec §9), referenced through
  the shared ``components/responses`` (``NotLoggedIn``, ``Unprocessable``, ...). Limits
  that come from ``JOB_TASKS`` settings (page size, lease length) are read when the
  schema is generated.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiViewExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiRequest, OpenApiResponse

from .app_settings import app_settings
from .filters import MAX_OFFSET
from .models import AuditEvent
from .representation import KIND, LIST_KIND, WIRE_ATTRIBUTES
from .serializers import INT32, INT64, JobTaskSerializer
from .uuids import GROUP_INFIX, JOB_TASK_INFIX, LOG_INFIX, USER_INFIX

SchemaDict = dict[str, Any]

#: The security schemes (names of ``components/securitySchemes``).
BEARER_SCHEME = "ArvadosToken"
QUERY_SCHEME = "ArvadosTokenParameter"

#: Nine fractional digits, UTC (spec §2.2).
TIMESTAMP_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$"
UUID_PATTERN = r"^[0-9a-z]{5}-[0-9a-z]{5}-[0-9a-z]{15}$"
EXAMPLE_TASK_UUID = f"zzzzz-{JOB_TASK_INFIX}-0123456789abcde"
EXAMPLE_USER_UUID = f"zzzzz-{USER_INFIX}-xurymjxw79nv3jz"
EXAMPLE_JOB_UUID = "zzzzz-8i9sb-0123456789abcde"
EXAMPLE_TIMESTAMP = "2014-04-21T15:37:48.123456000Z"


def ref(name: str) -> SchemaDict:
    """A reference to a component schema of this module."""
    return {"$ref": f"#/components/schemas/{name}"}


def _constant(value: str) -> SchemaDict:
    # A pattern, not a one-value enum: drf-spectacular's enum post-processing would
    # hoist enums shared by two components into a separately named component.
    return {"type": "string", "pattern": f"^{value}$", "example": value}


def _timestamp(description: str, *, nullable: bool = False) -> SchemaDict:
    schema: SchemaDict = {
        "type": "string",
        "format": "date-time",
        "pattern": TIMESTAMP_PATTERN,
        "description": f"{description} UTC, with exactly nine fractional digits.",
        "example": EXAMPLE_TIMESTAMP,
    }
    if nullable:
        schema["nullable"] = True
    return schema


def _string(description: str, *, nullable: bool = False, **extra: Any) -> SchemaDict:
    schema: SchemaDict = {"type": "string", "description": description, **extra}
    if nullable:
        schema["nullable"] = True
    return schema


def _uuid(description: str, infix: str | None = None, **extra: Any) -> SchemaDict:
    pattern = f"^[0-9a-z]{{5}}-{infix}-[0-9a-z]{{15}}$" if infix else UUID_PATTERN
    return _string(description, pattern=pattern, **extra)


# --------------------------------------------------------------------------------------
# Component schemas


def job_task_properties() -> dict[str, SchemaDict]:
    """Every key of the wire object (spec §2.1), in wire order, with its JSON type."""
    described: dict[str, SchemaDict] = {
        "href": _string(
            "The task's path, relative to /arvados/v1 (no host).",
            pattern=r"^/job_tasks/[^/]+$",
            example=f"/job_tasks/{EXAMPLE_TASK_UUID}",
        ),
        "kind": {**_constant(KIND), "description": f"Always {KIND}."},
        "etag": _string(
            "Version: changes when any stored attribute changes (base-36 MD5).",
            pattern="^[0-9a-z]+$",
            example="4ygnm2g1wjbgtmd2ccmr2n8mn",
        ),
        "uuid": _uuid("Object ID.", JOB_TASK_INFIX, example=EXAMPLE_TASK_UUID),
        "owner_uuid": _uuid("The user or group that owns the task.", example=EXAMPLE_USER_UUID),
        "created_at": _timestamp("When the task was created."),
        "modified_by_client_uuid": _string(
            "The API client that last changed the task (null here).", nullable=True
        ),
        "modified_by_user_uuid": _string(
            "The user who last changed the task.", nullable=True, example=EXAMPLE_USER_UUID
        ),
        "modified_at": _timestamp(
            "When the task last changed (only real changes count).", nullable=True
        ),
        "job_uuid": _string(
            "The job the task belongs to (a job-manager attribute).",
            nullable=True,
            example=EXAMPLE_JOB_UUID,
        ),
        "created_by_job_task_uuid": _string(
            "The task that queued this task (a job-manager attribute).", nullable=True
        ),
        "sequence": {
            "type": "integer",
            "format": "int32",
            "nullable": True,
            "description": "Execution level: a task runs after every lower level of its "
            "job has succeeded (null counts as 0).",
        },
        "qsequence": {
            "type": "integer",
            "format": "int64",
            "nullable": True,
            "description": "Order of arrival, from one global counter starting at 0 "
            "(a job-manager attribute).",
        },
        "parameters": {
            "type": "object",
            "additionalProperties": {},
            "description": "Arbitrary JSON object for the worker; {} when empty.",
            "example": {"input": "a.txt"},
        },
        "output": _string("What the task produced (a manifest or a locator).", nullable=True),
        "progress": {
            "type": "number",
            "format": "double",
            "minimum": 0,
            "maximum": 1,
            "nullable": True,
            "description": "From 0 to 1.",
        },
        "success": {
            "type": "boolean",
            "nullable": True,
            "description": "null: not finished; true: succeeded; false: failed.",
        },
        "started_at": _timestamp("When the task started.", nullable=True),
        "finished_at": _timestamp("When the task finished.", nullable=True),
    }
    return {name: described[name] for name in WIRE_ATTRIBUTES}


def job_task_attribute_properties() -> dict[str, SchemaDict]:
    """The attributes a client may write, with the JSON types the API accepts."""

    def timestamp(description: str) -> SchemaDict:
        return {
            "type": "string",
            "format": "date-time",
            "nullable": True,
            "description": f"{description} Any ISO-8601 timestamp; without an offset it is UTC.",
        }

    described: dict[str, SchemaDict] = {
        "uuid": _string("Admins only: the uuid to give or change to.", nullable=True),
        "owner_uuid": _string(
            "A user or group the caller may write (default: the caller). Job managers "
            "and admins may name any existing user or group.",
            nullable=True,
        ),
        "job_uuid": _uuid(
            "Job managers; or a running task queuing work in its own job.",
            nullable=True,
        ),
        "created_by_job_task_uuid": _string(
            "A task the caller can read. Job managers; or the caller's running task.",
            nullable=True,
        ),
        "sequence": {
            "type": "integer",
            "format": "int32",
            "minimum": INT32[0],
            "maximum": INT32[1],
            "nullable": True,
        },
        "qsequence": {
            "type": "integer",
            "format": "int64",
            "minimum": INT64[0],
            "maximum": INT64[1],
            "nullable": True,
            "description": "Job managers only; assigned by the server when absent.",
        },
        "parameters": {
            "type": "object",
            "additionalProperties": {},
            "nullable": True,
            "description": "A JSON object (or a string holding one); null means {}.",
        },
        "output": _string("", nullable=True),
        "progress": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "nullable": True,
            "description": "From 0 to 1 (a numeric string is accepted too).",
        },
        "success": {
            "type": "boolean",
            "nullable": True,
            "description": "false deletes the tasks this task queued.",
        },
        "started_at": timestamp("Setting it on a task whose level is blocked is a 422."),
        "finished_at": timestamp(""),
    }
    return {name: described[name] for name in sorted(JobTaskSerializer.writable())}


def component_schemas() -> dict[str, SchemaDict]:
    """The component schemas every operation may refer to."""
    task = job_task_properties()
    selection = copy.deepcopy(task)
    max_limit = app_settings.MAX_LIMIT
    selected_task = {"anyOf": [ref("JobTask"), ref("JobTaskSelection")]}
    leased_items = {"type": "array", "items": ref("LeasedJobTask")}
    return {
        "JobTask": {
            "type": "object",
            "description": "A job task (spec §2.1): every key, always, in this order.",
            "required": list(task),
            "properties": task,
        },
        "JobTaskSelection": {
            "type": "object",
            "description": "A job task answered for a request with `select`: `kind` and "
            "the selected attributes only, in wire order.",
            "required": ["kind"],
            "properties": selection,
            "additionalProperties": False,
        },
        "JobTaskList": _list_schema(
            LIST_KIND, {"type": "array", "items": selected_task}, max_limit=max_limit
        ),
        "LeasedJobTask": {
            "description": "A task answered by the scheduling calls: the task, then its lease.",
            "allOf": [
                ref("JobTask"),
                {
                    "type": "object",
                    "required": ["lease_expires_at", "attempt"],
                    "properties": {
                        "lease_expires_at": _timestamp(
                            "When the caller's lease ends (null: not leased).", nullable=True
                        ),
                        "attempt": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "How many times the task has been claimed; "
                            "give it back to renew and release.",
                        },
                    },
                },
            ],
        },
        "LeasedJobTaskList": _list_schema(
            LIST_KIND, leased_items, max_limit=app_settings.MAX_CLAIM_LIMIT, counted=True
        ),
        "JobTaskSummary": _summary_schema(),
        "JobTaskAttributes": {
            "type": "object",
            "description": "The attributes to write; absent ones are left alone (PUT "
            "and PATCH are both partial). `kind`, `etag`, `href`, `created_at`, "
            "`updated_at`, `modified_at` and `modified_by_*` are dropped; any other "
            "key is a 422 naming it. Types are strict: no coercion beyond digit "
            "strings for integers, numeric strings for `progress` and "
            '`"true"`/`"false"`/`"1"`/`"0"` for `success`.',
            "properties": job_task_attribute_properties(),
            "additionalProperties": False,
        },
        "JobTaskWrite": {
            "type": "object",
            "description": "The documented body of create and update: the attributes "
            "wrapped in `job_task`. Also accepted (spec §5.1): a bare JSON body of "
            'attributes (`{"sequence": 1}`: only column names are attributes); a form '
            'or query field `job_task={"sequence":1}` holding JSON; form fields '
            "`job_task[sequence]=1`. Other top-level keys of a JSON body are request "
            "parameters (`select`, ...). No body at all: all defaults (create), no "
            "change (update).",
            "properties": {
                "job_task": {
                    "allOf": [ref("JobTaskAttributes")],
                    "nullable": True,
                    "description": "null is the same as {}.",
                }
            },
            "example": {"job_task": {"sequence": 0, "parameters": {"input": "a.txt"}}},
        },
        "ArvadosLog": _log_schema(),
        "ArvadosLogList": _list_schema(
            "arvados#logList", {"type": "array", "items": ref("ArvadosLog")}, max_limit=max_limit
        ),
        "ArvadosUser": _user_schema(),
        "ArvadosGroup": _group_schema(),
        "ArvadosGroupList": _list_schema(
            "arvados#groupList",
            {"type": "array", "items": ref("ArvadosGroup")},
            max_limit=max_limit,
        ),
        "DiscoveryDocument": _discovery_schema(),
        "ArvadosError": {
            "type": "object",
            "description": "The Arvados error envelope (spec §9). Match messages on substrings.",
            "required": ["errors", "error_token"],
            "properties": {
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string"},
                    "example": ["Path not found"],
                },
                "error_token": _string(
                    "`<unix seconds>+<8 hex digits>`, to find the error in the logs.",
                    pattern=r"^\d+\+[0-9a-f]{8}$",
                    example="1565375786+0f3a9c2e",
                ),
            },
        },
    }


def _list_schema(
    kind: str, items: SchemaDict, *, max_limit: int, counted: bool = False
) -> SchemaDict:
    """A list envelope (spec §7.9); ``items_available`` is absent with ``count=none``."""
    required = ["kind", "etag", "self_link", "offset", "limit", "items"]
    if counted:
        required.append("items_available")
    return {
        "type": "object",
        "description": f"A page of a list, in this key order (kind {kind}).",
        "required": required,
        "properties": {
            "kind": {**_constant(kind), "description": f"Always {kind}."},
            "etag": _string("Always empty.", maxLength=0),
            "self_link": _string("Always empty.", maxLength=0),
            "offset": {"type": "integer", "minimum": 0, "description": "Items skipped."},
            "limit": {
                "type": "integer",
                "minimum": 0,
                "maximum": max_limit,
                "description": f"The effective page size (at most {max_limit}).",
            },
            "items": items,
            "items_available": {
                "type": "integer",
                "minimum": 0,
                "description": "How many items match, ignoring limit and offset; absent "
                "with count=none.",
            },
        },
    }


def _summary_schema() -> SchemaDict:
    def count(description: str) -> SchemaDict:
        return {"type": "integer", "minimum": 0, "description": description}

    properties = {
        "kind": _constant("arvados#jobTaskSummary"),
        "job_uuid": _string("The job summarised (null: every visible task).", nullable=True),
        "todo": count("Tasks not started."),
        "running": count("Tasks started and not finished."),
        "done": count("Tasks that succeeded."),
        "failed": count("Tasks that failed."),
        "runnable": count("Tasks not started that may start now."),
        "current_sequence": {
            "type": "integer",
            "nullable": True,
            "description": "The lowest level with a task that has not succeeded (null: "
            "all succeeded).",
        },
        "progress": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "nullable": True,
            "description": "Mean progress, a succeeded task counting 1 (null: no task).",
        },
        "items_available": count("Tasks counted."),
    }
    return {
        "type": "object",
        "description": "Counts of the visible tasks of a job (or of every job).",
        "required": list(properties),
        "properties": properties,
    }


def _log_schema() -> SchemaDict:
    def attributes(description: str) -> SchemaDict:
        return {
            "type": "object",
            "nullable": True,
            "additionalProperties": {},
            "description": f"{description} (stored attributes, as on the wire).",
        }

    properties = {
        "href": _string("`/logs/<uuid>`."),
        "kind": _constant("arvados#log"),
        "etag": _string("Always empty.", maxLength=0),
        "uuid": _uuid("Object ID.", LOG_INFIX),
        "object_uuid": _string("The task changed.", example=EXAMPLE_TASK_UUID),
        "object_owner_uuid": _string("The task's owner at that time.", nullable=True),
        "event_type": {"type": "string", "enum": list(AuditEvent.Event.values)},
        "event_at": _timestamp("When it happened."),
        "modified_by_user_uuid": _string("Who did it (null: the system).", nullable=True),
        "modified_by_token_uuid": _string("With which token.", nullable=True),
        "summary": _string("Why, in words, when the system did it."),
        "properties": {
            "type": "object",
            "required": ["old_attributes", "new_attributes"],
            "properties": {
                "old_attributes": attributes("The task before (null: created)"),
                "new_attributes": attributes("The task after (null: deleted)"),
            },
        },
    }
    return {
        "type": "object",
        "description": "One change to a task, from the audit log, as an `arvados#log`.",
        "required": list(properties),
        "properties": properties,
    }


def _user_schema() -> SchemaDict:
    def flag(description: str) -> SchemaDict:
        return {"type": "boolean", "description": description}

    properties = {
        "href": _string("`/users/<uuid>`."),
        "kind": _constant("arvados#user"),
        "etag": _string("Object version.", pattern="^[0-9a-z]+$"),
        "uuid": _uuid("Object ID: use it as `owner_uuid`.", USER_INFIX),
        "owner_uuid": _uuid("The system user.", USER_INFIX),
        "created_at": _timestamp("When the user joined.", nullable=True),
        "email": _string("Email address.", nullable=True),
        "username": _string("Login name."),
        "first_name": _string("First name.", nullable=True),
        "last_name": _string("Last name.", nullable=True),
        "is_admin": flag("A superuser: reads and writes every task."),
        "is_active": flag("Inactive users are refused (403) everywhere else."),
        "is_job_manager": flag("Holds the job-manager role."),
    }
    return {
        "type": "object",
        "description": "The caller, as an `arvados#user`.",
        "required": list(properties),
        "properties": properties,
    }


def _group_schema() -> SchemaDict:
    properties = {
        "href": _string("`/groups/<uuid>`."),
        "kind": _constant("arvados#group"),
        "etag": _string("Object version.", pattern="^[0-9a-z]+$"),
        "uuid": _uuid("Object ID: use it as `owner_uuid`.", GROUP_INFIX),
        "owner_uuid": _uuid("The system user.", USER_INFIX),
        "name": _string("Group name."),
        "group_class": {**_constant("role"), "description": "Always role."},
        "is_job_manager_group": {
            "type": "boolean",
            "description": "Membership grants the job-manager role.",
        },
    }
    return {
        "type": "object",
        "description": "A Django group, as an `arvados#group`.",
        "required": list(properties),
        "properties": properties,
    }


def _discovery_schema() -> SchemaDict:
    properties: dict[str, SchemaDict] = {
        "kind": _constant("discovery#restDescription"),
        "discoveryVersion": _string("Always v1."),
        "id": _string("Always arvados:v1."),
        "name": _string("Always arvados."),
        "version": _string("Always v1."),
        "rootUrl": _string("Scheme, host and port of the request, ending in `/`."),
        "baseUrl": _string("`rootUrl` + `arvados/v1/`."),
        "servicePath": _string("Always `arvados/v1/`."),
        "uuidPrefix": _string("The cluster id.", pattern="^[0-9a-z]{5}$"),
        "schemas": {"type": "object", "additionalProperties": {"type": "object"}},
        "resources": {"type": "object", "additionalProperties": {"type": "object"}},
    }
    return {
        "type": "object",
        "description": "A Google-discovery `restDescription` of every resource and method "
        "(spec §14), from which the Arvados SDKs build their clients.",
        "required": list(properties),
        "properties": properties,
    }


# --------------------------------------------------------------------------------------
# Error responses: components/responses, referenced by status code


@dataclasses.dataclass(frozen=True)
class ErrorResponse:
    """A shared error response: its component name, description and example message."""

    name: str
    description: str
    example: str
    headers: Mapping[str, SchemaDict] = dataclasses.field(default_factory=dict)


ERROR_RESPONSES: dict[int, ErrorResponse] = {
    400: ErrorResponse(
        "BadRequest",
        "The request could not be read (e.g. too many parameters).",
        "Bad request: The number of GET/POST parameters exceeded "
        "settings.DATA_UPLOAD_MAX_NUMBER_FIELDS.",
    ),
    401: ErrorResponse(
        "NotLoggedIn",
        "No token, or a bad, expired or revoked one.",
        "Not logged in",
        {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    ),
    403: ErrorResponse(
        "Forbidden",
        "Refused: an inactive user, an owner the caller may not write, job-manager "
        "attributes without the role, a task the caller may read but not write.",
        "Uuid is not writable",
    ),
    404: ErrorResponse(
        "NotFound",
        "No such task, or one the caller may not read (never a 403).",
        "Path not found",
    ),
    405: ErrorResponse(
        "MethodNotAllowed",
        "A method the path does not serve (every path answers OPTIONS, without a token).",
        'Method "PATCH" not allowed.',
        {"Allow": {"schema": {"type": "string"}, "required": True}},
    ),
    412: ErrorResponse(
        "PreconditionFailed",
        "`If-Match` names an etag the task no longer has.",
        "Precondition failed: the task has changed (its etag is now "
        "4ygnm2g1wjbgtmd2ccmr2n8mn); get it again and reapply your change",
    ),
    413: ErrorResponse(
        "RequestTooLarge",
        "The body is larger than JOB_TASKS['MAX_BODY_BYTES'].",
        "Request body is larger than 1048576 bytes",
    ),
    415: ErrorResponse(
        "UnsupportedMediaType",
        "A body that is neither JSON nor a form.",
        'Unsupported media type "text/plain" in request.',
    ),
    422: ErrorResponse(
        "Unprocessable",
        "Any other bad input: parameters, attributes, filters, malformed JSON, a conflict "
        "of state.",
        'Invalid attribute \'foo\' in filter (filters[0]: ["foo", "=", 1])',
    ),
    503: ErrorResponse(
        "Unavailable",
        "The database cannot be reached; retry after the given seconds.",
        "Service unavailable: the database cannot be reached, try again shortly",
        {"Retry-After": {"schema": {"type": "integer"}, "required": True}},
    ),
}
REQUEST_ID_HEADER: SchemaDict = {"$ref": "#/components/headers/RequestId"}
REQUEST_ID_HEADER_COMPONENT: SchemaDict = {
    "description": "The client's `X-Request-Id` when 1 to 1024 characters, else "
    "`req-` and 20 base-36 characters.",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 1024},
}


def error_response_components() -> dict[str, SchemaDict]:
    return {
        error.name: {
            "description": error.description,
            "headers": {"X-Request-Id": REQUEST_ID_HEADER, **error.headers},
            "content": {
                "application/json": {
                    "schema": ref("ArvadosError"),
                    "example": {"errors": [error.example], "error_token": "1565375786+0f3a9c2e"},
                }
            },
        }
        for error in ERROR_RESPONSES.values()
    }


# --------------------------------------------------------------------------------------
# Parameters


def _json_parameter(name: str, schema: SchemaDict, description: str) -> OpenApiParameter:
    """A query parameter holding JSON (converted to ``content`` by ``JobTasksSchema``)."""
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=description)


def select_parameter(*, listing: bool = False) -> OpenApiParameter:
    what = "each item" if listing else "the answer"
    return _json_parameter(
        "select",
        {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": list(WIRE_ATTRIBUTES)},
            "example": ["uuid", "sequence", "success"],
        },
        f"Attributes of {what} to return (`kind` is always added), as a JSON array. "
        "`[]` and unknown names are a 422; JSON `null` selects everything.",
    )


def list_parameters() -> list[OpenApiParameter]:
    """Arvados's list parameters (spec §7), from the query string (or a JSON body)."""
    filters_schema = {
        "type": "array",
        "items": {
            "type": "array",
            "minItems": 2,
            "maxItems": 3,
            "items": {},
            "description": "[attribute, operator, operand]",
        },
        "example": [["sequence", "=", 1], ["success", "=", None]],
    }
    order_schema = {
        "type": "array",
        "items": {"type": "string"},
        "example": ["sequence asc", "qsequence"],
    }
    return [
        _json_parameter(
            "filters",
            filters_schema,
            "Conditions `[attribute, operator, operand]`, ANDed, as a JSON array. "
            'Operators `= != < <= > >= like ilike in "not in" is_a`; on `parameters` '
            'also `exists`, `contains` and `["parameters.key", op, x]`. An array of '
            'attributes ORs them; `"any"` means every text column.',
        ),
        _json_parameter(
            "where",
            {"type": "object", "additionalProperties": {}, "example": {"sequence": 1}},
            "Legacy equality conditions `{attribute: value}` (a list means `in`), as a "
            "JSON object; ANDed with `filters`.",
        ),
        _json_parameter(
            "order",
            order_schema,
            'Sort order, `"<attribute> [asc|desc]"` entries, as a JSON array (a plain '
            "comma-separated string works too). Unknown entries are ignored; "
            "`modified_at desc, uuid asc` always follow.",
        ),
        select_parameter(listing=True),
        OpenApiParameter(
            "distinct",
            bool,
            description="Merge identical (selected) items.",
        ),
        OpenApiParameter(
            "limit",
            {"type": "integer", "minimum": 0},
            description=f"Page size (default {app_settings.DEFAULT_LIMIT}); larger than "
            f"{app_settings.MAX_LIMIT} is clamped.",
            default=app_settings.DEFAULT_LIMIT,
        ),
        OpenApiParameter(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            description="Items to skip.",
            default=0,
        ),
        OpenApiParameter(
            "count",
            str,
            enum=["exact", "none"],
            default="exact",
            description="`none` leaves `items_available` out (and skips counting).",
        ),
    ]


def _uuid_path(what: str = "task") -> OpenApiParameter:
    return OpenApiParameter(
        "uuid",
        str,
        OpenApiParameter.PATH,
        description=f"The {what}'s uuid. One that names no task the caller can read, "
        "whatever its form, is a 404.",
        examples=[OpenApiExample("task", value=EXAMPLE_TASK_UUID)],
    )


def _job_uuid_query() -> OpenApiParameter:
    return OpenApiParameter(
        "job_uuid",
        {"type": "string", "pattern": UUID_PATTERN},
        description="Only the tasks of this job.",
    )


def _integer_query(name: str, description: str, **schema: Any) -> OpenApiParameter:
    return OpenApiParameter(name, {"type": "integer", **schema}, description=description)


def _lease_seconds() -> OpenApiParameter:
    largest, default = app_settings.MAX_LEASE_SECONDS, app_settings.DEFAULT_LEASE_SECONDS
    return _integer_query(
        "lease_seconds",
        f"Lease length in seconds (default {default}, at most {largest}).",
        minimum=1,
        maximum=largest,
    )


def _attempt() -> OpenApiParameter:
    return _integer_query(
        "attempt",
        "The `attempt` of the caller's claim: refused (422) if the task moved on.",
        minimum=0,
    )


IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="Only if the task still has one of these etags (quoted or bare, "
    "comma-separated; `*` matches any); else 412 before anything else is checked.",
)
ETAG_HEADER = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    response=[200],
    description='`"<etag>"`, when the answer includes `etag`.',
)


# --------------------------------------------------------------------------------------
# Operations


@dataclasses.dataclass(frozen=True)
class Operation:
    """What the schema says about one operation (one view action or method)."""

    operation_id: str
    summary: str
    description: str
    tag: str
    response: SchemaDict
    response_description: str
    errors: Sequence[int] = ()
    parameters: Sequence[OpenApiParameter] = ()
    request: SchemaDict | None = None
    request_description: str = ""


OperationTable = dict[str, Operation | None]

_READ_ERRORS = (400, 401, 403, 422, 503)
_MEMBER_ERRORS = (400, 401, 403, 404, 422, 503)
_WRITE_ERRORS = (400, 401, 403, 404, 412, 413, 415, 422, 503)
_SELECTED_TASK: SchemaDict = {"anyOf": [ref("JobTask"), ref("JobTaskSelection")]}
_WRITE_REQUEST = OpenApiRequest(
    ref("JobTaskWrite"),
    examples=[
        OpenApiExample(
            "attributes",
            value={"job_task": {"sequence": 0, "parameters": {"input": "a.txt"}}},
        )
    ],
)


def job_task_operations() -> OperationTable:
    """``JobTaskViewSet``: the five Arvados methods and the scheduling extensions."""
    select = select_parameter()
    paging = [p for p in list_parameters() if p.name in ("limit", "offset", "count")]
    task_answer = "The task; with `select`, `kind` and the selected attributes only."
    update = Operation(
        "job_tasks_update",
        "Update a task",
        "Changes the attributes given (PUT and PATCH are both partial updates, as the "
        "SDKs send only what changed). `modified_at` and `etag` move only on a real "
        "change. Setting `success` to false deletes the tasks this task queued.",
        "job_tasks",
        _SELECTED_TASK,
        "The updated task.",
        _WRITE_ERRORS,
        [_uuid_path(), select, IF_MATCH, ETAG_HEADER],
        _WRITE_REQUEST,
    )
    lease_answer = "The task and its lease."
    return {
        "list": Operation(
            "job_tasks_list",
            "List tasks",
            "The tasks the caller can read, filtered, ordered and paged with Arvados's "
            "list parameters (spec §7, §8); arrays and objects are JSON-encoded in the "
            "query string, as the Python SDK sends them, or sent in a JSON body. Plain "
            "parameters filter too (`?job_uuid=X&sequence__lt=3`, `uuid__in=a,b`, "
            "`output__isnull=true`, ...). `POST` with `_method=GET` (form) or "
            "`X-HTTP-Method-Override: GET` is a list as well.",
            "job_tasks",
            ref("JobTaskList"),
            "A page of tasks.",
            _READ_ERRORS,
            list_parameters(),
        ),
        "create": Operation(
            "job_tasks_create",
            "Create a task",
            "Creates a task owned by the caller (or `owner_uuid`), with `qsequence` "
            "assigned by the server. Every success is 200, never 201.",
            "job_tasks",
            _SELECTED_TASK,
            "The new task.",
            (400, 401, 403, 413, 415, 422, 503),
            [
                select,
                OpenApiParameter(
                    "ensure_unique_name",
                    bool,
                    description="Accepted for compatibility (tasks have no name).",
                ),
                ETAG_HEADER,
            ],
            _WRITE_REQUEST,
        ),
        "retrieve": Operation(
            "job_tasks_get",
            "Get a task",
            "One task the caller can read.",
            "job_tasks",
            _SELECTED_TASK,
            task_answer,
            _MEMBER_ERRORS,
            [_uuid_path(), select, ETAG_HEADER],
        ),
        "update": update,
        "partial_update": dataclasses.replace(
            update, operation_id="job_tasks_patch", summary="Patch a task"
        ),
        "destroy": Operation(
            "job_tasks_delete",
            "Delete a task",
            "Deletes the task (not the tasks it queued); the answer is the task as it was.",
            "job_tasks",
            _SELECTED_TASK,
            "The task as it was before deletion.",
            (400, 401, 403, 404, 412, 422, 503),
            [_uuid_path(), select, IF_MATCH, ETAG_HEADER],
        ),
        "history": Operation(
            "job_tasks_history",
            "A task's history",
            "The task's audit events, newest first: every create, update, delete and "
            "scheduling change, with the attributes before and after. Readable by "
            "whoever may read the task, also once it is deleted.",
            "job_tasks",
            ref("ArvadosLogList"),
            "A page of events.",
            _MEMBER_ERRORS,
            [_uuid_path(), *paging],
        ),
        "claim": Operation(
            "job_tasks_claim",
            "Claim runnable tasks",
            "Takes up to `limit` runnable tasks the caller can write (lowest `sequence` "
            "level, then `qsequence`; a level starts when every lower level of its job "
            "has succeeded), marks them started and leases them to the caller's token. "
            "An empty list when nothing is runnable. Parameters may also come in a JSON "
            "body.",
            "scheduling",
            ref("LeasedJobTaskList"),
            "The claimed tasks.",
            _READ_ERRORS,
            [
                _job_uuid_query(),
                _integer_query(
                    "limit",
                    f"Most tasks to take (default 1; larger than "
                    f"{app_settings.MAX_CLAIM_LIMIT} is clamped).",
                    minimum=1,
                ),
                _lease_seconds(),
            ],
        ),
        "renew": Operation(
            "job_tasks_renew",
            "Renew a lease",
            "Extends the caller's live lease: only the claimant (same user and token) "
            "may, before the lease ends (422 otherwise).",
            "scheduling",
            ref("LeasedJobTask"),
            lease_answer,
            _MEMBER_ERRORS,
            [_uuid_path(), _lease_seconds(), _attempt()],
        ),
        "release": Operation(
            "job_tasks_release",
            "Release a claimed task",
            "The claimant gives the task back: runnable again at once.",
            "scheduling",
            ref("LeasedJobTask"),
            lease_answer,
            _MEMBER_ERRORS,
            [_uuid_path(), _attempt()],
        ),
        "retry": Operation(
            "job_tasks_retry",
            "Retry a failed task",
            "Sends a failed task back to the queue as new (whoever may write it).",
            "scheduling",
            ref("LeasedJobTask"),
            lease_answer,
            _MEMBER_ERRORS,
            [_uuid_path()],
        ),
        "summary": Operation(
            "job_tasks_summary",
            "Summarise a job",
            "Counts of the visible tasks of a job (or of every job): todo, running, "
            "done, failed, runnable; its current level and mean progress.",
            "scheduling",
            ref("JobTaskSummary"),
            "The counts.",
            _READ_ERRORS,
            [_job_uuid_query()],
        ),
    }


def current_user_operations() -> OperationTable:
    return {
        "get": Operation(
            "users_current",
            "The caller",
            "Who the token belongs to, with its uuid (the default `owner_uuid`) and its "
            "job-manager flag. Inactive users may ask.",
            "users",
            ref("ArvadosUser"),
            "The caller.",
            (400, 401, 503),
        )
    }


def group_list_operations() -> OperationTable:
    return {
        "get": Operation(
            "groups_list",
            "List usable groups",
            "The groups whose uuids the caller may use as `owner_uuid`: its own groups, "
            "or every group for job managers and admins; ordered by name. `filters` on "
            '`uuid` and `name` (`= != in "not in" like ilike is_a`).',
            "groups",
            ref("ArvadosGroupList"),
            "A page of groups.",
            _READ_ERRORS,
            [p for p in list_parameters() if p.name in ("filters", "limit", "offset", "count")],
        )
    }


def discovery_operations() -> OperationTable:
    get = Operation(
        "discovery_rest",
        "Discovery document",
        "The Google-discovery document the Arvados SDKs build their clients from; no "
        "token needed. Clients may cache it for an hour.",
        "discovery",
        ref("DiscoveryDocument"),
        "The discovery document.",
        parameters=[
            OpenApiParameter("Cache-Control", str, OpenApiParameter.HEADER, response=[200])
        ],
    )
    post = dataclasses.replace(
        get,
        operation_id="discovery_rest_post",
        description="The same document, for clients that POST (the body is ignored).",
    )
    return {"get": get, "post": post}


# --------------------------------------------------------------------------------------
# The AutoSchema of the API views


class JobTasksSchema(AutoSchema):
    """Describes a view from its operation table (``openapi_operations`` on the view)."""

    def _operation(self) -> Operation | None:
        table: OperationTable = self.view.openapi_operations()
        key = getattr(self.view, "action", None) or self.method.lower()
        if key not in table:
            warn(f"job_tasks.openapi describes no operation {type(self.view).__name__}.{key}")
            return None
        return table[key]

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> SchemaDict | None:
        for name, schema in component_schemas().items():
            registry.register_on_missing(
                ResolvedComponent(name, ResolvedComponent.SCHEMA, schema=schema, object=name)
            )
        registry.register_on_missing(
            ResolvedComponent(
                "RequestId",
                ResolvedComponent.HEADER,
                schema=REQUEST_ID_HEADER_COMPONENT,
                object="RequestId",
            )
        )
        for name, response in error_response_components().items():
            registry.register_on_missing(
                ResolvedComponent(name, ResolvedComponent.RESPONSE, schema=response, object=name)
            )
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:  # excluded
            return None
        spec = self._operation()
        if spec is None:
            return operation
        for code in spec.errors:
            name = ERROR_RESPONSES[code].name
            operation["responses"][str(code)] = {"$ref": f"#/components/responses/{name}"}
        if spec.request is not None and "requestBody" in operation:
            operation["requestBody"]["description"] = spec.request_description or (
                "The attributes, wrapped in `job_task` (other forms: see JobTaskWrite)."
            )
        return operation

    def is_excluded(self) -> bool:
        return self._operation() is None or super().is_excluded()

    def get_operation_id(self) -> str:
        spec = self._operation()
        return spec.operation_id if spec else super().get_operation_id()

    def get_summary(self) -> str | None:
        spec = self._operation()
        return spec.summary if spec else None

    def get_description(self) -> str:  # type: ignore[override]
        spec = self._operation()
        return spec.description if spec else ""

    def get_tags(self) -> list[str]:
        spec = self._operation()
        return [spec.tag] if spec else super().get_tags()

    def get_override_parameters(self) -> list[Any]:
        spec = self._operation()
        return list(spec.parameters) if spec else []

    def get_request_serializer(self) -> Any:
        spec = self._operation()
        if spec is None or spec.request is None:
            return {}  # no body
        return {"application/json": spec.request}

    def get_response_serializers(self) -> Any:
        spec = self._operation()
        if spec is None:
            return {}
        return {200: OpenApiResponse(spec.response, description=spec.response_description)}

    def _get_response_for_code(self, *args: Any, **kwargs: Any) -> SchemaDict:
        response = super()._get_response_for_code(*args, **kwargs)
        response.setdefault("headers", {})["X-Request-Id"] = REQUEST_ID_HEADER
        return response

    def _is_list_view(self, serializer: Any = None) -> bool:
        # Lists answer an envelope object, never a bare array.
        return False

    def _get_parameters(self) -> list[SchemaDict]:
        """Array and object query parameters travel JSON-encoded: ``content``, not ``schema``."""
        parameters = super()._get_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if parameter["in"] == "query" and schema.get("type") in ("array", "object"):
                del parameter["schema"]
                parameter.pop("style", None)
                parameter.pop("explode", None)
                parameter["content"] = {"application/json": {"schema": schema}}
        return parameters


# --------------------------------------------------------------------------------------
# Extensions


def _described(view: type[Any], operations: Callable[[], OperationTable]) -> type[Any]:
    """``view`` for schema generation: the same view, with :class:`JobTasksSchema`."""
    return type(
        view.__name__,
        (view,),
        {
            "__module__": view.__module__,
            "__doc__": view.__doc__,
            "schema": JobTasksSchema(),
            "openapi_operations": staticmethod(operations),
        },
    )


class JobTaskViewSetDescription(OpenApiViewExtension):
    target_class = "job_tasks.views.JobTaskViewSet"

    def view_replacement(self) -> type[Any]:
        return _described(self.target, job_task_operations)


class CurrentUserViewDescription(OpenApiViewExtension):
    target_class = "job_tasks.views.CurrentUserView"

    def view_replacement(self) -> type[Any]:
        return _described(self.target, current_user_operations)


class GroupListViewDescription(OpenApiViewExtension):
    target_class = "job_tasks.views.GroupListView"

    def view_replacement(self) -> type[Any]:
        return _described(self.target, group_list_operations)


class DiscoveryViewDescription(OpenApiViewExtension):
    target_class = "job_tasks.discovery.DiscoveryView"

    def view_replacement(self) -> type[Any]:
        return _described(self.target, discovery_operations)


def _no_operations() -> OperationTable:
    return dict.fromkeys(("get", "post", "put", "patch", "delete"))


class PathNotFoundViewDescription(OpenApiViewExtension):
    """The catch-all 404 route is not an operation (the hook drops it too)."""

    target_class = "job_tasks.views.PathNotFoundView"

    def view_replacement(self) -> type[Any]:
        return _described(self.target, _no_operations)


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """``ApiTokenAuthentication``: a bearer token, or the ``api_token`` query parameter."""

    target_class = "job_tasks.authentication.ApiTokenAuthentication"
    name = [BEARER_SCHEME, QUERY_SCHEME]

    def get_security_requirement(self, auto_schema: AutoSchema) -> list[dict[str, list[Any]]]:
        return [{BEARER_SCHEME: []}, {QUERY_SCHEME: []}]

    def get_security_definition(self, auto_schema: AutoSchema) -> list[SchemaDict]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "`Authorization: Bearer <token>` (`OAuth2 <token>` works "
                "too). A token is a bare secret or `v2/<token uuid>/<secret>`; make one "
                "with `manage.py job_tasks_token USERNAME`.",
            },
            {
                "type": "apiKey",
                "in": "query",
                "name": "api_token",
                "description": "The token as a parameter (`oauth_token` works too; a "
                "form body may carry it as well). It wins over the header.",
            },
        ]


# --------------------------------------------------------------------------------------
# Preprocessing hook


def preprocess_endpoints(
    endpoints: list[tuple[str, str, str, Any]],
) -> list[tuple[str, str, str, Any]]:
    """drf-spectacular hook: clean paths of the API's routes, no catch-all route.

    The routes are regexes with an optional trailing slash (``job_tasks/?$``), which
    drf-spectacular would write as ``/arvados/v1/job_tasks/``; the documented path has
    none. Other apps' endpoints pass unchanged.
    """
    from .views import ArvadosAPIView, PathNotFoundView

    kept = []
    for path, path_regex, method, callback in endpoints:
        view = getattr(callback, "cls", None)
        if isinstance(view, type) and issubclass(view, ArvadosAPIView):
            if issubclass(view, PathNotFoundView):
                continue
            if path.endswith("/") and path != "/":
                path = path.rstrip("/")
        kept.append((path, path_regex, method, callback))
    return kept


#: The drf-spectacular settings this description needs, for projects to merge into
#: their ``SPECTACULAR_SETTINGS`` (or to pass as ``custom_settings`` of a schema view).
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "PREPROCESSING_HOOKS": ["job_tasks.openapi.preprocess_endpoints"],
}
