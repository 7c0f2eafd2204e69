"""The results service's own logic: totals from timelines, verdict wording, the SVG chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from experiments.selectors import ArmTotals, Timeline, totals
from experiments.services.chart import effect_chart
from experiments.services.results import analyze, decisive, overall_verdict

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)


def timeline(key: str, **fields) -> Timeline:
    return Timeline(send_id=1, customer_id=1, arm_key=key, start=fields.pop("start", T0), sent=True, **fields)


def arms() -> list[ArmTotals]:
    return [
        ArmTotals(key="a", name="A", variant_id=1, weight=1),
        ArmTotals(key="b", name="B", variant_id=2, weight=1),
    ]


def test_totals_count_what_happened_by_the_moment_and_orders_inside_the_window_only():
    items = [
        timeline(
            "a",
            first_open=T0 + timedelta(hours=1),
            first_click=T0 + timedelta(hours=30),
            orders=[
                (T0 + timedelta(hours=2), 10.0),
                (T0 + timedelta(hours=40), 5.0),
                (T0 + timedelta(hours=49), 100.0),  # after the window
                (T0 - timedelta(hours=1), 100.0),  # before the message
            ],
        ),
        timeline("b", start=T0 + timedelta(days=3)),  # not sent yet at the first look
        timeline("elsewhere"),
    ]
    at_day_one = totals(items, arms(), window=WINDOW, until=T0 + timedelta(hours=24))
    assert [(a.n, a.opens_human, a.clicks, a.conversions, a.revenue) for a in at_day_one] == [
        (1, 1, 0, 1, 10.0),
        (0, 0, 0, 0, 0.0),
    ]
    final = totals(items, arms(), window=WINDOW)
    a = final[0]
    assert (a.n, a.clicks, a.conversions, a.revenue, a.revenue_squares) == (1, 1, 1, 15.0, 225.0)
    assert final[1].n == 1
    assert a.as_dict()["revenue_per_recipient"] == 15.0 and final[1].as_dict()["click_rate"] == 0.0


def clicks(n_a, c_a, n_b, c_b) -> list[ArmTotals]:
    a, b = arms()
    a.n, a.clicks, b.n, b.clicks = n_a, c_a, n_b, c_b
    return [a, b]


def run(items, **kw):
    options = {
        "metric": "click_rate",
        "method": "frequentist",
        "alpha": 0.05,
        "correction": "none",
        "relative": True,
    }
    options.update(kw)
    return analyze(items, **options)


def test_no_analysis_while_an_arm_is_empty_and_means_need_two_recipients():
    assert run(clicks(100, 10, 0, 0)) is None
    assert overall_verdict(None, final=False, label="click rate").startswith("Not enough data yet")
    a, b = arms()
    a.n, b.n = 1, 5
    assert run([a, b], metric="revenue_per_recipient") is None


def test_verdict_names_the_clear_result_or_says_no_clear_difference_yet():
    clear = run(clicks(2000, 200, 2000, 280))
    assert overall_verdict(clear, final=False, label="click rate").startswith(
        "Variant B raised click rate by 40 % (95 % CI "
    )
    unclear = run(clicks(2000, 200, 2000, 205))
    text = overall_verdict(unclear, final=False, label="click rate")
    assert text.startswith(
        "No clear difference yet. No clear difference in click rate between Variant B and Variant A"
    )
    assert overall_verdict(unclear, final=True, label="click rate").startswith("No clear difference. ")
    broken = run(clicks(2000, 200, 1500, 150), weights=[1, 1])
    assert overall_verdict(broken, final=False, label="click rate").startswith(
        "WARNING - SAMPLE RATIO MISMATCH"
    )


def test_the_absolute_test_decides_when_the_relative_interval_still_touches_zero():
    # The sequential relative interval (delta method) is wider here than the absolute one; the
    # decision rule tests the absolute difference, so the headline must agree with it.
    items = clicks(600, 57, 600, 100)
    absolute = run(items, method="sequential", relative=False)
    relative = run(items, method="sequential", relative=True)
    assert decisive(absolute.comparisons[0].comparison) == 1
    assert decisive(relative.comparisons[0].comparison) == 0
    text = overall_verdict(relative, final=False, label="click rate", absolute=absolute)
    assert text.startswith("Variant B raised click rate by ") and "percentage points" in text
    assert text == absolute.comparisons[0].verdict
    # Without the absolute analysis the relative one speaks for itself (and is unclear).
    assert overall_verdict(relative, final=False, label="click rate").startswith("No clear difference")


def test_decisive_follows_the_interval_or_the_chance_threshold():
    assert decisive(run(clicks(2000, 200, 2000, 280)).comparisons[0].comparison) == 1
    assert decisive(run(clicks(2000, 280, 2000, 200)).comparisons[0].comparison) == -1
    assert decisive(run(clicks(2000, 200, 2000, 205)).comparisons[0].comparison) == 0
    bayes = run(clicks(2000, 200, 2000, 280), method="bayesian").comparisons[0].comparison
    assert bayes.p_value is None and decisive(bayes) == 1


def test_chart_draws_bands_and_lines_and_escapes_names():
    points = [
        {
            "at": (T0 + timedelta(days=d)).isoformat(),
            "comparisons": [
                {"variant": "<script>B</script>", "effect": 0.1, "ci_low": -0.1 + d * 0.05, "ci_high": 0.3}
            ],
        }
        for d in range(4)
    ]
    svg = effect_chart(points, percent=True, title="click <rate>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<polygon" in svg and "<polyline" in svg and svg.count("<circle") == 4
    assert "<script>" not in svg and "&lt;script&gt;B&lt;/script&gt;" in svg
    assert 'aria-label="click &lt;rate&gt;"' in svg
    empty = effect_chart([], percent=True)
    assert "Not enough data" in empty


def test_vectorised_series_totals_equal_the_plain_totals_at_every_moment():
    import random

    from experiments.selectors import totals_over_time

    rng = random.Random(4)

    def maybe(hours):
        return T0 + timedelta(hours=rng.uniform(0, hours)) if rng.random() < 0.4 else None

    items = []
    for i in range(300):
        start = T0 + timedelta(hours=rng.uniform(0, 72))
        items.append(
            Timeline(
                send_id=i,
                customer_id=i,
                arm_key=rng.choice(["a", "b", "other"]),
                start=start,
                sent=True,
                first_open=maybe(120),
                first_machine_open=maybe(120),
                first_click=maybe(120),
                unsubscribed=maybe(120),
                complained=maybe(120),
                orders=[
                    (start + timedelta(hours=rng.uniform(-10, 60)), round(rng.uniform(-5, 50), 2))
                    for _ in range(rng.randint(0, 3))
                ],
            )
        )
    moments = [T0 + timedelta(hours=h) for h in (0, 13, 24, 50, 80, 200)]
    vectorised = totals_over_time(items, arms(), window=WINDOW, moments=moments)
    for moment, row in zip(moments, vectorised, strict=True):
        plain = totals(items, arms(), window=WINDOW, until=moment)
        for a, b in zip(plain, row, strict=True):
            assert (
                a.n,
                a.opens_human,
                a.opens_machine,
                a.clicks,
                a.unsubscribes,
                a.complaints,
                a.conversions,
            ) == (
                b.n,
                b.opens_human,
                b.opens_machine,
                b.clicks,
                b.unsubscribes,
                b.complaints,
                b.conversions,
            )
            assert a.revenue == pytest.approx(b.revenue) and a.revenue_squares == pytest.approx(
                b.revenue_squares
            )
