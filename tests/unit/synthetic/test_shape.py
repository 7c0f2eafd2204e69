"""The regularities benchmarks and models depend on: skew, repeat buying, affinity, seasonality, text."""

import numpy as np
import pytest

from core.synthetic import US_PER_DAY, SyntheticConfig, collect, yearly_profile


@pytest.fixture(scope="module")
def data():
    return collect(SyntheticConfig(customers=6000, products=1500, orders=60_000, seed=5))


def zipf_slope(data) -> float:
    """Exponent of the rank-frequency line over the well-sampled head of the catalogue."""
    lines = data["order_lines"].columns
    sold = np.bincount(lines["product_id"][lines["kind"] == b"sale"])
    frequency = np.sort(sold)[::-1]
    rank = np.arange(1, len(frequency) + 1)
    head = (rank >= 3) & (rank <= 150)
    return -np.polyfit(np.log(rank[head]), np.log(frequency[head]), 1)[0]


@pytest.mark.parametrize("exponent", [0.8, 1.2])
def test_product_popularity_follows_the_configured_zipf_exponent(exponent):
    data = collect(
        SyntheticConfig(customers=4000, products=1500, orders=50_000, seed=8, zipf_exponent=exponent)
    )
    assert zipf_slope(data) == pytest.approx(exponent, abs=0.15)


def test_most_customers_who_buy_buy_again_and_a_few_buy_a_lot(data):
    counts = np.bincount(data["orders"].columns["customer_id"], minlength=6001)[1:]
    buyers = counts[counts > 0]
    assert 0.5 < (buyers >= 2).mean() < 0.95
    assert (counts == 0).any(), "some registered customers never buy"
    top_decile = np.sort(counts)[::-1][: len(counts) // 10].sum() / counts.sum()
    assert top_decile > 0.35
    assert counts.max() > 10 * counts.mean()


def test_some_customers_stop_buying(data):
    """BG/NBD dropout: active long enough to have bought again, yet silent for months."""
    config = SyntheticConfig(customers=6000, products=1500, orders=60_000, seed=5)
    orders = data["orders"].columns
    last = np.full(6001, np.datetime64(0, "us"))
    np.maximum.at(last, orders["customer_id"], orders["placed_at"])
    counts = np.bincount(orders["customer_id"], minlength=6001)
    frequent = counts >= 5
    silent = (np.datetime64(config.end_us, "us") - last) > np.timedelta64(120 * US_PER_DAY, "us")
    assert 0.05 < (silent & frequent).sum() / frequent.sum() < 0.7


def test_customers_stick_to_their_favourite_categories():
    def top_category_share(affinity: float) -> float:
        data = collect(
            SyntheticConfig(customers=2000, products=1500, orders=30_000, seed=3, category_affinity=affinity)
        )
        lines, orders = data["order_lines"].columns, data["orders"].columns
        category = data["products"].columns["category_id"][lines["product_id"] - 1]
        customer = orders["customer_id"][lines["order_id"] - 1]
        shares = []
        for c in np.unique(customer):
            mine = category[customer == c]
            if len(mine) >= 10:
                shares.append(np.bincount(mine).max() / len(mine))
        return float(np.mean(shares))

    assert top_category_share(0.75) > top_category_share(0.0) + 0.2


def test_orders_follow_the_week_and_the_year(data):
    placed = data["orders"].columns["placed_at"]
    day = placed.astype("datetime64[D]")
    per_day = np.bincount((day - day.min()).astype(int))
    dates = day.min() + np.arange(len(per_day))
    month_day = dates.astype("datetime64[D]") - dates.astype("datetime64[M]")
    month = dates.astype("datetime64[M]").astype(int) % 12 + 1
    black_friday_week = (month == 11) & (month_day.astype(int) >= 22) & (month_day.astype(int) <= 29)
    summer = np.isin(month, [6, 7])
    assert per_day[black_friday_week].mean() > 1.5 * per_day[summer].mean()
    weekday = (dates.astype(int) + 3) % 7
    assert per_day[weekday == 6].mean() > per_day[weekday == 5].mean()  # Sunday evenings beat Saturdays
    hour = ((placed - day) // np.timedelta64(1, "h")).astype(int)
    by_hour = np.bincount(hour, minlength=24)
    assert by_hour[3] < by_hour[20] / 4


def test_yearly_profile_peaks_in_late_november():
    days = np.arange(365)
    assert 320 <= days[np.argmax(yearly_profile(days))] <= 340
    assert yearly_profile(np.array([180]))[0] < yearly_profile(np.array([10]))[0]


def test_prices_are_lognormal_shelf_prices(data):
    price = data["products"].columns["price"]
    assert (price % 50 == 49).all()
    log = np.log(price / 100)
    skew = ((log - log.mean()) ** 3).mean() / log.std() ** 3
    assert abs(skew) < 0.5, "log prices roughly symmetric"
    assert np.percentile(price, 95) > 4 * np.percentile(price, 5)


def test_product_text_carries_its_category():
    """Content-based models need words that separate categories: nearest TF-IDF neighbours agree."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = collect(SyntheticConfig(customers=10, products=1200, orders=10, seed=6))
    products = data["products"].columns
    text = [
        f"{n.decode()} {d.decode()}" for n, d in zip(products["name"], products["description"], strict=True)
    ]
    matrix = TfidfVectorizer().fit_transform(text)
    similarity = (matrix @ matrix.T).toarray()
    np.fill_diagonal(similarity, -1)
    neighbour = similarity.argmax(axis=1)
    category = products["category_id"]
    assert (category[neighbour] == category).mean() > 0.8
    assert len(np.unique(products["name"])) > 0.9 * len(products["name"])


def test_a_single_customer_and_product_still_works():
    data = collect(SyntheticConfig(customers=1, products=1, orders=7, seed=0))
    assert len(data["orders"]) == 7
    assert (data["order_lines"].columns["product_id"] == 1).all()
