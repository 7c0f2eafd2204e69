import numpy as np
import pytest

from segments.analytics.errors import ModelFitError
from segments.analytics.fitting import distinct_rows, maximise_likelihood


def test_a_likelihood_whose_best_value_is_at_infinity_is_refused():
    # -1/sqrt(k) keeps rising as k grows: the optimiser walks off towards infinity.
    def rising_forever(theta):
        k = theta[0]
        return np.array([-(k**-0.5)]), np.array([[0.5 * k**-1.5]])

    with pytest.raises(ModelFitError, match="extreme parameter value"):
        maximise_likelihood(
            model="toy",
            parameter_names=("k",),
            log_likelihood_and_gradient=rising_forever,
            weights=np.ones(1),
            initial=np.array([1.0]),
            max_iterations=500,
        )


def test_a_well_posed_likelihood_is_maximised_with_weights():
    # Weighted Poisson log-likelihood of counts 1 (weight 3) and 4 (weight 1): the rate is 7/4.
    counts = np.array([1.0, 4.0])

    def poisson(theta):
        rate = theta[0]
        return counts * np.log(rate) - rate, (counts / rate - 1.0)[:, None]

    fit = maximise_likelihood(
        model="toy",
        parameter_names=("rate",),
        log_likelihood_and_gradient=poisson,
        weights=np.array([3.0, 1.0]),
        initial=np.array([10.0]),
        max_iterations=100,
    )
    assert fit.parameters[0] == pytest.approx(1.75, rel=1e-8)
    assert fit.log_likelihood == pytest.approx(7 * np.log(1.75) - 4 * 1.75, rel=1e-10)


def test_distinct_rows_count_the_customers_sharing_each():
    columns, weights = distinct_rows(np.array([1.0, 0.0, 1.0, 1.0]), np.array([2.0, 5.0, 2.0, 3.0]))
    np.testing.assert_array_equal(columns[0], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(columns[1], [5.0, 2.0, 3.0])
    np.testing.assert_array_equal(weights, [1.0, 2.0, 1.0])
