"""The baseline's token authentication (a settings class, so it must not import views)."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from job_tasks.models import ApiToken, hash_secret


class BearerTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer v2/<uuid>/<secret>`` against the app's token table."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Bearer "):
            return None
        secret = header[7:].strip().rsplit("/", 1)[-1]
        try:
            token = ApiToken.objects.select_related("user").get(secret_hash=hash_secret(secret))
        except ApiToken.DoesNotExist:
            raise AuthenticationFailed("Not logged in") from None
        if not token.is_usable:
            raise AuthenticationFailed("Not logged in")
        return token.user, token

    def authenticate_header(self, request):
        return "Bearer"
