"""Internal consistency: order lines, consent ledger and state, loyalty ledger, lots and balances."""

import numpy as np
import pytest

from core.synthetic import REWARDS, TIERS, SyntheticConfig, collect


@pytest.fixture(scope="module")
def data():
    return collect(
        SyntheticConfig(
            customers=3000, products=400, orders=30_000, seed=21, return_rate=0.05, cancellation_rate=0.02
        )
    )


def test_line_quantities_follow_their_kind(data):
    lines = data["order_lines"].columns
    kind, quantity = lines["kind"], lines["quantity"]
    assert (quantity[kind == b"sale"] > 0).all()
    assert (quantity[kind != b"sale"] < 0).all()
    assert set(np.unique(kind).tolist()) == {b"sale", b"return", b"cancellation"}
    assert (lines["unit_price"] >= 0).all()


def test_line_numbers_run_from_one_with_sales_first(data):
    lines = data["order_lines"].columns
    order, line_no, kind = lines["order_id"], lines["line_no"], lines["kind"]
    starts = np.r_[True, order[1:] != order[:-1]]
    assert (line_no[starts] == 1).all()
    assert (np.diff(line_no)[~starts[1:]] == 1).all()
    after_sale = (kind[1:] == b"sale") & (kind[:-1] != b"sale") & ~starts[1:]
    assert not after_sale.any(), "a sale line follows a return within an order"


def test_returns_never_exceed_what_was_sold(data):
    lines = data["order_lines"].columns
    key = lines["order_id"] * 10**7 + lines["product_id"]
    net = {}
    for k, q in zip(key.tolist(), lines["quantity"].tolist(), strict=True):
        net[k] = net.get(k, 0) + q
    assert min(net.values()) >= 0


def test_order_totals_are_the_sum_of_their_lines(data):
    orders, lines = data["orders"].columns, data["order_lines"].columns
    amounts = np.bincount(
        lines["order_id"],
        weights=(lines["quantity"] * lines["unit_price"]).astype(float),
        minlength=len(orders["id"]) + 1,
    )[1:]
    assert np.array_equal(np.rint(amounts).astype(np.int64), orders["total"])


def test_cancelled_and_returned_orders(data):
    orders, lines = data["orders"].columns, data["order_lines"].columns
    status = orders["status"]
    cancelled = orders["id"][status == b"cancelled"]
    assert len(cancelled) > 0
    assert (orders["total"][status == b"cancelled"] == 0).all()
    with_cancellation = np.unique(lines["order_id"][lines["kind"] == b"cancellation"])
    assert np.array_equal(with_cancellation, cancelled)
    returned = orders["id"][status == b"returned"]
    assert len(returned) > 0 and (orders["total"][status == b"returned"] == 0).all()
    sale_lines = lines["kind"] == b"sale"
    return_share = (lines["kind"] == b"return").sum() / sale_lines.sum()
    assert 0.035 < return_share < 0.065  # configured 5% of sale lines in orders that were not cancelled


def test_one_purchase_event_per_order_that_went_through(data):
    orders, events, lines = data["orders"].columns, data["events"].columns, data["order_lines"].columns
    purchase = events["type"] == b"purchase"
    kept = orders["status"] != b"cancelled"
    assert purchase.sum() == kept.sum()
    keys = np.char.add(b"syn-purchase-", orders["external_id"][kept])
    assert np.array_equal(np.sort(events["idempotency_key"][purchase]), np.sort(keys))
    by_key = dict(
        zip(events["idempotency_key"][purchase].tolist(), events["value"][purchase].tolist(), strict=True)
    )
    sale = lines["kind"] == b"sale"
    gross = np.bincount(
        lines["order_id"][sale], weights=(lines["quantity"] * lines["unit_price"])[sale].astype(float)
    ).round()
    for order_id, key in zip(orders["id"][kept][:500].tolist(), keys[:500].tolist(), strict=True):
        assert by_key[key] == gross[order_id]
    assert data["events"].is_null("product_id")[purchase].all()


