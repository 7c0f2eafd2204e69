"""What the synthetic shop generates: the knobs (`SyntheticConfig`) and the fixed shares behind them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from core.synthetic.tables import _to_us

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR

DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMERS_PER_BATCH = 10_000
POINTS_EXPIRY_DAYS = 365

RESERVED_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TOP_LEVEL_DOMAINS = ("example", "test", "invalid")

# Customers created before the history starts (imported from an older CRM); they have orders
# in the window but their first purchase is not in it, as in any real extract.
EXISTING_CUSTOMER_SHARE = 0.35
SOFT_DELETED_SHARE = 0.003

EMAIL_GRANTED_SHARE = 0.82
EMAIL_PENDING_SHARE = 0.04
EMAIL_WITHDRAWN_SHARE = 0.08  # of those granted
DOUBLE_OPT_IN_SHARE = 0.2  # outside German-speaking countries, where it is the norm
PUSH_GRANTED_SHARE = 0.22
PUSH_WITHDRAWN_SHARE = 0.15
SMS_GRANTED_SHARE = 0.07
SMS_WITHDRAWN_SHARE = 0.10
BOUNCED_SHARE = 0.004
COMPLAINT_SHARE = 0.0005
PHONE_SHARE = 0.35

REDEEM_PROBABILITY = 0.15
NON_BUYER_JOIN_RATE = 0.05


def check_email_domain(domain: str) -> str:
    """Only domains reserved for documentation (RFC 2606/6761): synthetic mail must never be deliverable."""
    domain = domain.strip().lower().rstrip(".")
    top = domain.rsplit(".", 1)[-1]
    reserved = any(domain == d or domain.endswith("." + d) for d in RESERVED_EMAIL_DOMAINS)
    if not (reserved or (top in RESERVED_TOP_LEVEL_DOMAINS and "." in domain)):
        raise ValueError(
            f"Email domain {domain!r} is not reserved; use example.com, example.net, example.org "
            "(or a subdomain), or a name under .example, .test or .invalid"
        )
    return domain


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Every knob has a default that gives retail-like data."""

    customers: int
    products: int
    orders: int
    seed: int = 0
    browse_events: int | None = None  # views, add-to-cart and searches; default: as many as orders
    days: int = 365
    end: datetime = DEFAULT_END
    email_domain: str = "example.com"
    currency: str = "GBP"
    zipf_exponent: float = 1.05
    category_affinity: float = 0.75
    purchase_rate_shape: float = 0.6  # Gamma shape r of the purchase rates: smaller, more skew
    dropout_a: float = 0.8  # Beta(a, b) of the probability of dropping out after each purchase
    dropout_b: float = 3.0
    extra_lines_mean: float = 1.4
    return_rate: float = 0.03
    cancellation_rate: float = 0.01
    loyalty_join_rate: float = 0.55

    def __post_init__(self) -> None:
        problems = []
        if self.customers < 1:
            problems.append("customers must be at least 1")
        if self.products < 1:
            problems.append("products must be at least 1")
        if self.orders < 0:
            problems.append("orders must not be negative")
        if self.browse_events is not None and self.browse_events < 0:
            problems.append("browse_events must not be negative")
        if self.seed < 0:
            problems.append("seed must not be negative")
        if self.days < 1:
            problems.append("days must be at least 1")
        if self.end.tzinfo is None:
            problems.append("end must be timezone-aware")
        if self.zipf_exponent <= 0:
            problems.append("zipf_exponent must be positive")
        for name in ("category_affinity", "return_rate", "cancellation_rate", "loyalty_join_rate"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be between 0 and 1")
        for name in ("purchase_rate_shape", "dropout_a", "dropout_b"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.extra_lines_mean < 0:
            problems.append("extra_lines_mean must not be negative")
        if len(self.currency) != 3:
            problems.append("currency must be a 3-letter code")
        try:
            object.__setattr__(self, "email_domain", check_email_domain(self.email_domain))
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))

    def summary(self) -> dict[str, int]:
        """The knobs that size a run, for JSON reports; `end` is left to callers that let it vary."""
        return {
            "customers": self.customers,
            "products": self.products,
            "orders": self.orders,
            "browse_events": self.browse_event_count,
            "seed": self.seed,
            "days": self.days,
        }

    @property
    def browse_event_count(self) -> int:
        return self.orders if self.browse_events is None else self.browse_events

    @property
    def end_us(self) -> int:
        return _to_us(self.end)

    @property
    def start_us(self) -> int:
        return self.end_us - self.days * US_PER_DAY

    @property
    def batches(self) -> int:
        return -(-self.customers // CUSTOMERS_PER_BATCH)
