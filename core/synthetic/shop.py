"""The shop: its static parts once, then customers in fixed batches, each from its own seeded stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core.synthetic.catalog import _CatalogSteps
from core.synthetic.config import (
    CUSTOMERS_PER_BATCH,
    POINTS_EXPIRY_DAYS,
    US_PER_DAY,
    US_PER_HOUR,
    SyntheticConfig,
)
from core.synthetic.consent import _ConsentSteps
from core.synthetic.customers import _CustomerSteps
from core.synthetic.loyalty import _LoyaltySteps, program_tables
from core.synthetic.orders import _OrderSteps
from core.synthetic.season import _Season
from core.synthetic.tables import Table, _flatten, _ts, _words
from core.synthetic.vocabulary import COUNTRIES, DOUBLE_OPT_IN_LOCALES, NAMES


@dataclass
class _Counters:
    order: int = 0
    line: int = 0
    event: int = 0
    browse: int = 0
    consent_record: int = 0
    consent_state: int = 0
    push: int = 0
    suppression: int = 0
    membership: int = 0
    points: int = 0
    lot: int = 0
    redemption: int = 0


class SyntheticShop(_CatalogSteps):
    """A deterministic synthetic shop: the catalogue and loyalty program first, then customers in batches."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.start_us = config.start_us
        self.end_us = config.end_us
        self.season = _Season(self.start_us, config.days)
        self.program_launch_us = max(self.start_us, self.end_us - POINTS_EXPIRY_DAYS * US_PER_DAY)
        self._build_profiles()
        self._build_catalog()

    # --- static parts --------------------------------------------------------------------------
    def _build_profiles(self) -> None:
        rows = []
        for country, weight, zones, locales in COUNTRIES:
            for zone, zone_weight, offset in zones:
                for locale, locale_weight, names in locales:
                    rows.append((country, zone, offset, locale, names, weight * zone_weight * locale_weight))
        languages = list(NAMES)
        self._country = _words([r[0] for r in rows])
        self._zone = _words([r[1] for r in rows])
        self._offset_hours = np.array([r[2] for r in rows], dtype=float)
        self._locale = _words([r[3] for r in rows])
        self._double_opt_in = np.array([r[3] in DOUBLE_OPT_IN_LOCALES for r in rows])
        self._language = np.array([languages.index(r[4]) for r in rows], dtype=np.int64)
        weights = np.array([r[5] for r in rows])
        self._profile_p = weights / weights.sum()
        first, self._first_off, self._first_cnt = _flatten([NAMES[lang][0] for lang in languages])
        last, self._last_off, self._last_cnt = _flatten([NAMES[lang][1] for lang in languages])
        self._first_names, self._last_names = _words(first), _words(last)
        self._first_local = np.strings.lower(self._first_names)
        self._last_local = np.strings.replace(np.strings.lower(self._last_names), b" ", b"")

    def catalog_tables(self) -> list[Table]:
        """Categories, products and the loyalty program: everything customers refer to."""
        return [*self._catalog_tables(), *program_tables(self.config, self.program_launch_us)]

    # --- customers, in batches -----------------------------------------------------------------
    def customer_batches(self) -> Iterator[list[Table]]:
        """One list of tables per batch of customers: profiles, consent, orders, events, loyalty."""
        cfg = self.config
        counters = _Counters()
        n_batches = cfg.batches
        for b in range(n_batches):
            lo = b * CUSTOMERS_PER_BATCH
            hi = min(cfg.customers, lo + CUSTOMERS_PER_BATCH)
            # Exact totals: each batch gets its proportional share, the rounding carried forward.
            orders = cfg.orders * hi // cfg.customers - cfg.orders * lo // cfg.customers
            browse = (
                cfg.browse_event_count * hi // cfg.customers - cfg.browse_event_count * lo // cfg.customers
            )
            yield _Batch(self, b, lo, hi, orders, browse, counters).tables()

    def tables(self) -> Iterator[list[Table]]:
        yield self.catalog_tables()
        yield from self.customer_batches()


def collect(config: SyntheticConfig) -> dict[str, Table]:
    """The whole data set in memory, one table per name: for tests and notebooks at small scale."""
    parts: dict[str, list[Table]] = {}
    for batch in SyntheticShop(config).tables():
        for table in batch:
            parts.setdefault(table.name, []).append(table)
    return {name: Table.concat(tables) for name, tables in parts.items()}


class _Batch(_CustomerSteps, _ConsentSteps, _OrderSteps, _LoyaltySteps):
    """One batch of customers and everything they did. Kept as one object so each step reads the last."""

    def __init__(
        self, shop: SyntheticShop, index: int, lo: int, hi: int, orders: int, browse: int, counters: _Counters
    ) -> None:
        self.shop, self.cfg, self.counters = shop, shop.config, counters
        self.rng = np.random.default_rng(np.random.SeedSequence([shop.config.seed, 1, index]))
        self.lo, self.n = lo, hi - lo
        self.n_orders, self.n_browse = orders, browse
        self.start, self.end = shop.start_us, shop.end_us

    def tables(self) -> list[Table]:
        customers = self._customers()
        consent_records, consents, push, suppressions = self._consent()
        customers.columns["updated_at"] = _ts(
            np.maximum(customers.columns["created_at"].view(np.int64), self.last_consent_change)
        )
        orders, lines = self._orders()
        events = self._events()
        memberships, points, lots, redemptions = self._loyalty()
        return [
            customers,
            consent_records,
            consents,
            push,
            suppressions,
            orders,
            lines,
            events,
            memberships,
            points,
            lots,
            redemptions,
        ]

    def _local_hours(self, us: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return (us - self.start) / US_PER_HOUR + offset

    def _from_local_hours(self, hours: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return self.start + np.rint((hours - offset) * US_PER_HOUR).astype(np.int64)