def test_browsing_leads_to_purchases(data):
    """Views and carts mostly concern products the customer then buys: the recommender's signal."""
    events, orders, lines = data["events"].columns, data["orders"].columns, data["order_lines"].columns
    bought = set(
        zip(
            orders["customer_id"][lines["order_id"] - 1].tolist(),
            lines["product_id"].tolist(),
            strict=True,
        )
    )
    cart = events["type"] == b"add_to_cart"
    pairs = zip(events["customer_id"][cart].tolist(), events["product_id"][cart].tolist(), strict=True)
    share = np.mean([pair in bought for pair in pairs])
    assert share > 0.5
    searches = events["properties"][events["type"] == b"search"]
    assert all(s.startswith(b'{"query": "') for s in searches.tolist())


STATUS_AFTER = {
    b"granted": b"granted",
    b"confirmed": b"granted",
    b"withdrawn": b"withdrawn",
    b"requested": b"pending",
}


def test_consent_state_is_the_latest_ledger_entry(data):
    records, states = data["consent_records"].columns, data["consents"].columns
    latest = {}
    for customer, channel, action, when, source in zip(
        records["customer_id"].tolist(),
        records["channel"].tolist(),
        records["action"].tolist(),
        records["occurred_at"].tolist(),
        records["source"].tolist(),
        strict=True,
    ):
        key = (customer, channel)
        assert key not in latest or latest[key][1] <= when, "ledger out of time order"
        latest[key] = (action, when, source)
    assert len(latest) == len(states["id"])
    for customer, channel, status, changed, source in zip(
        states["customer_id"].tolist(),
        states["channel"].tolist(),
        states["status"].tolist(),
        states["changed_at"].tolist(),
        states["source"].tolist(),
        strict=True,
    ):
        action, when, last_source = latest[(customer, channel)]
        assert status == STATUS_AFTER[action] and changed == when and source == last_source


def test_consent_mix_is_plausible(data):
    states = data["consents"].columns
    email = states["channel"] == b"email"
    n = len(data["customers"])
    granted = (email & (states["status"] == b"granted")).sum() / n
    assert 0.65 < granted < 0.85
    assert (email & (states["status"] == b"withdrawn")).sum() > 0
    assert (email & (states["status"] == b"pending")).sum() > 0
    push = (states["channel"] == b"push").sum() / n
    assert 0.15 < push < 0.3
    records = data["consent_records"].columns
    confirmed = set(records["customer_id"][records["action"] == b"confirmed"].tolist())
    requested = set(records["customer_id"][records["action"] == b"requested"].tolist())
    assert confirmed and confirmed <= requested
    german = data["customers"].columns["locale"] == b"de-DE"
    german_ids = set(data["customers"].columns["id"][german].tolist())
    opted_in = set(
        records["customer_id"][(records["action"] == b"granted") & (records["channel"] == b"email")].tolist()
    )
    # Double opt-in is the rule in Germany: no direct grant from a form or checkout there.
    crm = set(records["customer_id"][records["source"] == b"crm_import"].tolist())
    assert not (german_ids & opted_in) - crm


def test_push_subscriptions_follow_push_consent(data):
    subs, states = data["push_subscriptions"].columns, data["consents"].columns
    push = states["channel"] == b"push"
    status = dict(zip(states["customer_id"][push].tolist(), states["status"][push].tolist(), strict=True))
    assert len(subs["id"]) == len(status)
    for customer, active in zip(subs["customer_id"].tolist(), subs["active"].tolist(), strict=True):
        assert active == (status[customer] == b"granted")
    assert np.char.startswith(subs["endpoint"], b"https://push.example.com/").all()


def test_loyalty_balances_equal_their_ledgers(data):
    members, points = data["memberships"].columns, data["points_transactions"].columns
    m = len(members["id"])
    ledger = np.bincount(points["membership_id"], weights=points["points"], minlength=m + 1)[1:]
    assert np.array_equal(ledger.astype(np.int64), members["balance"])
    earned = np.where(points["kind"] == b"earn", points["points"], 0)
    assert np.array_equal(
        np.bincount(points["membership_id"], weights=earned, minlength=m + 1)[1:], members["lifetime_points"]
    )
    assert (members["balance"] >= 0).all()
    # balance_after is the running sum in ledger order.
    order = np.lexsort((points["id"], points["membership_id"]))
    running = {}
    for member, delta, after in zip(
        points["membership_id"][order].tolist(),
        points["points"][order].tolist(),
        points["balance_after"][order].tolist(),
        strict=True,
    ):
        running[member] = running.get(member, 0) + delta
        assert running[member] == after and after >= 0


