import math

import numpy as np
import pytest
from scipy.special import hyp2f1

from segments.analytics.bgnbd import BGNBDModel, _log_likelihood_and_gradient, fit_bgnbd
from segments.analytics.errors import CustomerDataError, ModelFitError
from segments.analytics.summary import build_customer_summary

from .conftest import CALIBRATION_END


@pytest.fixture(scope="module")
def cdnow_fit(cdnow_summary):
    return fit_bgnbd(cdnow_summary[:, 1], cdnow_summary[:, 2], cdnow_summary[:, 3])


def test_cdnow_fit_matches_fader_hardie_lee_2005(cdnow_fit):
    # Table 1 of FHL (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4.
    assert cdnow_fit.r == pytest.approx(0.243, abs=5e-4)
    assert cdnow_fit.alpha == pytest.approx(4.414, abs=5e-3)
    assert cdnow_fit.a == pytest.approx(0.793, abs=5e-4)
    assert cdnow_fit.b == pytest.approx(2.426, abs=5e-3)
    assert cdnow_fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert cdnow_fit.customers == 2357


def test_published_conditional_expectation_for_customer_one(cdnow_fit):
    # Fader & Hardie's note on implementing BG/NBD: x = 2, t_x = 30.43, T = 38.86 expects 1.226
    # purchases in the next 39 weeks.
    assert float(cdnow_fit.expected_purchases(39, 2, 30.43, 38.86)) == pytest.approx(1.226, abs=5e-4)


def test_fit_on_our_own_summary_gives_the_same_answer(cdnow_transactions, cdnow_fit):
    ids, dates, amounts = cdnow_transactions
    summary = build_customer_summary(ids, dates, amounts, observation_end=CALIBRATION_END, time_unit="weeks")
    own = fit_bgnbd(summary.frequency, summary.recency, summary.age)
    np.testing.assert_allclose([own.r, own.alpha, own.a, own.b], [0.243, 4.414, 0.793, 2.426], atol=5e-3)
    assert own.log_likelihood == pytest.approx(cdnow_fit.log_likelihood, abs=0.5)


def test_time_unit_changes_only_the_scale_alpha(cdnow_transactions):
    ids, dates, amounts = cdnow_transactions
    weeks = build_customer_summary(ids, dates, amounts, observation_end=CALIBRATION_END, time_unit="weeks")
    days = build_customer_summary(ids, dates, amounts, observation_end=CALIBRATION_END, time_unit="days")
    in_weeks = fit_bgnbd(weeks.frequency, weeks.recency, weeks.age)
    in_days = fit_bgnbd(days.frequency, days.recency, days.age)
    np.testing.assert_allclose(
        [in_days.r, in_days.alpha / 7, in_days.a, in_days.b],
        [in_weeks.r, in_weeks.alpha, in_weeks.a, in_weeks.b],
        rtol=1e-4,
    )
    # The likelihood is a density in time for each repeat purchase: it shifts by log 7 per purchase.
    shift = math.log(7) * weeks.frequency.sum()
    assert in_days.log_likelihood == pytest.approx(in_weeks.log_likelihood - shift, abs=1e-3)
    assert float(in_days.expected_purchases(273, 2, 213, 272)) == pytest.approx(
        float(in_weeks.expected_purchases(39, 2, 213 / 7, 272 / 7)), rel=1e-4
    )


def test_predictions_track_the_holdout_period(cdnow_transactions, cdnow_summary, cdnow_fit):
    ids, dates, _ = cdnow_transactions
    holdout = dates > CALIBRATION_END  # 1997-10-01 to 1998-06-30: 39 weeks
    purchase_days = np.unique(np.column_stack([ids[holdout], dates[holdout].astype(np.int64)]), axis=0)
    actual = np.bincount(purchase_days[:, 0], minlength=2358)[1:]
    x, t_x, big_t = cdnow_summary[:, 1], cdnow_summary[:, 2], cdnow_summary[:, 3]
    predicted = cdnow_fit.expected_purchases(39, x, t_x, big_t)

    assert actual.sum() == 1882
    # The fitted model forecasts 1653 repeat purchase days for the 39 holdout weeks; 1882 happened.
    assert predicted.sum() == pytest.approx(actual.sum(), rel=0.15)
    by_frequency = [predicted[x == k].mean() for k in range(7)]
    assert np.all(np.diff(by_frequency) > 0)

    # Cumulative repeat purchases of the cohort, the model's aggregate forecast:
    # in the calibration period and to the end of the holdout.
    assert cdnow_fit.expected_purchases_of_new_customer(big_t).sum() == pytest.approx(x.sum(), rel=0.03)
    assert cdnow_fit.expected_purchases_of_new_customer(big_t + 39).sum() == pytest.approx(
        x.sum() + actual.sum(), rel=0.05
    )


