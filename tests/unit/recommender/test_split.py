import numpy as np
import pytest

from recommender.engine.errors import TrainingDataError
from recommender.engine.split import leave_last_out, random_holdout, split_log, temporal_split
from recommender.engine.types import InteractionLog


def make_log(n_users=30, per_user=8, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, 1000, len(users))
    times = rng.uniform(0, 1e6, len(users))
    # one user with a single interaction: must stay in training
    users = np.append(users, 999)
    items = np.append(items, 5)
    times = np.append(times, 5e5)
    return InteractionLog(user_ids=users, item_ids=items, timestamps=times)


def row_keys(log):
    return set(zip(log.user_ids.tolist(), log.item_ids.tolist(), log.timestamps.tolist(), strict=True))


def test_random_holdout_partitions_rows_per_user():
    log = make_log()
    train, test = random_holdout(log, test_ratio=0.25, seed=7)
    assert len(train) + len(test) == len(log)
    assert not row_keys(train) & row_keys(test)
    assert row_keys(train) | row_keys(test) == row_keys(log)
    for user in range(30):
        assert (test.user_ids == user).sum() == 2  # round(8 * 0.25)
    assert 999 not in set(test.user_ids.tolist())


def test_random_holdout_is_seeded():
    log = make_log()
    a, _ = random_holdout(log, test_ratio=0.25, seed=7)
    b, _ = random_holdout(log, test_ratio=0.25, seed=7)
    c, _ = random_holdout(log, test_ratio=0.25, seed=8)
    assert row_keys(a) == row_keys(b)
    assert row_keys(a) != row_keys(c)


def test_temporal_split_has_no_future_in_training():
    log = make_log()
    train, test = temporal_split(log, test_ratio=0.25)
    assert train.timestamps.max() < test.timestamps.min()
    assert abs(len(test) / len(log) - 0.25) < 0.02
    train, test = temporal_split(log, last_days=2.0)
    assert test.timestamps.min() > log.timestamps.max() - 2 * 86400
    assert train.timestamps.max() <= log.timestamps.max() - 2 * 86400


def test_leave_last_out_takes_each_users_latest_row():
    log = make_log()
    train, test = leave_last_out(log)
    assert len(test) == 30
    for user, ts in zip(test.user_ids.tolist(), test.timestamps.tolist(), strict=True):
        assert ts == log.timestamps[log.user_ids == user].max()
        assert ts > train.timestamps[train.user_ids == user].max()


def test_split_errors():
    empty = InteractionLog(user_ids=np.array([]), item_ids=np.array([]))
    with pytest.raises(TrainingDataError):
        random_holdout(empty)
    with pytest.raises(ValueError, match="timestamp"):
        temporal_split(InteractionLog(user_ids=np.array([1, 2]), item_ids=np.array([1, 2])))
    with pytest.raises(ValueError, match="unknown split"):
        split_log(make_log(), method="random")
