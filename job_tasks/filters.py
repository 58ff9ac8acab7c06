"""PLACEHOLDER until the query-language module lands (owned by the filters work)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F

from .app_settings import app_settings
from .errors import InvalidRequest


@dataclass(frozen=True)
class ListQuery:
    select: tuple[str, ...] | None
    order_by: tuple[Any, ...]
    distinct: bool
    limit: int
    offset: int
    count: bool

    def filter(self, queryset: Any) -> Any:
        return queryset


def _int(params: Any, name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    text = str(value)
    if not text.isdigit():
        raise InvalidRequest(f"Invalid value for {name} parameter")
    return int(text)


def parse_list_params(params: Any) -> ListQuery:
    count = params.get("count") or "exact"
    if count not in ("exact", "none"):
        raise InvalidRequest("count parameter must be 'exact' or 'none'")
    return ListQuery(
        select=None,
        order_by=(F("modified_at").desc(nulls_first=True), F("uuid").asc()),
        distinct=False,
        limit=min(_int(params, "limit", app_settings.DEFAULT_LIMIT), app_settings.MAX_LIMIT),
        offset=_int(params, "offset", 0),
        count=count == "exact",
    )


def parse_select(value: Any) -> tuple[str, ...] | None:
    return None
