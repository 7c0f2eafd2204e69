import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from segments.analytics.clusters import cluster_customers
from segments.analytics.errors import CustomerDataError

FEATURES = ("recency_days", "frequency", "monetary")


def _blobs(sizes, centers, spread, seed=1):
    rng = np.random.default_rng(seed)
    rows = [
        np.asarray(center) + rng.normal(0, spread, size=(size, len(center)))
        for size, center in zip(sizes, centers, strict=True)
    ]
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return np.abs(np.vstack(rows)), truth


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_separated_blobs_are_recovered_with_the_right_k(k):
    centers = [[10, 12, 900], [200, 2, 80], [60, 6, 400], [320, 1, 30], [120, 9, 650]][:k]
    data, truth = _blobs([300, 250, 200, 150, 120][:k], centers, spread=[6, 0.6, 25])
    result = cluster_customers(data, FEATURES, k_range=(2, 8))
    assert result.k == k
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert max(result.silhouette, key=result.silhouette.get) == k
    assert set(result.silhouette) == set(range(2, 9))


def test_centers_are_in_original_units_and_clusters_are_numbered_by_size():
    data, truth = _blobs([100, 400, 250], [[10, 12, 900], [200, 2, 80], [60, 6, 400]], spread=[6, 0.6, 25])
    result = cluster_customers(data, FEATURES, log_features=("frequency", "monetary"))
    assert result.k == 3
    assert [p.customers for p in result.profiles] == [400, 250, 100]
    assert sum(p.share for p in result.profiles) == pytest.approx(1.0)
    expected_centers = np.array([[200, 2, 80], [60, 6, 400], [10, 12, 900]])
    np.testing.assert_allclose(result.centers, expected_centers, rtol=0.1)
    for profile, center in zip(result.profiles, expected_centers, strict=True):
        np.testing.assert_allclose([profile.mean[name] for name in FEATURES], center, rtol=0.1)


def test_profiles_describe_clusters_in_words():
    data, _ = _blobs([300, 300, 300], [[10, 12, 900], [200, 2, 80], [100, 6, 450]], spread=[6, 0.6, 25])
    result = cluster_customers(data, FEATURES)
    descriptions = {p.description for p in result.profiles}
    best = next(p for p in result.profiles if p.mean["monetary"] > 800)
    worst = next(p for p in result.profiles if p.mean["monetary"] < 100)
    middle = next(p for p in result.profiles if 300 < p.mean["monetary"] < 600)
    assert set(best.description.split(", ")) == {"high spend", "high frequency", "recent"}
    assert best.level == {"recency_days": "low", "frequency": "high", "monetary": "high"}
    assert set(worst.description.split(", ")) == {"low spend", "low frequency", "lapsed"}
    assert middle.description == "close to the average customer"
    assert len(descriptions) == 3


def test_very_distinct_traits_are_called_very():
    # A small group far out on spend: more than 1.5 standard deviations above everyone.
    data, _ = _blobs([500, 40], [[30, 3, 50], [30, 3, 2000]], spread=[5, 0.5, 10])
    result = cluster_customers(data, FEATURES)
    big_spenders = result.profiles[1]
    assert big_spenders.level["monetary"] == "very high"
    assert big_spenders.description == "very high spend"


def test_same_seed_same_clusters():
    data, _ = _blobs([200, 200, 200], [[10, 12, 900], [200, 2, 80], [60, 6, 400]], spread=[40, 3, 200])
    first = cluster_customers(data, FEATURES, seed=7)
    second = cluster_customers(data, FEATURES, seed=7)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.silhouette == second.silhouette


def test_large_inputs_are_selected_on_samples_and_labelled_in_full():
    data, truth = _blobs([6000, 4000, 2000], [[10, 12, 900], [200, 2, 80], [60, 6, 400]], spread=[6, 0.6, 25])
    result = cluster_customers(data, FEATURES, silhouette_sample=500, selection_sample=3000, k_range=(2, 5))
    assert result.k == 3
    assert result.labels.shape == (12000,)
    assert adjusted_rand_score(truth, result.labels) == 1.0


@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_customers_are_one_cluster(n):
    result = cluster_customers(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])[:n], FEATURES)
    assert result.k == 1
    np.testing.assert_array_equal(result.labels, np.zeros(n))
    assert result.silhouette == {}
    assert result.profiles[0].customers == n


def test_fewer_customers_than_k_narrow_the_range():
    data = np.array([[1.0, 1, 1], [1.1, 1, 1], [50, 9, 90], [51, 9, 91]])
    result = cluster_customers(data, FEATURES, k_range=(5, 8))
    assert set(result.silhouette) == {2, 3}
    assert result.k == 2
    assert result.labels[0] == result.labels[1]
    assert result.labels[2] == result.labels[3]


def test_identical_customers_are_one_average_cluster():
    result = cluster_customers(np.tile([3.0, 2.0, 40.0], (50, 1)), FEATURES)
    assert result.k == 1
    assert result.profiles[0].description == "close to the average customer"
    np.testing.assert_allclose(result.centers, [[3.0, 2.0, 40.0]])


def test_unknown_features_get_generic_words():
    data, _ = _blobs([100, 100], [[1, 5], [9, 5]], spread=[0.3, 0.0])
    result = cluster_customers(data, ("points_balance", "reviews"))
    assert {p.description for p in result.profiles} == {"high points balance", "low points balance"}


@pytest.mark.parametrize(
    ("features", "names", "options", "message"),
    [
        (np.ones(3), FEATURES, {}, "2-D"),
        (np.ones((3, 2)), FEATURES, {}, "feature names"),
        (np.ones((0, 3)), FEATURES, {}, "no customers"),
        (np.array([[1.0, np.nan, 1.0]]), FEATURES, {}, "missing"),
        (np.ones((3, 3)), ("a", "a", "b"), {}, "distinct"),
        (np.ones((3, 3)), FEATURES, {"log_features": ("spend",)}, "unknown features"),
        (-np.ones((3, 3)), FEATURES, {"log_features": ("monetary",)}, "non-negative"),
        (np.ones((3, 3)), FEATURES, {"k_range": (1, 4)}, "k_range"),
    ],
)
def test_malformed_inputs_are_rejected(features, names, options, message):
    with pytest.raises(CustomerDataError, match=message):
        cluster_customers(features, names, **options)