def test_probability_alive_behaves_as_the_model_says(cdnow_fit):
    model = cdnow_fit
    # No repeat purchase: the customer has had no chance to leave.
    np.testing.assert_array_equal(model.probability_alive([0, 0], [0, 0], [1, 38]), [1.0, 1.0])
    # A frequent buyer gone quiet is more likely gone than an occasional one with the same silence.
    assert model.probability_alive(10, 20, 38) < model.probability_alive(2, 20, 38)
    # The longer the silence since the last purchase, the lower P(alive).
    silence = model.probability_alive(3, 10, np.array([10, 20, 30, 40]))
    assert np.all(np.diff(silence) < 0)
    churn = model.churn_probability([0, 2, 5], [0, 30.43, 5], [38.86, 38.86, 38.86])
    np.testing.assert_allclose(churn, 1 - model.probability_alive([0, 2, 5], [0, 30.43, 5], [38.86] * 3))
    assert churn[2] > 0.9


def _expected_purchases_by_series(model, t, x, t_x, big_t):
    """FHL (2005) conditional expectation as printed, with the 2F1 summed term by term in Python floats."""
    a_, b_, c_ = model.r + x, model.b + x, model.a + model.b + x - 1
    z = t / (model.alpha + big_t + t)
    term, total, n = 1.0, 1.0, 0
    while term > 1e-17 * total:
        term *= (a_ + n) * (b_ + n) / ((c_ + n) * (n + 1)) * z
        total += term
        n += 1
    bracket = 1 - ((model.alpha + big_t) / (model.alpha + big_t + t)) ** (model.r + x) * total
    alive = 1.0
    if x > 0:
        alive = 1 / (
            1 + model.a / (model.b + x - 1) * ((model.alpha + big_t) / (model.alpha + t_x)) ** (model.r + x)
        )
    return (model.a + model.b + x - 1) / (model.a - 1) * bracket * alive


@pytest.mark.parametrize("x", [0, 1, 2, 10, 60, 150])
def test_conditional_expectation_is_accurate_for_frequent_buyers(cdnow_fit, x):
    big_t = 38.86
    t_x = 0.0 if x == 0 else 35.0
    expected = _expected_purchases_by_series(cdnow_fit, 39.0, x, t_x, big_t)
    assert float(cdnow_fit.expected_purchases(39.0, x, t_x, big_t)) == pytest.approx(expected, rel=1e-9)


def test_conditional_expectation_matches_the_untransformed_formula(cdnow_fit):
    m = cdnow_fit
    x = np.array([0, 1, 3, 5]).astype(float)
    t_x = np.array([0, 12.0, 20.0, 30.0])
    big_t = np.array([20.0, 30.0, 38.0, 38.86])
    t = np.array([1.0, 13.0, 39.0, 104.0])
    z = t / (m.alpha + big_t + t)
    alive = m.probability_alive(x, t_x, big_t)
    printed = (
        (m.a + m.b + x - 1)
        / (m.a - 1)
        * (
            1
            - ((m.alpha + big_t) / (m.alpha + big_t + t)) ** (m.r + x)
            * hyp2f1(m.r + x, m.b + x, m.a + m.b + x - 1, z)
        )
        * alive
    )
    np.testing.assert_allclose(m.expected_purchases(t, x, t_x, big_t), printed, rtol=1e-10)


def test_new_customer_expectation_is_the_conditional_one_at_time_zero(cdnow_fit):
    horizons = np.array([0.0, 1e-6, 1.0, 39.0, 78.0, 520.0])
    np.testing.assert_allclose(
        cdnow_fit.expected_purchases_of_new_customer(horizons),
        cdnow_fit.expected_purchases(horizons, 0, 0, 0),
        rtol=1e-12,
    )
    assert cdnow_fit.expected_purchases_of_new_customer(0.0) == 0.0
    assert np.all(np.diff(cdnow_fit.expected_purchases_of_new_customer(horizons)) > 0)


def test_a_equal_to_one_uses_the_limit():
    at_one = BGNBDModel(r=0.25, alpha=4.4, a=1.0, b=2.4, log_likelihood=0.0, customers=0)
    near = BGNBDModel(r=0.25, alpha=4.4, a=1.0 + 1e-4, b=2.4, log_likelihood=0.0, customers=0)
    value = float(at_one.expected_purchases(39, 2, 30.43, 38.86))
    assert np.isfinite(value)
    assert value == pytest.approx(float(near.expected_purchases(39, 2, 30.43, 38.86)), rel=1e-4)


