"""Small crafted data sets with a structure every collaborative model must find."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from recommender.engine.types import InteractionLog, ItemCatalog
from recommender.engine.weighting import interactions_from_log

CLUSTER_ITEMS = 5
USERS_PER_CLUSTER = 10


@pytest.fixture(autouse=True)
def single_blas_thread():
    with threadpool_limits(1):
        yield


def cluster_log(seed: int = 0) -> InteractionLog:
    """Two taste clusters: users 0-9 buy products a0-a4, users 10-19 buy b0-b4.

    Each user buys four of their cluster's five products and misses product ``user % 5``,
    so the one right recommendation for every user is the product their cluster-mates
    have and they do not.
    """
    users, items, times = [], [], []
    for cluster, prefix in enumerate("ab"):
        for local in range(USERS_PER_CLUSTER):
            user = f"u{cluster * USERS_PER_CLUSTER + local:02d}"
            for item in range(CLUSTER_ITEMS):
                if item != local % CLUSTER_ITEMS:
                    users.append(user)
                    items.append(f"{prefix}{item}")
                    times.append(1_000_000.0 + 3600.0 * len(users))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(users))
    return InteractionLog(
        user_ids=np.asarray(users, dtype=object)[order],
        item_ids=np.asarray(items, dtype=object)[order],
        timestamps=np.asarray(times)[order],
    )


def missing_item(user_id: str) -> str:
    number = int(user_id[1:])
    prefix = "a" if number < USERS_PER_CLUSTER else "b"
    return f"{prefix}{number % USERS_PER_CLUSTER % CLUSTER_ITEMS}"


@pytest.fixture
def clusters():
    return interactions_from_log(cluster_log())


@pytest.fixture
def cluster_catalog(clusters):
    words = {"a": "red wool winter scarf", "b": "blue ceramic coffee mug"}
    ids = clusters.item_ids
    return ItemCatalog(
        item_ids=ids,
        names=[f"{words[i[0]]} model {i[1]}" for i in ids],
        categories=["scarves" if i[0] == "a" else "mugs" for i in ids],
        brands=["north" if i[0] == "a" else "south" for i in ids],
    )


def taste_log(n_users: int = 90, n_items: int = 40, per_user: int = 12, seed: int = 0) -> InteractionLog:
    """Customers drawn from three taste groups with some noise; ids as strings like a CSV."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n_items) % 3
    users, items, times = [], [], []
    for u in range(n_users):
        taste = u % 3
        p = np.where(groups == taste, 6.0, 1.0) * (1.0 + np.arange(n_items)[::-1] / n_items)
        chosen = rng.choice(n_items, size=per_user, replace=False, p=p / p.sum())
        users += [f"c{u}"] * per_user
        items += [f"p{i}" for i in chosen]
        times += sorted(rng.uniform(0, 1e6, per_user).tolist())
    return InteractionLog(
        user_ids=np.asarray(users, dtype=object),
        item_ids=np.asarray(items, dtype=object),
        timestamps=np.asarray(times),
    )


def write_csv(path, log: InteractionLog, *, extra: bool = True) -> None:
    with open(path, "w") as handle:
        handle.write("user_id,item_id,rating,timestamp" + (",note\n" if extra else "\n"))
        for u, i, t in zip(log.user_ids, log.item_ids, log.timestamps, strict=True):
            handle.write(f"{u},{i},{1 + int(t) % 5},{int(t)}" + (",ignored\n" if extra else "\n"))
