"""The baseline's pagination (a settings class, so it must not import views)."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response


class ArvadosPagination(LimitOffsetPagination):
    """LimitOffsetPagination in the Arvados envelope; ``count=none`` skips the count."""

    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        self.limit = self.get_limit(request)
        self.offset = self.get_offset(request)
        self.request = request
        self.count = None
        if request.query_params.get("count") != "none":
            self.count = self.get_count(queryset)
        return list(queryset[self.offset : self.offset + self.limit])

    def get_paginated_response(self, data):
        body = {
            "kind": "arvados#jobTaskList",
            "etag": "",
            "self_link": "",
            "offset": self.offset,
            "limit": self.limit,
            "items": data,
        }
        if self.count is not None:
            body["items_available"] = self.count
        return Response(body)
