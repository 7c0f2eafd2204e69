"""A per-process cache of verified API keys, so a request does not pay a database query for its key.

Keys stay hashed at rest (SHA-512 by djangorestframework-api-key); the cache only remembers,
in this process's memory, that a presented key was verified and which row it is. It is indexed
by an HMAC-SHA256 of the key under ``SECRET_KEY`` (fast, and useless to anyone without the
secret), never by the key itself, and holds at most ``MAX_ENTRIES`` keys for ``TTL_SECONDS``.

Revocation stays effective: every change to a key row (saves, deletes and queryset updates
other than the ``last_used_at`` touch) replaces a random generation token in the shared cache
(Redis), at once and again when the transaction commits. Each request reads that token and
trusts a cached entry only when it was loaded under the same token; a missing token (Redis
flushed) means "reload". The token is read in the same Redis call that spends the request's
throttle token (``access.throttling.take_token``), so a steady client costs one Redis round trip
and no PostgreSQL query for authentication and rate limiting together. Only a change made
behind Django's back (raw SQL) waits for the entry's TTL. With a per-process cache backend
(local memory, the embedded default) another process's revocation could not be seen, so the
cache is off there and every request reads the database, as before.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from functools import cache

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.db import transaction

logger = logging.getLogger(__name__)

GENERATION_KEY = "access:api-key-generation"
TTL_SECONDS = 60.0
MAX_ENTRIES = 1024
_SHARED_BACKENDS = ("django.core.cache.backends.redis.RedisCache",)

_entries: OrderedDict[bytes, tuple[str, float, object]] = OrderedDict()
_lock = threading.Lock()


@cache
def _hmac_key() -> bytes:
    return hashlib.sha256(b"reachly.api-key-cache:" + settings.SECRET_KEY.encode()).digest()


def enabled() -> bool:
    return settings.CACHES.get("default", {}).get("BACKEND") in _SHARED_BACKENDS


def digest(key: str) -> bytes:
    return hmac.new(_hmac_key(), key.encode(), hashlib.sha256).digest()


def _new_token() -> int:
    # An int, which Django's Redis backend stores as plain digits: the throttle script can read
    # it in the same round trip (see access.throttling.take_token).
    return secrets.randbits(62)


def parse_token(raw) -> int | None:
    """The token as read raw from Redis (digits), ``None`` when absent or unreadable."""
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def generation() -> int | None:
    """The shared token; ``None`` when the cache cannot say (then nothing cached is trusted)."""
    try:
        token = shared_cache.get(GENERATION_KEY)
        if token is None:
            shared_cache.add(GENERATION_KEY, _new_token(), timeout=None)
            token = shared_cache.get(GENERATION_KEY)
    except Exception:  # noqa: BLE001 - Redis unreachable: fall back to the database
        return None
    return token if isinstance(token, int) else None


def peek(key_digest: bytes) -> tuple[int, object] | None:
    """(token it was loaded under, a copy of the key row) for a fresh entry; the caller compares
    the token with the current one before trusting the row."""
    now = time.monotonic()
    with _lock:
        entry = _entries.get(key_digest)
        if entry is None:
            return None
        entry_token, loaded_at, api_key = entry
        if now - loaded_at > TTL_SECONDS:
            del _entries[key_digest]
            return None
        _entries.move_to_end(key_digest)
    return entry_token, copy.copy(api_key)


def lookup(key_digest: bytes, token: int | None):
    """A copy of the cached key row when it was loaded under ``token`` and is fresh, else ``None``."""
    if token is None:
        return None
    found = peek(key_digest)
    if found is None or found[0] != token:
        forget(key_digest)
        return None
    return found[1]


def forget(key_digest: bytes) -> None:
    with _lock:
        _entries.pop(key_digest, None)


def remember(key_digest: bytes, token: int | None, api_key) -> None:
    """Keep a verified key row, tagged with the token read *before* it was loaded."""
    if token is None:
        return
    with _lock:
        _entries[key_digest] = (token, time.monotonic(), copy.copy(api_key))
        _entries.move_to_end(key_digest)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)


def touch(key_digest: bytes, last_used_at) -> None:
    with _lock:
        entry = _entries.get(key_digest)
        if entry is not None:
            entry[2].last_used_at = last_used_at


def _bump() -> None:
    try:
        shared_cache.set(GENERATION_KEY, _new_token(), timeout=None)
    except Exception:  # noqa: BLE001 - Redis down: other processes read the database meanwhile
        logger.warning(
            "API key change not announced to other processes (cache unreachable); "
            "their cached keys expire within %s s",
            TTL_SECONDS,
        )
    with _lock:
        _entries.clear()


def keys_changed() -> None:
    """A key row changed: forget every cached key here and in every other process.

    Bumped now (this transaction's own requests reload) and again on commit: a process that
    reloaded in between saw the row as it was before the commit and must reload once more.
    """
    _bump()
    transaction.on_commit(_bump)
