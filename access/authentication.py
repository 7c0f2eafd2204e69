from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from access import key_cache
from access.models import ApiKey

_TOUCH_INTERVAL_SECONDS = 60


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Api-Key <key>` (or `X-Api-Key: <key>`); the key is checked by hash.

    A key verified once is remembered by this process (``access.key_cache``: indexed by an HMAC
    of the key, trusted only under the current shared generation token), so a steady client
    costs one Redis read here instead of a PostgreSQL query; revocation and expiry still apply
    to the next request.
    """

    keyword = "Api-Key"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        key = ""
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != self.keyword.lower():
                return None
            key = value.strip()
        else:
            key = request.META.get("HTTP_X_API_KEY", "").strip()
        if not key:
            return None
        api_key, digest = None, None
        if key_cache.enabled():
            digest = key_cache.digest(key)
            token = key_cache.generation()
            api_key = key_cache.lookup(digest, token)
        if api_key is None:
            try:
                api_key = ApiKey.objects.get_from_key(key)
            except ApiKey.DoesNotExist:
                raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
            if digest is not None:
                key_cache.remember(digest, token, api_key)
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        now = timezone.now()
        if (
            api_key.last_used_at is None
            or (now - api_key.last_used_at).total_seconds() > _TOUCH_INTERVAL_SECONDS
        ):
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
            if digest is not None:
                key_cache.touch(digest, now)
        return AnonymousUser(), api_key

    def authenticate_header(self, request):
        return self.keyword
