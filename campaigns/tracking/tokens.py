"""Signed tokens for the public tracking URLs: opens, clicks, unsubscribes, push clicks.

A token carries a purpose letter, the send id and (for clicks) the first 64 bits of the
destination's SHA-256, plus an HMAC keyed with SECRET_KEY. No address or name is in it, so a
forwarded or logged URL reveals nothing personal, and without the key nobody can mint a token
for another send or another destination: the click view only ever redirects to a URL the
server stored for that send's variant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from django.conf import settings

OPEN = "o"
CLICK = "c"
UNSUBSCRIBE = "u"
PUSH_CLICK = "p"
_PURPOSES = {OPEN, CLICK, UNSUBSCRIBE, PUSH_CLICK}
_SIGNATURE_BYTES = 15  # 120 bits: forgery is hopeless, the URL stays short


class BadToken(ValueError):  # noqa: N818 - reads as "raise BadToken"
    pass


def _key() -> bytes:
    return hashlib.sha256(b"reachly.campaigns.tracking:" + settings.SECRET_KEY.encode()).digest()


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def _signature(body: str, key: bytes) -> str:
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def url_digest(url: str) -> str:
    """The 16-hex-digit key of a destination URL within one variant's tracked links."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


class TokenMaker:
    """Mints tokens for many sends with one derived key (the hot loop of a send chunk)."""

    def __init__(self) -> None:
        self.key = _key()

    def make(self, purpose: str, send_id: int, link_hash: str = "") -> str:
        body = f"{purpose}{_b36(send_id)}" + (f".{link_hash}" if link_hash else "")
        return f"{body}.{_signature(body, self.key)}"


def make_token(purpose: str, send_id: int, link_hash: str = "") -> str:
    if purpose not in _PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return TokenMaker().make(purpose, send_id, link_hash)


def read_token(token: str, *, purpose: str) -> tuple[int, str]:
    """(send id, link hash) from a token minted for `purpose`, or BadToken."""
    if not token or len(token) > 120:
        raise BadToken("malformed")
    body, _, signature = token.rpartition(".")
    if not body or not hmac.compare_digest(signature, _signature(body, _key())):
        raise BadToken("bad signature")
    if body[:1] != purpose:
        raise BadToken("token made for another purpose")
    send_part, _, link_hash = body[1:].partition(".")
    try:
        send_id = int(send_part, 36)
    except ValueError:
        raise BadToken("malformed") from None
    if purpose == CLICK and len(link_hash) != 16:
        raise BadToken("click token without a link")
    return send_id, link_hash
