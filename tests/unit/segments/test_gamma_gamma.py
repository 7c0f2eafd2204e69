import numpy as np
import pytest

from segments.analytics.bgnbd import fit_bgnbd
from segments.analytics.errors import CustomerDataError, ModelFitError
from segments.analytics.gamma_gamma import (
    GammaGammaModel,
    _log_likelihood_and_gradient,
    customer_lifetime_value,
    fit_gamma_gamma,
)
from segments.analytics.summary import build_customer_summary

from .conftest import CALIBRATION_END


@pytest.fixture(scope="module")
def spend_fit(cdnow_summary):
    return fit_gamma_gamma(cdnow_summary[:, 1], cdnow_summary[:, 4])


@pytest.fixture(scope="module")
def purchases_fit(cdnow_summary):
    return fit_bgnbd(cdnow_summary[:, 1], cdnow_summary[:, 2], cdnow_summary[:, 3])


def test_cdnow_fit_matches_fader_hardie_2013(spend_fit):
    # "The Gamma-Gamma Model of Monetary Value": p = 6.25, q = 3.74, v = 15.44 on 946 customers.
    assert spend_fit.p == pytest.approx(6.25, abs=5e-3)
    assert spend_fit.q == pytest.approx(3.74, abs=5e-3)
    assert spend_fit.v == pytest.approx(15.44, abs=1e-2)
    assert spend_fit.customers == 946


def test_fit_on_our_own_summary_gives_the_same_answer(cdnow_transactions, spend_fit):
    ids, dates, amounts = cdnow_transactions
    summary = build_customer_summary(ids, dates, amounts, observation_end=CALIBRATION_END)
    own = fit_gamma_gamma(summary.frequency, summary.mean_repeat_spend)
    np.testing.assert_allclose([own.p, own.q, own.v], [spend_fit.p, spend_fit.q, spend_fit.v], rtol=2e-3)


def test_expected_spend_shrinks_towards_the_population_mean(spend_fit):
    population = spend_fit.population_mean_spend
    assert population == pytest.approx(spend_fit.p * spend_fit.v / (spend_fit.q - 1))
    # Customer 1 of CDNOW: two repeat purchases averaging 22.35 -> 24.66 (p (v + x z) / (p x + q - 1)).
    assert float(spend_fit.expected_average_spend(2, 22.35)) == pytest.approx(24.66, abs=0.01)
    # Between own average and the population mean, closer to the own average the more purchases.
    few, many = spend_fit.expected_average_spend([1, 20], [100.0, 100.0])
    assert population < few < many < 100.0
    # No repeat purchase: the population mean.
    assert float(spend_fit.expected_average_spend(0, 0.0)) == pytest.approx(population)


def test_expected_spend_averages_close_to_the_observed_mean(cdnow_summary, spend_fit):
    repeat = cdnow_summary[:, 1] > 0
    expected = spend_fit.expected_average_spend(cdnow_summary[repeat, 1], cdnow_summary[repeat, 4])
    assert expected.mean() == pytest.approx(cdnow_summary[repeat, 4].mean(), rel=0.02)


def test_analytic_gradient_matches_finite_differences():
    x = np.array([1.0, 2.0, 5.0, 30.0])
    z = np.array([10.0, 22.35, 50.0, 3.0])
    theta = np.array([6.0, 3.5, 15.0])
    _, grad = _log_likelihood_and_gradient(theta, x, z)
    for j in range(3):
        step = np.zeros(3)
        step[j] = 1e-6 * theta[j]
        up, _ = _log_likelihood_and_gradient(theta + step, x, z)
        down, _ = _log_likelihood_and_gradient(theta - step, x, z)
        np.testing.assert_allclose(grad[:, j], (up - down) / (2 * step[j]), rtol=1e-5, atol=1e-8)


def test_clv_is_the_discounted_sum_of_monthly_purchases(cdnow_summary, spend_fit, purchases_fit):
    x, t_x, big_t, z = 2, 30.43, 38.86, 22.35
    weeks_per_month = 365.25 / 12 / 7
    spend = float(spend_fit.expected_average_spend(x, z))
    by_hand = 0.0
    for month in range(1, 13):
        in_month = purchases_fit.expected_purchases(month * weeks_per_month, x, t_x, big_t) - (
            purchases_fit.expected_purchases((month - 1) * weeks_per_month, x, t_x, big_t)
        )
        by_hand += 0.3 * spend * float(in_month) / 1.01**month
    clv = customer_lifetime_value(
        purchases_fit,
        spend_fit,
        frequency=x,
        recency=t_x,
        age=big_t,
        mean_repeat_spend=z,
        time_unit="weeks",
        months=12,
        monthly_discount_rate=0.01,
        margin=0.3,
    )
    assert float(clv) == pytest.approx(by_hand, rel=1e-12)