def test_analytic_gradient_matches_finite_differences():
    x = np.array([0.0, 1.0, 2.0, 7.0, 30.0])
    t_x = np.array([0.0, 3.0, 30.43, 20.0, 38.0])
    big_t = np.array([5.0, 38.86, 38.86, 30.0, 39.0])
    theta = np.array([0.4, 3.0, 0.8, 2.5])
    _, grad = _log_likelihood_and_gradient(theta, x, t_x, big_t)
    for j in range(4):
        step = np.zeros(4)
        step[j] = 1e-6 * theta[j]
        up, _ = _log_likelihood_and_gradient(theta + step, x, t_x, big_t)
        down, _ = _log_likelihood_and_gradient(theta - step, x, t_x, big_t)
        np.testing.assert_allclose(grad[:, j], (up - down) / (2 * step[j]), rtol=1e-5, atol=1e-8)


def test_log_likelihood_per_customer_sums_to_the_fitted_one(cdnow_summary, cdnow_fit):
    ll = cdnow_fit.log_likelihood_per_customer(cdnow_summary[:, 1], cdnow_summary[:, 2], cdnow_summary[:, 3])
    assert ll.sum() == pytest.approx(cdnow_fit.log_likelihood, rel=1e-10)


def test_nobody_came_back_is_a_clear_fit_error():
    with pytest.raises(ModelFitError, match="no customer made a repeat purchase"):
        fit_bgnbd([0, 0, 0], [0, 0, 0], [10, 20, 30])


def test_no_customers_is_a_clear_fit_error():
    with pytest.raises(ModelFitError, match="no customers"):
        fit_bgnbd([], [], [])


def test_optimiser_that_does_not_converge_is_reported(cdnow_summary):
    with pytest.raises(ModelFitError, match="did not converge"):
        fit_bgnbd(cdnow_summary[:, 1], cdnow_summary[:, 2], cdnow_summary[:, 3], max_iterations=2)


def test_customers_who_never_leave_push_the_fit_to_a_boundary():
    # Everyone buys every week up to the last one: no sign of dropout at all, so the dropout
    # probability's beta distribution runs off to zero and no finite maximum exists.
    x = np.arange(1, 40, dtype=float)
    with pytest.raises(ModelFitError, match="no sign of customers leaving") as failure:
        fit_bgnbd(x, x, x)
    assert "a=" in str(failure.value)


@pytest.mark.parametrize(
    ("x", "t_x", "big_t", "message"),
    [
        ([-1], [0], [5], "frequency contains negative"),
        ([1.5], [1], [5], "whole number"),
        ([1], [6], [5], "cannot exceed age"),
        ([1], [float("nan")], [5], "missing"),
        ([1, 2], [1, 2, 3], [5], "incompatible shapes"),
    ],
)
def test_malformed_summaries_are_rejected(x, t_x, big_t, message):
    with pytest.raises(CustomerDataError, match=message):
        fit_bgnbd(x, t_x, big_t)
    model = BGNBDModel(r=0.24, alpha=4.4, a=0.79, b=2.4, log_likelihood=0.0, customers=0)
    with pytest.raises(CustomerDataError, match=message):
        model.probability_alive(x, t_x, big_t)


def test_negative_horizon_is_rejected(cdnow_fit):
    with pytest.raises(CustomerDataError, match="horizon"):
        cdnow_fit.expected_purchases(-1, 1, 1, 2)


def _simulate_bgnbd(r, alpha, a, b, ages, rng):
    """Customers drawn from the model itself: a purchase rate and a dropout probability each, then
    exponential gaps between purchases and a coin toss after every repeat purchase."""
    rate = rng.gamma(r, 1 / alpha, ages.size)
    dropout = rng.beta(a, b, ages.size)
    x, t_x, now = np.zeros(ages.size), np.zeros(ages.size), np.zeros(ages.size)
    active = np.ones(ages.size, dtype=bool)
    while active.any():
        customers = np.flatnonzero(active)
        next_purchase = now[customers] + rng.exponential(1 / rate[customers])
        bought = next_purchase <= ages[customers]
        active[customers[~bought]] = False
        buyers = customers[bought]
        x[buyers] += 1
        t_x[buyers] = now[buyers] = next_purchase[bought]
        active[buyers[rng.random(buyers.size) < dropout[buyers]]] = False
    return x, t_x


def test_parameters_of_simulated_customers_are_recovered():
    rng = np.random.default_rng(42)
    ages = rng.uniform(26, 52, 20_000)
    x, t_x = _simulate_bgnbd(0.5, 8.0, 0.8, 2.5, ages, rng)
    fit = fit_bgnbd(x, t_x, ages)
    assert fit.r == pytest.approx(0.5, rel=0.05)
    assert fit.alpha == pytest.approx(8.0, rel=0.1)
    assert fit.a == pytest.approx(0.8, rel=0.15)
    assert fit.b == pytest.approx(2.5, rel=0.15)
    # A maximum of the likelihood is at least as likely as the truth.
    truth = BGNBDModel(r=0.5, alpha=8.0, a=0.8, b=2.5, log_likelihood=0.0, customers=0)
    assert fit.log_likelihood >= truth.log_likelihood_per_customer(x, t_x, ages).sum()
