from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from access import key_cache, throttling
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
            api_key, token = self._from_cache(request, digest)
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

    def _from_cache(self, request, digest: bytes):
        """(the cached key row if still valid, else None; the generation token to load under).

        A remembered key spends the request's throttle token and reads the generation token in
        one Redis call; the spent token is handed to the throttle (same key), so the throttle
        makes no call of its own. (A request refused by the permission check has then spent a
        token too.)
        """
        found = key_cache.peek(digest)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if found is None or view is None or not throttling.throttles_with_us(view):
            return None, key_cache.generation()
        cached_token, api_key = found
        rate = throttling.key_rate(api_key)
        if rate is None:
            return (api_key, cached_token) if key_cache.generation() == cached_token else (None, None)
        try:
            allowed, wait, raw = throttling.take_token(
                throttling.key_ident(api_key), rate, also_read=key_cache.GENERATION_KEY
            )
        except Exception:  # noqa: BLE001 - Redis unreachable: the database decides, as without a cache
            return None, None
        request.api_key_token_spent = (api_key.pk, allowed, wait)
        token = key_cache.parse_token(raw)
        if token is not None and token == cached_token:
            return api_key, token
        key_cache.forget(digest)
        return None, (token if token is not None else key_cache.generation())

    def authenticate_header(self, request):
        return self.keyword