def test_clv_without_discount_is_spend_times_expected_purchases(spend_fit, purchases_fit):
    clv = customer_lifetime_value(
        purchases_fit,
        spend_fit,
        frequency=[0, 2, 7],
        recency=[0, 30.43, 35.0],
        age=[38.86, 38.86, 38.86],
        mean_repeat_spend=[0.0, 22.35, 40.0],
        time_unit="weeks",
        months=6,
        monthly_discount_rate=0.0,
    )
    horizon = 6 * 365.25 / 12 / 7
    expected = spend_fit.expected_average_spend(
        [0, 2, 7], [0.0, 22.35, 40.0]
    ) * purchases_fit.expected_purchases(horizon, [0, 2, 7], [0, 30.43, 35.0], 38.86)
    np.testing.assert_allclose(clv, expected, rtol=1e-10)


def test_clv_does_not_depend_on_the_time_unit(cdnow_transactions):
    ids, dates, amounts = cdnow_transactions
    values = {}
    for unit in ("weeks", "days"):
        summary = build_customer_summary(ids, dates, amounts, observation_end=CALIBRATION_END, time_unit=unit)
        purchases = fit_bgnbd(summary.frequency, summary.recency, summary.age)
        spend = fit_gamma_gamma(summary.frequency, summary.mean_repeat_spend)
        values[unit] = customer_lifetime_value(
            purchases,
            spend,
            frequency=summary.frequency,
            recency=summary.recency,
            age=summary.age,
            mean_repeat_spend=summary.mean_repeat_spend,
            time_unit=unit,
        )
    np.testing.assert_allclose(values["days"], values["weeks"], rtol=1e-3)
    assert np.all(values["weeks"] > 0)


def test_higher_discount_lowers_clv(spend_fit, purchases_fit):
    common = {
        "frequency": [3],
        "recency": [30.0],
        "age": [38.86],
        "mean_repeat_spend": [30.0],
        "time_unit": "weeks",
        "months": 24,
    }
    low = customer_lifetime_value(purchases_fit, spend_fit, monthly_discount_rate=0.0, **common)
    high = customer_lifetime_value(purchases_fit, spend_fit, monthly_discount_rate=0.05, **common)
    assert 0 < high[0] < low[0]


def test_nobody_came_back_is_a_clear_fit_error():
    with pytest.raises(ModelFitError, match="no customer made a repeat purchase"):
        fit_gamma_gamma([0, 0], [0.0, 0.0])


def test_repeat_customers_with_nothing_spent_are_rejected():
    with pytest.raises(CustomerDataError, match="mean repeat spend of 0"):
        fit_gamma_gamma([1, 2, 3], [10.0, 0.0, 5.0])


def test_negative_spend_is_rejected():
    with pytest.raises(CustomerDataError, match="negative"):
        fit_gamma_gamma([1, 2], [10.0, -5.0])


def test_identical_spend_cannot_be_fitted():
    with pytest.raises(ModelFitError, match="differing spend"):
        fit_gamma_gamma([1, 2, 3], [10.0, 10.0, 10.0])


def test_heavy_tailed_spend_has_no_population_mean():
    model = GammaGammaModel(p=2.0, q=0.8, v=10.0, log_likelihood=0.0, customers=0)
    assert model.population_mean_spend == float("inf")
    assert np.isfinite(model.expected_average_spend(3, 20.0))
    with pytest.raises(ModelFitError, match="no finite mean"):
        model.expected_average_spend(0, 0.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"months": 0}, "months"),
        ({"monthly_discount_rate": -1.0}, "discount"),
        ({"margin": -0.1}, "margin"),
        ({"time_unit": "fortnights"}, "unknown time unit"),
    ],
)
def test_bad_clv_options_are_rejected(spend_fit, purchases_fit, options, message):
    arguments = {
        "frequency": [1],
        "recency": [1.0],
        "age": [2.0],
        "mean_repeat_spend": [10.0],
        "time_unit": "weeks",
        **options,
    }
    with pytest.raises(CustomerDataError, match=message):
        customer_lifetime_value(purchases_fit, spend_fit, **arguments)


def test_parameters_of_simulated_spend_are_recovered():
    rng = np.random.default_rng(7)
    purchases = rng.integers(1, 15, 20_000).astype(float)
    nu = rng.gamma(3.5, 1 / 20.0, purchases.size)
    mean_spend = np.array(
        [rng.gamma(6.0, 1 / rate, int(k)).mean() for rate, k in zip(nu, purchases, strict=True)]
    )
    fit = fit_gamma_gamma(purchases, mean_spend)
    # Only customers' means are seen, so p (the spread of single purchases) is weakly identified:
    # the likelihood is flat along p with p v fixed. The heterogeneity q and the mean spend are sharp.
    assert fit.q == pytest.approx(3.5, rel=0.05)
    assert fit.population_mean_spend == pytest.approx(6.0 * 20.0 / 2.5, rel=0.03)
    assert fit.p == pytest.approx(6.0, rel=0.4)
    truth, _ = _log_likelihood_and_gradient(np.array([6.0, 3.5, 20.0]), purchases, mean_spend)
    assert fit.log_likelihood >= truth.sum()
