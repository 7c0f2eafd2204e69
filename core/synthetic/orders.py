"""Orders with their lines (returns and cancellations as negative lines) and the events around them."""

from __future__ import annotations

import numpy as np

from core.synthetic.config import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND
from core.synthetic.tables import Table, _join, _padded, _pick, _rank_within, _ts
from core.synthetic.vocabulary import COLOURS


class _OrderSteps:
    """A batch's orders and lines, then its events: purchases and browsing leading up to them."""

    def _orders(self) -> tuple[Table, Table]:
        shop, cfg, rng, end = self.shop, self.cfg, self.rng, self.end
        counts = self.order_counts
        cust = np.repeat(np.arange(self.n, dtype=np.int64), counts)
        rank = _rank_within(cust)
        k = len(cust)
        lo = self._local_hours(self.window_start[cust], self.offset[cust])
        hi = lo + self.alive_days[cust] * 24
        placed = self._from_local_hours(shop.season.sample(lo, hi, rng.random(k)), self.offset[cust])
        # A new customer's first order is the one they signed up with.
        at_signup = (rank == 0) & ~self.existing[cust]
        placed[at_signup] = self.created[cust[at_signup]] + (
            rng.exponential(20 * US_PER_MINUTE, at_signup.sum())
        ).astype(np.int64)
        placed = np.clip(placed, self.window_start[cust], end - 1)
        order = np.lexsort((placed, cust))
        cust, placed = cust[order], placed[order]
        self.order_customer, self.order_placed = cust, placed
        self.first_order = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)

        # Lines: distinct products per order, mostly from the customer's favourite categories.
        per_order = 1 + rng.poisson(cfg.extra_lines_mean, k)
        line_order = np.repeat(np.arange(k, dtype=np.int64), per_order)
        line_cust = cust[line_order]
        favourite = self.favourites[line_cust, rng.integers(0, 2, len(line_order))]
        leaf = np.where(rng.random(len(line_order)) < cfg.category_affinity, favourite, -1)
        product = shop.sample_products(rng, leaf)
        _, keep = np.unique(line_order * cfg.products + product, return_index=True)
        line_order, product = line_order[keep], product[keep]
        quantity = np.minimum(rng.geometric(0.62, len(product)), 12).astype(np.int64)
        price = shop.price_cents[product]
        position = _rank_within(line_order)
        self.sale_line_order, self.sale_line_product = line_order, product
        self.sale_first = np.searchsorted(line_order, np.arange(k), side="left")
        self.sale_count = np.searchsorted(line_order, np.arange(k), side="right") - self.sale_first

        cancelled = rng.random(k) < cfg.cancellation_rate
        cancel_line = cancelled[line_order]
        returned = (rng.random(len(product)) < cfg.return_rate) & ~cancel_line
        returned_qty = 1 + (rng.random(returned.sum()) * quantity[returned]).astype(np.int64)
        # kind: 0 sale, 1 return, 2 cancellation
        all_order = np.r_[line_order, line_order[returned], line_order[cancel_line]]
        all_kind = np.r_[
            np.zeros(len(product), dtype=np.int64),
            np.ones(returned.sum(), dtype=np.int64),
            np.full(cancel_line.sum(), 2, dtype=np.int64),
        ]
        all_product = np.r_[product, product[returned], product[cancel_line]]
        all_qty = np.r_[quantity, -returned_qty, -quantity[cancel_line]]
        all_price = np.r_[price, price[returned], price[cancel_line]]
        all_position = np.r_[position, position[returned], position[cancel_line]]
        arrange = np.lexsort((all_position, all_kind > 0, all_order))
        all_order, all_kind, all_product, all_qty, all_price = (
            a[arrange] for a in (all_order, all_kind, all_product, all_qty, all_price)
        )
        amount = (all_qty * all_price).astype(float)
        total = np.rint(np.bincount(all_order, weights=amount, minlength=k)).astype(np.int64)
        sale = all_kind == 0
        gross = np.rint(np.bincount(all_order[sale], weights=amount[sale], minlength=k)).astype(np.int64)
        units = np.bincount(all_order[sale], weights=all_qty[sale], minlength=k).astype(np.int64)
        back = -np.bincount(all_order[all_kind == 1], weights=all_qty[all_kind == 1], minlength=k).astype(
            np.int64
        )
        age = end - placed
        status = np.select(
            [cancelled, back == units, age < 6 * US_PER_HOUR, age < 3 * US_PER_DAY],
            [b"cancelled", b"returned", b"placed", b"paid"],
            b"fulfilled",
        )
        self.order_cancelled, self.order_total, self.order_gross, self.order_units = (
            cancelled,
            total,
            gross,
            units,
        )

        c = self.counters
        order_ids = np.arange(c.order + 1, c.order + k + 1, dtype=np.int64)
        self.order_ids = order_ids
        self.order_external = _padded(b"SO", order_ids, 10)
        customer_ids = self.lo + 1 + cust
        updated = np.where(status == b"fulfilled", np.minimum(placed + 3 * US_PER_DAY, end - 1), placed)
        updated = np.where(status == b"returned", np.minimum(placed + 14 * US_PER_DAY, end - 1), updated)
        orders = Table(
            "orders",
            {
                "id": order_ids,
                "external_id": self.order_external,
                "customer_id": customer_ids,
                "status": status,
                "placed_at": _ts(placed),
                "currency": np.full(k, cfg.currency.encode(), dtype="S3"),
                "total": total,
                "attributes": np.full(k, b"{}", dtype="S2"),
                "payload_hash": np.full(k, b"", dtype="S1"),
                "created_at": _ts(placed),
                "updated_at": _ts(updated),
            },
            scales={"total": 2},
        )
        c.order += k
        m = len(all_order)
        kinds = np.array([b"sale", b"return", b"cancellation"])
        lines = Table(
            "order_lines",
            {
                "id": np.arange(c.line + 1, c.line + m + 1, dtype=np.int64),
                "order_id": order_ids[all_order],
                "line_no": _rank_within(all_order) + 1,
                "product_id": all_product + 1,
                "sku": _padded(b"SKU", all_product + 1, 8),
                "kind": kinds[all_kind],
                "quantity": all_qty,
                "unit_price": all_price,
            },
            scales={"unit_price": 2},
        )
        c.line += m
        return orders, lines

    # --- events --------------------------------------------------------------------------------
    def _events(self) -> Table:
        shop, rng, end, n = self.shop, self.rng, self.end, self.n
        counts = self.order_counts
        # One purchase event per order that was not cancelled.
        bought = np.flatnonzero(~self.order_cancelled)
        p_cust = self.order_customer[bought]
        p_time = self.order_placed[bought]
        p_key = _join(b"syn-purchase-", self.order_external[bought])
        p_props = _join(b'{"order_id": "', self.order_external[bought], b'"}')

        # Browsing: views, add-to-cart and searches, weighted towards active customers, many of
        # them in the hours before an order and about its products.
        e = self.n_browse
        weight = counts + 0.5
        cust = rng.choice(n, size=e, p=weight / weight.sum()) if e else np.zeros(0, dtype=np.int64)
        kind = rng.choice(3, size=e, p=[0.78, 0.10, 0.12])  # 0 view, 1 add_to_cart, 2 search
        cart = kind == 1
        anchored = (counts[cust] > 0) & (rng.random(e) < np.where(cart, 0.85, 0.6))
        which = self.first_order[cust] + (rng.random(e) * counts[cust]).astype(np.int64)
        which = np.where(anchored, which, 0)
        lead = rng.exponential(np.where(cart, 40 * US_PER_MINUTE, 3 * US_PER_HOUR), e).astype(np.int64)
        anchored_time = self.order_placed[which] - lead if len(self.order_placed) else np.zeros(e, np.int64)
        lo = self._local_hours(self.window_start[cust], self.offset[cust])
        hi = lo + np.minimum(self.alive_days[cust] + 30, (end - self.window_start[cust]) / US_PER_DAY) * 24
        free_time = self._from_local_hours(shop.season.sample(lo, hi, rng.random(e)), self.offset[cust])
        # Browsing before a customer's first known moment (an anonymous visitor then) is moved
        # into the gap before the order, rather than piled up on the signup instant.
        early = anchored & (anchored_time < self.window_start[cust])
        gap = (
            np.maximum(self.order_placed[which] - self.window_start[cust], 0) if len(self.order_placed) else 0
        )
        anchored_time = np.where(
            early, self.window_start[cust] + (rng.random(e) * gap).astype(np.int64), anchored_time
        )
        when = np.clip(np.where(anchored, anchored_time, free_time), self.window_start[cust], end - 1)

        favourite = self.favourites[cust, rng.integers(0, 2, e)]
        leaf = np.where(rng.random(e) < self.cfg.category_affinity, favourite, -1)
        product = shop.sample_products(rng, leaf)
        from_order = anchored & (rng.random(e) < np.where(cart, 0.8, 0.5)) & (kind != 2)
        if from_order.any():
            o = which[from_order]
            line = self.sale_first[o] + (rng.random(len(o)) * self.sale_count[o]).astype(np.int64)
            product[from_order] = self.sale_line_product[line]
        quantity = np.where(cart, 1 + (rng.random(e) < 0.2), 1).astype(np.int64)
        # Search queries name what the customer is after: a product noun, with a colour, or a category.
        query_leaf = np.where(rng.random(e) < 0.7, favourite, rng.choice(len(shop.leaf_p), e, p=shop.leaf_p))
        noun = _pick(rng, shop._noun_off, shop._noun_cnt, query_leaf)
        style = rng.random(e)
        query = np.where(
            style < 0.6,
            shop._nouns[noun],
            np.where(
                style < 0.85,
                _join(shop._colours[rng.integers(0, len(COLOURS), e)], b" ", shop._nouns[noun]),
                np.strings.lower(shop._leaf_names[query_leaf]),
            ),
        )
        search = kind == 2
        b_props = np.where(search, _join(b'{"query": "', query, b'"}'), b"{}")
        b_value = np.where(cart, shop.price_cents[product] * quantity, 0)
        c = self.counters
        b_key = _padded(b"syn-event-", np.arange(c.browse + 1, c.browse + e + 1), 12)
        c.browse += e

        types = np.array([b"view", b"add_to_cart", b"search", b"purchase"])
        all_cust = np.r_[cust, p_cust]
        all_time = np.r_[when, p_time]
        all_type = np.r_[kind, np.full(len(bought), 3)]
        all_product = np.r_[product, np.zeros(len(bought), dtype=np.int64)]
        product_null = np.r_[search, np.ones(len(bought), dtype=bool)]
        all_qty = np.r_[quantity, self.order_units[bought]]
        all_value = np.r_[b_value, self.order_gross[bought]]
        value_null = np.r_[~cart, np.zeros(len(bought), dtype=bool)]
        all_props = np.r_[b_props, p_props]
        all_key = np.r_[b_key, p_key]
        order = np.lexsort((all_key, all_time, all_cust))
        m = len(order)
        received = np.minimum(
            all_time[order] + rng.exponential(2 * US_PER_SECOND, m).astype(np.int64), end - 1
        )
        events = Table(
            "events",
            {
                "id": np.arange(c.event + 1, c.event + m + 1, dtype=np.int64),
                "customer_id": self.lo + 1 + all_cust[order],
                "type": types[all_type[order]],
                "name": np.full(m, b"", dtype="S1"),
                "product_id": all_product[order] + 1,
                "quantity": all_qty[order],
                "value": all_value[order],
                "properties": all_props[order],
                "occurred_at": _ts(all_time[order]),
                "received_at": _ts(np.maximum(received, all_time[order])),
                "idempotency_key": all_key[order],
                "payload_hash": np.full(m, b"", dtype="S1"),
            },
            nulls={"product_id": product_null[order], "value": value_null[order]},
            scales={"value": 2},
        )
        c.event += m
        return events
