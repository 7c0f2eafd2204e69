"""Worker and beat settings for the experiment tests: the campaign tests' ones plus a fast decider."""

from datetime import timedelta

from tests.integration.campaigns.worker_settings import *  # noqa: F403
from tests.integration.campaigns.worker_settings import env

_seconds = env.float("EXPERIMENTS_TEST_BEAT_SECONDS", default=1)
CELERY_BEAT_SCHEDULE = {
    "campaigns.dispatch_due": {"task": "campaigns.dispatch_due", "schedule": timedelta(seconds=_seconds)},
    "experiments.decide_due": {"task": "experiments.decide_due", "schedule": timedelta(seconds=_seconds)},
}
