"""Tests run on the real services: PostgreSQL and Redis on this machine (or the ones `make test` started)."""

from .base import *  # noqa: F403
from .base import env

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/test")}
DATABASES["default"]["CONN_MAX_AGE"] = 0
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="test"),
    }
}


def _next_redis_db(url: str) -> str:
    """The broker gets its own Redis database so clearing the cache between tests keeps queued tasks."""
    base, _, db = url.rpartition("/")
    return f"{base}/{(int(db) + 1) % 16}" if db.isdigit() else url


CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=_next_redis_db(REDIS_URL))
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SITE_URL = "http://testserver"
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"api_key": "100000/min"}  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
