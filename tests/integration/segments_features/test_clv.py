"""Churn and lifetime value through the Django path on the CDNOW sample loaded as orders."""

from __future__ import annotations

import numpy as np
import pytest

from segments.analytics import build_customer_summary
from segments.features import services
from segments.features.models import AnalyticsRun
from segments.models import CustomerFeatures
from tests.integration.segments_features.conftest import CDNOW_CALIBRATION_END, cdnow_transactions

pytestmark = pytest.mark.django_db


def test_sql_purchase_summary_equals_the_pure_summary(cdnow_orders):
    data = services.load_purchase_summary(as_of=CDNOW_CALIBRATION_END)
    ids, dates, amounts = cdnow_transactions()
    pure = build_customer_summary(
        ids, dates, amounts, observation_end=np.datetime64("1997-09-30"), time_unit="days"
    )
    by_pk = {pk: sample for sample, pk in cdnow_orders.items()}
    np.testing.assert_array_equal([by_pk[int(pk)] for pk in data["customer_ids"]], pure.customer_ids)
    np.testing.assert_array_equal(data["frequency"], pure.frequency)
    np.testing.assert_allclose(data["recency_days"], pure.recency)
    np.testing.assert_allclose(data["age_days"], pure.age)
    np.testing.assert_allclose(data["mean_repeat_spend"], pure.mean_repeat_spend, rtol=1e-9, atol=1e-9)


def test_cdnow_fit_reproduces_the_published_parameters(cdnow_orders):
    services.compute_features(as_of=CDNOW_CALIBRATION_END)
    run = services.compute_clv(as_of=CDNOW_CALIBRATION_END)

    assert run.state == AnalyticsRun.State.SUCCEEDED, run.error
    fit = run.summary["bgnbd"]
    # Fader, Hardie and Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4.
    assert fit["r"] == pytest.approx(0.243, abs=5e-4)
    assert fit["alpha"] == pytest.approx(4.414, abs=5e-3)
    assert fit["a"] == pytest.approx(0.793, abs=5e-4)
    assert fit["b"] == pytest.approx(2.426, abs=5e-3)
    assert fit["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    spend = run.summary["gamma_gamma"]
    # Fader and Hardie (2013) on the 946 repeat customers: p = 6.25, q = 3.74, v = 15.44.
    assert spend["customers"] == 946
    assert (spend["p"], spend["q"], spend["v"]) == pytest.approx((6.25, 3.74, 15.44), abs=0.01)
    assert run.customers == 2357 == run.summary["customers"]

    rows = CustomerFeatures.objects.filter(customer_id__in=cdnow_orders.values())
    assert rows.filter(p_alive__isnull=True).count() == 0
    for f in rows[:200]:
        assert 0 <= f.p_alive <= 1 and f.churn_probability == pytest.approx(1 - f.p_alive)
        assert f.expected_purchases_90d >= 0 and f.predicted_clv >= 0
    summary = services.load_purchase_summary(as_of=CDNOW_CALIBRATION_END)
    one_time = summary["customer_ids"][summary["frequency"] == 0]
    # Customers who never came back have P(alive) = 1 in BG/NBD (they have not had the chance to
    # leave), yet expect fewer purchases the longer ago they joined.
    assert set(rows.filter(customer_id__in=one_time.tolist()).values_list("p_alive", flat=True)) == {1.0}
    # Frequent buyers who went silent are the likely churners.
    assert rows.filter(p_alive__lt=0.1, frequency__gte=4).exists()
    assert run.summary["likely_churned"] == rows.filter(p_alive__lt=0.5).count() > 0
    assert sum(run.summary["clv"]["counts"]) + run.summary["clv"]["overflow"] == 2357


def test_clv_refit_is_idempotent(cdnow_orders):
    services.compute_features(as_of=CDNOW_CALIBRATION_END)
    first = services.compute_clv(as_of=CDNOW_CALIBRATION_END)
    values = list(CustomerFeatures.objects.order_by("customer_id").values_list("p_alive", "predicted_clv"))
    second = services.compute_clv(as_of=CDNOW_CALIBRATION_END)
    assert second.summary["bgnbd"] == first.summary["bgnbd"]
    assert len(values) == 2357 and all(p is not None for p, _ in values)
    assert (
        list(CustomerFeatures.objects.order_by("customer_id").values_list("p_alive", "predicted_clv"))
        == values
    )
