"""The test URLconf plus the OpenAPI schema of it at ``/api/schema/`` (for the fuzz tests).

The test settings do not install drf-spectacular, so the schema view gets what the
reference project sets in ``SPECTACULAR_SETTINGS`` (the hook of ``job_tasks.openapi``)
as ``custom_settings``, and describes ``tests.urls`` only (not itself).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from job_tasks.openapi import SPECTACULAR_SETTINGS
from tests import urls

urlpatterns = [
    path(
        "api/schema/",
        SpectacularAPIView.as_view(urlconf="tests.urls", custom_settings=SPECTACULAR_SETTINGS),
        name="schema",
    ),
    *urls.urlpatterns,
]
