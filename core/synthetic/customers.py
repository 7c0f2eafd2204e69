"""Customers: profiles, lifecycles (signup, purchase rate, dropout) and addresses."""

from __future__ import annotations

import numpy as np

from core.synthetic.config import EXISTING_CUSTOMER_SHARE, PHONE_SHARE, SOFT_DELETED_SHARE, US_PER_DAY
from core.synthetic.tables import Table, _digits, _join, _padded, _pick, _ts, _words
from core.synthetic.vocabulary import SIGNUP_CHANNELS


class _CustomerSteps:
    """A batch's customers; sets the lifecycle arrays the later steps read."""

    def _customers(self) -> Table:
        shop, rng, n = self.shop, self.rng, self.n
        ids = np.arange(self.lo + 1, self.lo + n + 1, dtype=np.int64)
        profile = rng.choice(len(shop._profile_p), size=n, p=shop._profile_p)
        language = shop._language[profile]
        first = _pick(rng, shop._first_off, shop._first_cnt, language)
        last = _pick(rng, shop._last_off, shop._last_cnt, language)
        self.offset = shop._offset_hours[profile]
        self.profile = profile

        # Lifecycle: existing customers came from an older CRM; new ones sign up over the window.
        existing = rng.random(n) < EXISTING_CUSTOMER_SHARE
        created = np.empty(n, dtype=np.int64)
        created[existing] = self.start - (rng.random(existing.sum()) * 3 * 365 * US_PER_DAY).astype(np.int64)
        new = ~existing
        window_hours = self.cfg.days * 24
        signup_local = shop.season.sample(
            self.offset[new], window_hours + self.offset[new], rng.random(new.sum())
        )
        created[new] = np.clip(
            self._from_local_hours(signup_local, self.offset[new]), self.start, self.end - 1
        )
        self.existing, self.created = existing, created
        self.window_start = np.where(existing, self.start, created)

        # BG/NBD-like purchasing: rate ~ Gamma(r), drop out after a Beta-geometric number of purchases.
        cfg = self.cfg
        horizon_days = np.maximum((self.end - self.window_start) / US_PER_DAY, 1e-3)
        rate = np.maximum(rng.gamma(cfg.purchase_rate_shape, 1.0, n), 1e-9)
        base = max(self.n_orders, 1) / n / cfg.purchase_rate_shape / horizon_days.mean()
        rate_per_day = rate * base
        dropout = np.clip(rng.beta(cfg.dropout_a, cfg.dropout_b, n), 1e-6, 1.0)
        purchases_until_dropout = rng.gamma(rng.geometric(dropout).astype(float), 1.0)
        self.alive_days = np.minimum(purchases_until_dropout / rate_per_day, horizon_days)
        expected = rate_per_day * self.alive_days
        if self.n_orders > 0:
            self.order_counts = rng.multinomial(self.n_orders, expected / expected.sum()).astype(np.int64)
        else:
            self.order_counts = np.zeros(n, dtype=np.int64)
        # Favourite categories, drawn by popularity so the product mix stays Zipf overall.
        self.favourites = rng.choice(len(shop.leaf_p), size=(n, 2), p=shop.leaf_p)

        style = rng.random(n)
        local = np.where(
            style < 0.5,
            _join(shop._first_local[first], b".", shop._last_local[last]),
            np.where(
                style < 0.8,
                _join(np.strings.slice(shop._first_local[first], 0, 1), shop._last_local[last]),
                _join(shop._first_local[first], b"_", shop._last_local[last]),
            ),
        )
        self.email = _join(local, _digits(ids), b"@", self.cfg.email_domain.encode())
        has_phone = rng.random(n) < PHONE_SHARE
        phone = np.where(
            has_phone, _join(b"+447700900", np.strings.zfill(_digits(rng.integers(0, 1000, n)), 3)), b""
        )
        channel = np.where(existing, b"crm", _words(SIGNUP_CHANNELS)[rng.choice(3, n, p=[0.62, 0.3, 0.08])])
        self.signup_channel = channel
        birth_year = rng.integers(1950, 2007, n)
        deleted = rng.random(n) < SOFT_DELETED_SHARE
        deleted_at = created + (rng.random(n) * (self.end - created)).astype(np.int64)
        return Table(
            "customers",
            {
                "id": ids,
                "external_id": _padded(b"C", ids, 9),
                "email": self.email,
                "phone": phone,
                "first_name": shop._first_names[first],
                "last_name": shop._last_names[last],
                "locale": shop._locale[profile],
                "timezone": shop._zone[profile],
                "country": shop._country[profile],
                "attributes": _join(
                    b'{"signup_channel": "', channel, b'", "birth_year": ', _digits(birth_year), b"}"
                ),
                "deleted_at": _ts(deleted_at),
                "erased_at": _ts(np.zeros(n, dtype=np.int64)),
                "created_at": _ts(created),
                "updated_at": _ts(created),
            },
            nulls={"deleted_at": ~deleted, "erased_at": np.ones(n, dtype=bool)},
        )
