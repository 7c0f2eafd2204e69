"""Stable digests of payloads and personal identifiers."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings


def payload_digest(payload: Any) -> str:
    """SHA-256 of a canonical JSON form, so key order and whitespace do not matter."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def email_digest(email: str) -> str:
    """Keyed hash of an address: what the suppression list keeps after an erasure.

    Keyed (HMAC) rather than a bare SHA-256 so the list cannot be reversed with a dictionary of
    known addresses by someone who only has the database.
    """
    key = settings.SUPPRESSION_HASH_KEY.encode("utf-8")
    return hmac.new(key, normalize_email(email).encode("utf-8"), hashlib.sha256).hexdigest()
