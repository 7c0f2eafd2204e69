"""Behavioural clusters of customers: k-means on standardised features, k chosen by silhouette.

RFM groups are fixed rules a marketer chose; clusters let the data say which kinds of customers
there are. The features are whatever behaviour matters to the shop (days since the last order,
number of orders, spend, basket size, ...). Each feature is standardised (after an optional log,
for long-tailed ones such as spend) so that no feature dominates the distances just because of its
unit. k is picked as the one with the best silhouette (how much closer customers are to their own
cluster than to the next one), computed on a fixed-seed sample on large bases because the exact
silhouette costs time quadratic in the number of customers.

A cluster number means nothing to a marketer, so each cluster comes with a profile: its size, the
average of every feature in the original units, and a description such as "high frequency,
recent, high spend" built from how far the cluster's centre lies from the average customer.
Clusters are numbered by size, largest first, so the numbering is stable across refits on similar
data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from segments.analytics.errors import CustomerDataError

#: Words for the low and high end of common features. A feature not listed is described as
#: "low <name>" / "high <name>".
DEFAULT_FEATURE_WORDING: dict[str, tuple[str, str]] = {
    "recency_days": ("recent", "lapsed"),
    "days_since_last_order": ("recent", "lapsed"),
    "frequency": ("low frequency", "high frequency"),
    "orders": ("few orders", "many orders"),
    "monetary": ("low spend", "high spend"),
    "revenue": ("low spend", "high spend"),
    "average_order_value": ("small baskets", "large baskets"),
    "tenure_days": ("new", "long-standing"),
    "clv": ("low predicted value", "high predicted value"),
    "churn_probability": ("likely to stay", "likely to churn"),
}

#: A cluster centre this many standard deviations from the mean of all customers is called
#: high or low on that feature; closer, it is average and left out of the description.
LEVEL_THRESHOLD = 0.5
#: Beyond this many standard deviations the trait is "very" high or low, which tells apart two
#: clusters that lean the same way (lapsed, and long gone).
STRONG_LEVEL_THRESHOLD = 1.5


@dataclass(frozen=True)
class ClusterProfile:
    cluster: int
    customers: int
    share: float
    mean: dict[str, float]
    level: dict[str, str]
    description: str


@dataclass(frozen=True, eq=False)
class CustomerClusters:
    """``labels[i]`` is the cluster of customer i; ``centers`` are in the features' own units
    (for log-scaled features, the centre of the logs mapped back, a geometric-style mean)."""

    labels: np.ndarray
    centers: np.ndarray
    feature_names: tuple[str, ...]
    k: int
    silhouette: dict[int, float]
    profiles: tuple[ClusterProfile, ...]


def _describe(
    standardised_center: np.ndarray,
    feature_names: Sequence[str],
    wording: Mapping[str, tuple[str, str]],
) -> tuple[dict[str, str], str]:
    level: dict[str, str] = {}
    traits: list[tuple[float, str]] = []
    for name, z in zip(feature_names, standardised_center, strict=True):
        low_word, high_word = wording.get(
            name, (f"low {name.replace('_', ' ')}", f"high {name.replace('_', ' ')}")
        )
        strength = "very " if abs(z) >= STRONG_LEVEL_THRESHOLD else ""
        if z >= LEVEL_THRESHOLD:
            level[name] = f"{strength}high"
            traits.append((abs(float(z)), f"{strength}{high_word}"))
        elif z <= -LEVEL_THRESHOLD:
            level[name] = f"{strength}low"
            traits.append((abs(float(z)), f"{strength}{low_word}"))
        else:
            level[name] = "average"
    # The most distinctive trait first: it is what the cluster is about.
    traits.sort(key=lambda trait: -trait[0])
    description = ", ".join(word for _, word in traits) or "close to the average customer"
    return level, description


def _sample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def cluster_customers(
    features: ArrayLike,
    feature_names: Sequence[str],
    *,
    k_range: tuple[int, int] = (2, 8),
    log_features: Sequence[str] = (),
    wording: Mapping[str, tuple[str, str]] | None = None,
    seed: int = 0,
    silhouette_sample: int = 5000,
    selection_sample: int = 50_000,
    n_init: int = 4,
) -> CustomerClusters:
    """Cluster customers (rows of ``features``) and describe each cluster.

    ``k_range`` is inclusive. Fewer distinct customers than the range asks for narrows it (down
    to 2..n-1 if need be); with
    fewer than three customers, or all of them alike, everyone is put in a single cluster (k = 1)
    rather than failing, because a new shop still needs a page that renders.
    ``log_features`` are log1p-transformed before standardising (they must be non-negative).

    On a large base the candidate values of k are compared on a seeded sample of
    ``selection_sample`` customers (k-means on a million rows for every candidate would dominate
    the nightly run), and only the chosen k is fitted on everyone.
    """
    data = np.asarray(features, dtype=np.float64)
    names = tuple(feature_names)
    if data.ndim != 2:
        raise CustomerDataError("features must be a 2-D array, one row per customer")
    if data.shape[1] != len(names):
        raise CustomerDataError(f"{data.shape[1]} feature columns but {len(names)} feature names")
    if len(set(names)) != len(names):
        raise CustomerDataError("feature names must be distinct")
    if data.shape[0] == 0:
        raise CustomerDataError("there are no customers to cluster")
    if not np.isfinite(data).all():
        raise CustomerDataError("features contains missing or infinite values")
    unknown = sorted(set(log_features) - set(names))
    if unknown:
        raise CustomerDataError(f"log_features names unknown features: {', '.join(unknown)}")
    k_low, k_high = k_range
    if not (2 <= k_low <= k_high):
        raise CustomerDataError("k_range must be (low, high) with 2 <= low <= high")
    wording = {**DEFAULT_FEATURE_WORDING, **(wording or {})}

    logged = np.array([name in set(log_features) for name in names])
    transformed = data.copy()
    if logged.any():
        if (data[:, logged] < 0).any():
            raise CustomerDataError("log-scaled features must be non-negative")
        transformed[:, logged] = np.log1p(data[:, logged])
    scaler = StandardScaler().fit(transformed)
    standardised = scaler.transform(transformed)

    n = data.shape[0]
    distinct = np.unique(standardised, axis=0).shape[0]
    # Silhouette needs 2 <= k <= n - 1, and k-means cannot place more centres than distinct points.
    k_high = min(k_high, distinct, n - 1)
    silhouette: dict[int, float] = {}
    best: tuple[float, KMeans] | None = None
    if k_high >= 2:
        rng = np.random.default_rng(seed)
        selection = _sample(rng, n, selection_sample)
        candidates = standardised[selection]
        scored = selection.shape[0]
        silhouette_rows = _sample(rng, scored, silhouette_sample)
        # When the base is too small for the requested range, every feasible k competes.
        for k in range(k_low if k_low <= k_high else 2, k_high + 1):
            model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(candidates)
            labels = model.labels_[silhouette_rows]
            if np.unique(labels).shape[0] < 2:
                continue
            score = float(silhouette_score(candidates[silhouette_rows], labels))
            silhouette[k] = score
            if best is None or score > best[0]:
                best = (score, model)
    if best is None:
        labels = np.zeros(n, dtype=np.int64)
        standardised_centers = standardised.mean(axis=0, keepdims=True)
    else:
        model = best[1]
        if model.labels_.shape[0] != n:
            model = KMeans(n_clusters=model.n_clusters, n_init=n_init, random_state=seed).fit(standardised)
        labels, standardised_centers = model.labels_, model.cluster_centers_

    # Number clusters by size, largest first (ties by original number, which the seed fixes).
    sizes = np.bincount(labels, minlength=standardised_centers.shape[0])
    by_size = np.argsort(-sizes, kind="stable")
    renumber = np.empty_like(by_size)
    renumber[by_size] = np.arange(by_size.shape[0])
    labels = renumber[labels].astype(np.int64)
    standardised_centers = standardised_centers[by_size]
    sizes = sizes[by_size]

    centers = scaler.inverse_transform(standardised_centers)
    centers[:, logged] = np.expm1(centers[:, logged])
    profiles = []
    for cluster, (size, z_center) in enumerate(zip(sizes, standardised_centers, strict=True)):
        members = data[labels == cluster]
        level, description = _describe(z_center, names, wording)
        profiles.append(
            ClusterProfile(
                cluster=cluster,
                customers=int(size),
                share=float(size) / n,
                mean={name: float(value) for name, value in zip(names, members.mean(axis=0), strict=True)},
                level=level,
                description=description,
            )
        )
    return CustomerClusters(
        labels=labels,
        centers=centers,
        feature_names=names,
        k=int(standardised_centers.shape[0]),
        silhouette=silhouette,
        profiles=tuple(profiles),
    )
