"""Shared maximum-likelihood machinery for the BG/NBD and Gamma-Gamma models.

Both models have a handful of positive parameters and a closed-form log-likelihood per customer.
They are fitted the same way: on the log of the parameters (so the optimiser works on an
unconstrained space and never proposes a negative shape or scale), with the analytic gradient
(four or three digamma terms, cheap and much more reliable than finite differences near the
optimum), on the distinct customer rows weighted by how many customers share them (a base of a
million customers has far fewer distinct summaries, which makes the fit fast).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from segments.analytics.errors import ModelFitError

#: A fitted parameter outside [e^-25, e^25] means the likelihood kept improving towards a
#: boundary of the parameter space (for example a dropout probability driven to zero); the numbers
#: would be meaningless, so the fit is reported as failed instead.
_LOG_PARAMETER_LIMIT = 25.0

#: BFGS sometimes stops with "precision loss" at the optimum because the mean log-likelihood
#: cannot improve by more than its rounding error; a gradient this small is an optimum all the same.
_GRADIENT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class MaximumLikelihood:
    parameters: np.ndarray
    log_likelihood: float
    iterations: int


def maximise_likelihood(
    *,
    model: str,
    parameter_names: tuple[str, ...],
    log_likelihood_and_gradient: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    weights: np.ndarray,
    initial: np.ndarray,
    max_iterations: int,
) -> MaximumLikelihood:
    """Maximise ``sum(weights * ll(theta))`` over ``log(theta)``.

    ``log_likelihood_and_gradient(theta)`` returns the per-row log-likelihood and its gradient with
    respect to ``theta`` (shape ``(rows, parameters)``).
    """
    total_weight = float(weights.sum())

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        ll, grad = log_likelihood_and_gradient(theta)
        value = -float(weights @ ll) / total_weight
        gradient = -(weights @ grad) * theta / total_weight
        if not np.isfinite(value) or not np.isfinite(gradient).all():
            # Tell the line search this step went too far rather than crash on a NaN.
            return np.inf, np.zeros_like(log_theta)
        return value, gradient

    start = np.log(initial)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        result = minimize(
            objective,
            start,
            jac=True,
            method="BFGS",
            options={"maxiter": max_iterations, "gtol": 1e-9},
        )
        _, final_gradient = objective(result.x)
    converged = np.isfinite(result.fun) and (
        result.success or float(np.max(np.abs(final_gradient))) < _GRADIENT_TOLERANCE
    )
    reached = ", ".join(
        f"{name}={value:.3g}" for name, value in zip(parameter_names, np.exp(result.x), strict=True)
    )
    if not converged:
        raise ModelFitError(
            f"{model}: the maximum-likelihood search did not converge after {result.nit} iterations "
            f"({result.message}; it stopped at {reached}); usual causes are too few customers or repeat "
            f"purchases, or a history with no sign of customers leaving"
        )
    extreme = np.abs(result.x) > _LOG_PARAMETER_LIMIT
    if extreme.any():
        names = ", ".join(
            f"{name}={value:.3g}"
            for name, value, bad in zip(parameter_names, np.exp(result.x), extreme, strict=True)
            if bad
        )
        raise ModelFitError(
            f"{model}: the fit ran off to an extreme parameter value ({names}), so the data cannot "
            f"pin the model down; this happens with very few customers or very few repeat purchases"
        )
    return MaximumLikelihood(
        parameters=np.exp(result.x),
        log_likelihood=-float(result.fun) * total_weight,
        iterations=int(result.nit),
    )


def distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the given aligned columns (sorted) and how many customers share each.

    A lexicographic sort and a scan, rather than ``np.unique(axis=0)``, which is several times
    slower on a million rows.
    """
    order = np.lexsort(columns[::-1])
    ordered = [column[order] for column in columns]
    starts_row = np.ones(order.shape[0], dtype=bool)
    changed = np.zeros(max(order.shape[0] - 1, 0), dtype=bool)
    for column in ordered:
        changed |= column[1:] != column[:-1]
    starts_row[1:] = changed
    starts = np.flatnonzero(starts_row)
    counts = np.diff(np.append(starts, order.shape[0]))
    return [column[starts] for column in ordered], counts.astype(np.float64)
