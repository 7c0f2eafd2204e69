from __future__ import annotations

import math

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

from access.models import ApiKey

# GCRA (the generic cell rate algorithm): a token bucket of `limit` requests refilled evenly over
# `period`, kept as one number per key (the theoretical arrival time) and decided inside Redis in
# one round trip. Times come from Redis's own clock, so every web process agrees.
# KEYS[1] bucket; ARGV[1] emission interval (µs per request); ARGV[2] burst window (µs).
# Returns {allowed (1/0), wait in µs}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > window then
  return {0, new_tat - now - window}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"""


class ApiKeyRateThrottle(SimpleRateThrottle):
    """A token budget per API key (or per admin user), kept in the cache (Redis).

    On Redis the budget is decided by one script call per request, whatever the rate (DRF's own
    throttle keeps a list of every request of the last period and rewrites it on each call: a
    6,000/min key would move a 6,000-entry list twice per request). Other cache backends (the
    embedded default) use DRF's implementation.
    """

    scope = "api_key"

    def get_rate(self):
        return super().get_rate()

    def allow_request(self, request, view):
        if isinstance(request.auth, ApiKey) and request.auth.rate:
            self.rate = request.auth.rate
            self.num_requests, self.duration = self.parse_rate(self.rate)
        backend = caches["default"]  # the backend itself (`cache` is a proxy to it)
        if self.rate is None or not isinstance(backend, RedisCache):
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        interval = self.duration * 1_000_000 / self.num_requests
        window = self.duration * 1_000_000
        bucket = backend.make_and_validate_key("gcra:" + self.key)
        # Django's Redis backend exposes no scripting; its client (a redis-py connection from the
        # backend's own pool) is reached through `_cache`, stable since Django 4.0.
        client = backend._cache.get_client(bucket, write=True)
        allowed, wait = client.register_script(_GCRA)(keys=[bucket], args=[int(interval), int(window)])
        self._wait = int(wait) / 1_000_000
        return bool(allowed)

    def wait(self):
        if hasattr(self, "_wait"):
            return max(1, math.ceil(self._wait)) if self._wait > 0 else None
        return super().wait()

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif getattr(request.user, "is_authenticated", False):
            ident = f"user:{request.user.pk}"
        else:
            ident = f"anon:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
