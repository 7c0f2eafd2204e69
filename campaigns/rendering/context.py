"""What a template may see: plain values, in a documented shape.

The Django side builds these dicts from an allowlist of fields (never an ORM object, so a
template can neither lazy-load a relation nor call a method with side effects) and this
module checks both halves of that promise before anything renders: every value is plain
data, and every key of the contract below is present (``None`` where unknown), so a
missing key is reported as the caller's bug rather than blamed on the marketer's template.
The contract is documented for marketers in ``docs/templates.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict


class CustomerContext(TypedDict):
    first_name: str | None
    last_name: str | None
    email: str
    locale: str | None
    timezone: str | None
    country: str | None
    #: Free-form attributes imported from the CRM (plain values only).
    attributes: dict[str, Any]


class LoyaltyContext(TypedDict):
    program: str
    tier: str | None
    points: int
    points_expiring: int
    points_expiring_at: dt.date | None
    next_tier: str | None
    points_to_next_tier: int | None


class RecommendationContext(TypedDict):
    name: str
    url: str
    image_url: str | None
    price: Decimal | None
    currency: str | None
    explanation: str | None
    sku: str
    category: str | None


class CampaignContext(TypedDict):
    name: str
    variant: str | None


class LinksContext(TypedDict):
    unsubscribe_url: str
    preferences_url: str | None


class CompanyContext(TypedDict):
    name: str
    postal_address: str


class MessageContext(TypedDict):
    customer: CustomerContext
    #: ``None`` when the customer is not a loyalty member.
    loyalty: LoyaltyContext | None
    recommendations: list[RecommendationContext]
    campaign: CampaignContext
    links: LinksContext
    company: CompanyContext
    #: The send (or preview) time, timezone-aware; ``days_until`` counts from it.
    now: dt.datetime


#: Top-level names, in the order the docs list them.
CONTEXT_NAMES = tuple(MessageContext.__annotations__)

_REQUIRED_KEYS: dict[str, frozenset[str]] = {
    "customer": frozenset(CustomerContext.__annotations__),
    "loyalty": frozenset(LoyaltyContext.__annotations__),
    "recommendations": frozenset(RecommendationContext.__annotations__),
    "campaign": frozenset(CampaignContext.__annotations__),
    "links": frozenset(LinksContext.__annotations__),
    "company": frozenset(CompanyContext.__annotations__),
}

#: Exact types: a ``str`` subclass such as Django's ``SafeString`` or ``markupsafe.Markup``
#: carries ``__html__`` and would be printed unescaped; an enum or model field type may
#: carry methods. The Django side converts to these before rendering.
_SCALARS = frozenset({str, int, float, bool, type(None), Decimal, dt.date, dt.datetime, dt.time})


class ContextError(TypeError):
    """The render context breaks the contract: a bug in the code that built it."""


def check_plain(value: object, path: str = "context", *, max_depth: int = 12) -> None:
    """Refuse anything but plain data, naming the first offending path.

    Runs once per message, so the path is only spelled out when something is wrong.
    """
    found = _first_impure(value, max_depth)
    if found is not None:
        steps, problem = found
        raise ContextError(f"{path}{''.join(reversed(steps))} {problem}")


def _first_impure(value: object, depth: int) -> tuple[list[str], str] | None:
    kind = type(value)
    if kind in _SCALARS:
        return None
    if depth <= 0:
        return [], "is nested too deeply"
    if kind is dict:
        for key, child in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                return [], f"has a non-text key {key!r}"
            if type(child) not in _SCALARS:
                found = _first_impure(child, depth - 1)
                if found is not None:
                    found[0].append(f".{key}")
                    return found
        return None
    if kind is list or kind is tuple:
        for index, child in enumerate(value):  # type: ignore[arg-type]
            if type(child) not in _SCALARS:
                found = _first_impure(child, depth - 1)
                if found is not None:
                    found[0].append(f"[{index}]")
                    return found
        return None
    return [], (
        f"is a {kind.__name__!r}; only plain values (text, numbers, dates, "
        "lists and dicts of them) may reach a template"
    )


def check_message_context(context: Mapping[str, object]) -> None:
    """Check that every key of the contract is present (plainness is checked by every render)."""
    missing_names = [name for name in CONTEXT_NAMES if name not in context]
    if missing_names:
        raise ContextError(f"the context lacks {', '.join(missing_names)}")
    if not isinstance(context["now"], dt.datetime) or context["now"].tzinfo is None:
        raise ContextError("context.now must be a timezone-aware datetime")
    for name, keys in _REQUIRED_KEYS.items():
        value = context[name]
        if name == "loyalty" and value is None:
            continue
        rows = value if name == "recommendations" else [value]
        if not isinstance(rows, list):
            raise ContextError(f"context.{name} must be a list")
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ContextError(f"context.{name} must be a dict")
            absent = sorted(keys - row.keys())
            if absent:
                where = f"context.{name}[{index}]" if name == "recommendations" else f"context.{name}"
                raise ContextError(f"{where} lacks {', '.join(absent)} (use None for unknown values)")
