"""Messages per second per provider: a token bucket shared by every worker through Redis.

Redis holds only the bucket (tokens and a timestamp), which can be lost at any moment: a
restarted Redis starts a full bucket (one burst more than the rate allows, once), and while
Redis cannot be reached each process falls back to a bucket of its own, so sending slows to
the local rate instead of stopping. Nothing about which messages were sent lives here.

Taking tokens is a reservation: the bucket may go negative and the caller sleeps for the
returned wait, so concurrent workers queue up fairly instead of spinning on retries.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
tokens = tokens - want
local wait = 0
if tokens < 0 then wait = -tokens / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class LocalBucket:
    """The same arithmetic in-process: the fallback while Redis is away."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.ts = burst, time.monotonic()
        self.lock = threading.Lock()

    def reserve(self, want: float) -> float:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.ts) * self.rate) - want
            self.ts = now
            return -self.tokens / self.rate if self.tokens < 0 else 0.0


_local_buckets: dict[str, LocalBucket] = {}


def _redis_client():
    import redis

    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


class Throttle:
    """`wait(n)` blocks until `n` more messages may go to `provider` at `rate` per second."""

    def __init__(self, provider: str, rate: float | None, *, client=None, sleep=time.sleep):
        self.provider = provider
        self.rate = float(rate) if rate else 0.0
        self.burst = max(1.0, self.rate)  # one second's worth
        self.key = f"reachly:throttle:{provider}"
        self.sleep = sleep
        self.client = client if client is not None else (_redis_client() if self.rate else None)
        self._script = None

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def reserve(self, count: int = 1) -> float:
        if not self.enabled:
            return 0.0
        if self.client is not None:
            try:
                if self._script is None:
                    self._script = self.client.register_script(_RESERVE)
                return float(self._script(keys=[self.key], args=[self.rate, self.burst, count]))
            except Exception as exc:  # noqa: BLE001 - Redis down or restarted: rate locally
                logger.warning(
                    "throttle %s: Redis unavailable (%s); using a local bucket", self.provider, exc
                )
        bucket = _local_buckets.get(self.key)
        if bucket is None or bucket.rate != self.rate:
            bucket = _local_buckets[self.key] = LocalBucket(self.rate, self.burst)
        return bucket.reserve(count)

    def wait(self, count: int = 1) -> float:
        delay = self.reserve(count)
        if delay > 0:
            self.sleep(delay)
        return delay


def rate_for(provider: str, campaign_rate: int | None) -> float | None:
    """The campaign's own rate if set, else CAMPAIGN_SEND_RATES[provider], else unlimited."""
    if campaign_rate:
        return float(campaign_rate)
    configured = getattr(settings, "CAMPAIGN_SEND_RATES", {}) or {}
    value = configured.get(provider) or configured.get("default")
    return float(value) if value else None
