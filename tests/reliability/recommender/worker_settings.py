"""Settings of the worker the training fault tests start and kill: a lease of a few seconds."""

from tests.integration.recommender.worker_settings import *  # noqa: F403
from tests.integration.recommender.worker_settings import env

RECOMMENDER_TRAINING_LEASE_SECONDS = env.float("RECOMMENDER_TRAINING_LEASE_SECONDS", default=300)
