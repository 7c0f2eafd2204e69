from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from access.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """A token budget per API key (or per admin user), kept in the cache (Redis)."""

    scope = "api_key"

    def get_rate(self):
        return super().get_rate()

    def allow_request(self, request, view):
        if isinstance(request.auth, ApiKey) and request.auth.rate:
            self.rate = request.auth.rate
            self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif getattr(request.user, "is_authenticated", False):
            ident = f"user:{request.user.pk}"
        else:
            ident = f"anon:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