def test_ledger_entries_follow_the_program_rules(data):
    points, members = data["points_transactions"].columns, data["memberships"].columns
    earn = points["kind"] == b"earn"
    assert (points["points"][earn] > 0).all() and (points["points"][~earn] < 0).all()
    costs = {r[1] for r in REWARDS}
    assert set((-points["points"][~earn]).tolist()) <= costs
    # Earnings: order total in pounds times a tier multiplier between 1 and 2, rounded down.
    orders = data["orders"].columns
    total = dict(zip(orders["external_id"].tolist(), orders["total"].tolist(), strict=True))
    for source, earned in zip(
        points["source_id"][earn][:2000].tolist(), points["points"][earn][:2000].tolist(), strict=True
    ):
        assert total[source] // 100 <= earned <= total[source] * 2 // 100
    thresholds = np.array([t[1] for t in TIERS])
    expected_tier = np.searchsorted(thresholds, members["lifetime_points"], side="right")
    assert np.array_equal(expected_tier, members["tier_id"])
    assert (points["expires_at"][earn] > points["occurred_at"][earn]).all()
    assert data["points_transactions"].is_null("expires_at")[~earn].all()


def test_lots_hold_what_redemptions_left(data):
    lots, members, points = (
        data["points_lots"].columns,
        data["memberships"].columns,
        data["points_transactions"].columns,
    )
    m = len(members["id"])
    remaining = np.bincount(lots["membership_id"], weights=lots["remaining"], minlength=m + 1)[1:]
    assert np.array_equal(remaining.astype(np.int64), members["balance"])
    earned = dict(zip(points["id"].tolist(), points["points"].tolist(), strict=True))
    assert all(
        0 <= r <= earned[e]
        for r, e in zip(lots["remaining"].tolist(), lots["earned_by_id"].tolist(), strict=True)
    )
    kinds = dict(zip(points["id"].tolist(), points["kind"].tolist(), strict=True))
    assert all(kinds[e] == b"earn" for e in lots["earned_by_id"].tolist())
    assert len(lots["id"]) == (points["kind"] == b"earn").sum()


def test_redemptions_match_their_transactions(data):
    redemptions, points = data["redemptions"].columns, data["points_transactions"].columns
    assert len(redemptions["id"]) > 0
    by_id = {
        i: (k, p, m)
        for i, k, p, m in zip(
            points["id"].tolist(),
            points["kind"].tolist(),
            points["points"].tolist(),
            points["membership_id"].tolist(),
            strict=True,
        )
    }
    cost = {i + 1: r[1] for i, r in enumerate(REWARDS)}
    for txn, reward, member in zip(
        redemptions["transaction_id"].tolist(),
        redemptions["reward_id"].tolist(),
        redemptions["membership_id"].tolist(),
        strict=True,
    ):
        kind, delta, owner = by_id[txn]
        assert kind == b"redeem" and delta == -cost[reward] and owner == member
    assert len(np.unique(redemptions["transaction_id"])) == len(redemptions["transaction_id"])


def test_members_earn_only_from_orders_placed_after_joining(data):
    members, points, orders = (
        data["memberships"].columns,
        data["points_transactions"].columns,
        data["orders"].columns,
    )
    joined = dict(zip(members["id"].tolist(), members["joined_at"].tolist(), strict=True))
    customer = dict(zip(members["id"].tolist(), members["customer_id"].tolist(), strict=True))
    placed = dict(
        zip(
            orders["external_id"].tolist(),
            zip(orders["placed_at"].tolist(), orders["customer_id"].tolist(), strict=True),
            strict=True,
        )
    )
    earn = points["kind"] == b"earn"
    for member, source in zip(
        points["membership_id"][earn].tolist(), points["source_id"][earn].tolist(), strict=True
    ):
        when, who = placed[source]
        assert who == customer[member] and when >= joined[member]
