from __future__ import annotations

import math

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

from access.models import ApiKey

# GCRA (the generic cell rate algorithm): a token bucket of `limit` requests refilled evenly over
# `period`, kept as one number per key (the theoretical arrival time) and decided inside Redis in
# one round trip. Times come from Redis's own clock, so every web process agrees.
# KEYS[1] bucket; KEYS[2] (optional) a key read in the same round trip (the API-key cache's
# generation token); ARGV[1] emission interval (µs per request); ARGV[2] burst window (µs).
# Returns {allowed (1/0), wait in µs, value of KEYS[2] or false}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local extra = false
if #KEYS > 1 then extra = redis.call('GET', KEYS[2]) end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > window then
  return {0, new_tat - now - window, extra}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, extra}
"""


def _redis_backend() -> RedisCache | None:
    backend = caches["default"]  # the backend itself (`django.core.cache.cache` is a proxy to it)
    return backend if isinstance(backend, RedisCache) else None


def take_token(ident: str, rate: str, *, also_read: str | None = None) -> tuple[bool, float, bytes | None]:
    """Spend one request of ``ident``'s budget (``rate`` like ``600/min``) in one Redis round trip.

    Returns (allowed, seconds to wait, the raw value of cache key ``also_read`` or ``None``).
    """
    backend = _redis_backend()
    number, period = rate.split("/")
    num_requests, duration = int(number), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    bucket = backend.make_and_validate_key("gcra:" + ident)
    keys = [bucket] if also_read is None else [bucket, backend.make_and_validate_key(also_read)]
    # Django's Redis backend exposes no scripting; its client (a redis-py connection from the
    # backend's own pool) is reached through `_cache`, stable since Django 4.0.
    client = backend._cache.get_client(bucket, write=True)
    interval = duration * 1_000_000 / num_requests
    allowed, wait, extra = client.register_script(_GCRA)(
        keys=keys, args=[int(interval), int(duration * 1_000_000)]
    )
    return bool(allowed), int(wait) / 1_000_000, extra or None


def throttles_with_us(view) -> bool:
    """Whether the view runs this throttle (only then may authentication spend its token early)."""
    classes = getattr(view, "throttle_classes", None) or ()
    return any(isinstance(c, type) and issubclass(c, ApiKeyRateThrottle) for c in classes)


def key_rate(api_key: ApiKey) -> str | None:
    return api_key.rate or ApiKeyRateThrottle.THROTTLE_RATES.get(ApiKeyRateThrottle.scope)


def key_ident(api_key: ApiKey) -> str:
    return ApiKeyRateThrottle.cache_format % {"scope": ApiKeyRateThrottle.scope, "ident": f"key:{api_key.pk}"}


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
        spent = getattr(request, "api_key_token_spent", None)
        if spent is not None and isinstance(request.auth, ApiKey) and spent[0] == request.auth.pk:
            # Authentication already spent this request's token in its own Redis round trip.
            allowed, self._wait = spent[1], spent[2]
            return allowed
        if self.rate is None or _redis_backend() is None:
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        allowed, self._wait, _ = take_token(self.key, self.rate)
        return allowed

    def wait(self):
        if hasattr(self, "_wait"):
            return max(1, math.ceil(self._wait)) if self._wait > 0 else None
        return super().wait()

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            return key_ident(request.auth)
        if getattr(request.user, "is_authenticated", False):
            ident = f"user:{request.user.pk}"
        else:
            ident = f"anon:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
