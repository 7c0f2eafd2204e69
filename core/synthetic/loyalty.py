"""The loyalty program and each member's ledger, replayed from their orders by the program's rules."""

from __future__ import annotations

import numpy as np

from core.synthetic.config import (
    NON_BUYER_JOIN_RATE,
    POINTS_EXPIRY_DAYS,
    REDEEM_PROBABILITY,
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    SyntheticConfig,
)
from core.synthetic.tables import Table, _digits, _join, _padded, _rank_within, _ts, _words
from core.synthetic.vocabulary import REWARDS, TIERS


def program_tables(cfg: SyntheticConfig, program_launch_us: int) -> list[Table]:
    """The loyalty program, its tiers and rewards (launched a month before its first points)."""
    launched = program_launch_us - 30 * US_PER_DAY
    one = np.ones(1, dtype=np.int64)
    program = Table(
        "loyalty_programs",
        {
            "id": one,
            "name": _words(["Reachly Rewards"]),
            "slug": _words(["rewards"]),
            "currency": _words([cfg.currency]),
            "points_per_currency_unit": np.array([1000], dtype=np.int64),
            "event_points": _words(["{}"]),
            "points_expiry_days": np.array([POINTS_EXPIRY_DAYS], dtype=np.int64),
            "allow_negative_balance": np.zeros(1, dtype=bool),
            "active": np.ones(1, dtype=bool),
            "created_at": _ts(np.array([launched])),
            "updated_at": _ts(np.array([launched])),
        },
        scales={"points_per_currency_unit": 3},
    )
    n_tiers = len(TIERS)
    tiers = Table(
        "tiers",
        {
            "id": np.arange(1, n_tiers + 1, dtype=np.int64),
            "program_id": np.ones(n_tiers, dtype=np.int64),
            "name": _words([t[0] for t in TIERS]),
            "threshold": np.array([t[1] for t in TIERS], dtype=np.int64),
            "benefits": _words([t[3] for t in TIERS]),
            "multiplier": np.array([t[2] for t in TIERS], dtype=np.int64),
        },
        scales={"multiplier": 2},
    )
    n_rewards = len(REWARDS)
    minimum = np.array([-1 if r[2] is None else r[2] + 1 for r in REWARDS], dtype=np.int64)
    rewards = Table(
        "rewards",
        {
            "id": np.arange(1, n_rewards + 1, dtype=np.int64),
            "program_id": np.ones(n_rewards, dtype=np.int64),
            "name": _words([r[0] for r in REWARDS]),
            "description": _words([r[3] for r in REWARDS]),
            "cost_points": np.array([r[1] for r in REWARDS], dtype=np.int64),
            "minimum_tier_id": minimum,
            "active": np.ones(n_rewards, dtype=bool),
            "created_at": _ts(np.full(n_rewards, launched)),
            "updated_at": _ts(np.full(n_rewards, launched)),
        },
        nulls={"minimum_tier_id": minimum < 0},
    )
    return [program, tiers, rewards]


