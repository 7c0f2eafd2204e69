"""Settings of the Celery worker the recommender tests start: the campaign tests' worker settings
(real broker, test database) plus small scoring chunks, so that one run fans out."""

from tests.integration.campaigns.worker_settings import *  # noqa: F403
from tests.integration.campaigns.worker_settings import env

RECOMMENDER_SCORING_CHUNK = env.int("RECOMMENDER_SCORING_CHUNK", default=5000)
MEDIA_ROOT = env("MEDIA_ROOT")