class _LoyaltySteps:
    """A batch's memberships, points ledger, FIFO lots and redemptions (reads the batch's orders)."""

    def _loyalty(self) -> tuple[Table, Table, Table, Table]:
        """Replay the program's rules over each member's orders, in order.

        Points depend on the tier reached so far and redemptions on the balance at the time, so
        the ledger is built step by step: step k handles every member's k-th order at once.
        The program launched `POINTS_EXPIRY_DAYS` before the end of the history, so no points
        earned in the window have expired yet and the ledger needs no expiry entries.
        """
        rng, end, launch, n = self.rng, self.end, self.shop.program_launch_us, self.n
        cfg = self.cfg
        eligible = ~self.order_cancelled & (self.order_placed >= launch)
        o_cust = self.order_customer[eligible]
        has_eligible = np.bincount(o_cust, minlength=n) > 0
        joins = has_eligible & (rng.random(n) < cfg.loyalty_join_rate)
        browsers = ~has_eligible & (rng.random(n) < NON_BUYER_JOIN_RATE)
        member_of = np.full(n, -1, dtype=np.int64)
        members = np.flatnonzero(joins | browsers)
        member_of[members] = np.arange(len(members))
        n_members = len(members)

        first_eligible = np.full(n, end, dtype=np.int64)
        np.minimum.at(first_eligible, o_cust, self.order_placed[eligible])
        joined = np.where(
            joins[members],
            np.maximum(first_eligible[members] - US_PER_MINUTE, self.created[members]),
            np.minimum(
                np.maximum(self.created[members], launch)
                + (rng.random(n_members) * 30 * US_PER_DAY).astype(np.int64),
                end - 1,
            ),
        )

        take = eligible & (member_of[self.order_customer] >= 0)
        m_of = member_of[self.order_customer[take]]
        t_of = self.order_placed[take]
        v_of = self.order_total[take]
        ext_of = self.order_external[take]
        next_t = np.r_[t_of[1:], end]
        next_t = np.where(np.r_[m_of[1:] == m_of[:-1], False], next_t, end)
        step = _rank_within(m_of)

        thresholds = np.array([t[1] for t in TIERS], dtype=np.int64)
        multipliers = np.array([t[2] for t in TIERS], dtype=np.int64)
        costs = np.array([r[1] for r in REWARDS], dtype=np.int64)
        minimum_tier = np.array([-1 if r[2] is None else r[2] for r in REWARDS], dtype=np.int64)
        reward_names = _words([r[0] for r in REWARDS])

        balance = np.zeros(n_members, dtype=np.int64)
        lifetime = np.zeros(n_members, dtype=np.int64)
        tier = np.zeros(n_members, dtype=np.int64)
        tier_changed = joined.copy()
        earn_parts, redeem_parts = [], []
        by_step = np.argsort(step, kind="stable")
        bounds = np.searchsorted(step[by_step], np.arange((step.max() + 2) if len(step) else 1))
        for k in range(len(bounds) - 1):
            rows = by_step[bounds[k] : bounds[k + 1]]
            mem = m_of[rows]
            points = v_of[rows] * multipliers[tier[mem]] // 10_000  # pounds x multiplier, rounded down
            earn = points > 0
            rows, mem, points = rows[earn], mem[earn], points[earn]
            balance[mem] += points
            lifetime[mem] += points
            earn_parts.append((mem, points, balance[mem].copy(), t_of[rows], rows, np.full(len(mem), k)))
            reached = np.searchsorted(thresholds, lifetime[mem], side="right") - 1
            up = reached > tier[mem]
            tier_changed[mem[up]] = t_of[rows[up]]
            tier[mem[up]] = reached[up]
            # Sometimes a member spends points soon after, before their next order.
            allowed = (costs[None, :] <= balance[mem][:, None]) & (
                minimum_tier[None, :] <= tier[mem][:, None]
            )
            wants = (rng.random(len(mem)) < REDEEM_PROBABILITY) & allowed.any(axis=1)
            if wants.any():
                choice = np.argmax(
                    np.where(allowed[wants], rng.random((wants.sum(), len(costs))), -1), axis=1
                )
                who, when_rows = mem[wants], rows[wants]
                gap = next_t[when_rows] - t_of[when_rows]
                delay = np.minimum(rng.uniform(US_PER_HOUR, 10 * US_PER_DAY, len(who)), gap / 2).astype(
                    np.int64
                )
                balance[who] -= costs[choice]
                redeem_parts.append(
                    (
                        who,
                        -costs[choice],
                        balance[who].copy(),
                        t_of[when_rows] + np.maximum(delay, 1),
                        choice,
                        np.full(len(who), k),
                    )
                )

        def stack(parts, i, dtype=np.int64):
            return np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=dtype)

        e_mem, e_pts, e_bal, e_time, e_rows, e_step = (stack(earn_parts, i) for i in range(6))
        r_mem, r_pts, r_bal, r_time, r_choice, r_step = (stack(redeem_parts, i) for i in range(6))
        c = self.counters
        r_no = np.arange(c.redemption + 1, c.redemption + len(r_mem) + 1, dtype=np.int64)
        c.redemption += len(r_mem)
        e_ext = ext_of[e_rows]

        membership_ids = np.arange(c.membership + 1, c.membership + n_members + 1, dtype=np.int64)
        c.membership += n_members
        kind = np.r_[np.zeros(len(e_mem), dtype=np.int64), np.ones(len(r_mem), dtype=np.int64)]
        mem = np.r_[e_mem, r_mem]
        when = np.r_[e_time, r_time]
        # Ledger order is the order the rules were applied in: each order's earning, then any redemption.
        order = np.lexsort((kind, np.r_[e_step, r_step], mem))
        t = len(order)
        txn_ids = np.arange(c.points + 1, c.points + t + 1, dtype=np.int64)
        c.points += t
        idem = np.r_[_join(b"order-", e_ext), _padded(b"redeem-", r_no, 10)] if t else np.zeros(0, dtype="S1")
        reason = np.r_[_join(b"Order ", e_ext), _join(b"Reward: ", reward_names[r_choice])] if t else idem
        source_type = np.r_[
            np.full(len(e_mem), b"order", dtype="S6"), np.full(len(r_mem), b"reward", dtype="S6")
        ]
        source_id = np.r_[e_ext, _digits(r_choice + 1)] if t else idem
        expires = when + POINTS_EXPIRY_DAYS * US_PER_DAY
        transactions = Table(
            "points_transactions",
            {
                "id": txn_ids,
                "membership_id": membership_ids[mem[order]],
                "kind": np.array([b"earn", b"redeem"])[kind[order]],
                "points": np.r_[e_pts, r_pts][order],
                "balance_after": np.r_[e_bal, r_bal][order],
                "idempotency_key": idem[order],
                "payload_hash": np.full(t, b"", dtype="S1"),
                "reason": reason[order],
                "source_type": source_type[order],
                "source_id": source_id[order],
                "occurred_at": _ts(when[order]),
                "expires_at": _ts(expires[order]),
                "created_at": _ts(when[order]),
            },
            nulls={"expires_at": kind[order] == 1},
        )
        position = np.empty(t, dtype=np.int64)
        position[order] = np.arange(t)
        earn_txn = txn_ids[position[: len(e_mem)]] if t else np.zeros(0, dtype=np.int64)
        redeem_txn = txn_ids[position[len(e_mem) :]] if t else np.zeros(0, dtype=np.int64)

        # Lots: what is left of each earning once redemptions consumed the oldest points first.
        lot_order = np.lexsort((e_step, e_mem))
        lot_mem, lot_pts = e_mem[lot_order], e_pts[lot_order]
        spent = np.zeros(n_members, dtype=np.int64)
        np.add.at(spent, r_mem, -r_pts)
        running = np.cumsum(lot_pts)
        group_start = (
            np.r_[0, np.flatnonzero(lot_mem[1:] != lot_mem[:-1]) + 1] if len(lot_mem) else np.zeros(0, int)
        )
        group_base = np.repeat(np.r_[0, running][group_start], np.diff(np.r_[group_start, len(lot_mem)]))
        before = running - lot_pts - group_base
        remaining = lot_pts - np.clip(spent[lot_mem] - before, 0, lot_pts)
        n_lots = len(lot_mem)
        lots = Table(
            "points_lots",
            {
                "id": np.arange(c.lot + 1, c.lot + n_lots + 1, dtype=np.int64),
                "membership_id": membership_ids[lot_mem],
                "earned_by_id": earn_txn[lot_order],
                "remaining": remaining,
                "expires_at": _ts(e_time[lot_order] + POINTS_EXPIRY_DAYS * US_PER_DAY),
            },
        )
        c.lot += n_lots

        last_activity = joined.copy()
        np.maximum.at(last_activity, mem, when)
        memberships = Table(
            "memberships",
            {
                "id": membership_ids,
                "program_id": np.ones(n_members, dtype=np.int64),
                "customer_id": self.lo + 1 + members,
                "tier_id": tier + 1,
                "balance": balance,
                "lifetime_points": lifetime,
                "joined_at": _ts(joined),
                "tier_changed_at": _ts(tier_changed),
                "created_at": _ts(joined),
                "updated_at": _ts(last_activity),
            },
        )
        redemptions = Table(
            "redemptions",
            {
                "id": r_no,
                "membership_id": membership_ids[r_mem],
                "reward_id": r_choice + 1,
                "transaction_id": redeem_txn,
                "created_at": _ts(r_time),
            },
        )
        return memberships, transactions, lots, redemptions
