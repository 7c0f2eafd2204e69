"""Settings shared by every environment, read from the environment (django-environ).

One set of variables drives every deployment: DATABASE_URL, REDIS_URL, CELERY_BROKER_URL,
EMAIL_URL, SECRET_KEY, SITE_URL, ALLOWED_HOSTS. The per-environment modules only change
defaults, never the names.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="insecure-development-key-change-me-0123456789abcdef")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
SITE_URL = env("SITE_URL", default="http://localhost:8000").rstrip("/")
# Email needs https tracking and unsubscribe links (RFC 8058 one-click). Only the embedded
# development default turns this off, for a site served on http://localhost.
TRACKING_REQUIRE_HTTPS = env.bool("TRACKING_REQUIRE_HTTPS", default=True)
# /metrics: a bearer token for Prometheus; empty = only loopback and private addresses may scrape.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "core",
    "access",
    "customers",
    "catalog",
    "loyalty",
    "webhooks",
    "recommender",
    "segments",
    "segments.features",
    "campaigns",
    "experiments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates" / "django"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# A streaming replica for read-only reporting (dashboard, campaign reports, exports); unset = the
# primary does everything. Writers and workers always use the primary (they read what they wrote).
if env("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["core.db.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "out" / "static"
STATICFILES_DIRS = [BASE_DIR / "templates" / "static"]
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "media"))
MEDIA_URL = "media/"

# Bulk calls of 10,000 rows are about 16 MB of JSON (ARCHITECTURE: Request size).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=20 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 100_000
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
BULK_MAX_ROWS = env.int("BULK_MAX_ROWS", default=10_000)

# --- Redis: cache, rate limits, locks (never state) -----------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue("default"), Queue("recommender"), Queue("segments"), Queue("sends")]
CELERY_TASK_ROUTES = {
    "recommender.*": {"queue": "recommender"},
    "segments.*": {"queue": "segments"},
    "campaigns.send_*": {"queue": "sends"},
}
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60 * 60}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic work; the database scheduler syncs this into its tables on start.
CELERY_BEAT_SCHEDULE = {
    "webhooks.dispatch_due": {"task": "webhooks.dispatch_due", "schedule": timedelta(seconds=30)},
    "loyalty.expire_points": {"task": "loyalty.expire_points", "schedule": crontab(minute=15, hour=2)},
    "loyalty.reevaluate_tiers": {"task": "loyalty.reevaluate_tiers", "schedule": crontab(minute=45, hour=2)},
    "webhooks.prune_outbox": {"task": "webhooks.prune_outbox", "schedule": crontab(minute=30, hour=3)},
    # Campaigns: due runs, lost tasks and expired leases (the database is the truth, ARCHITECTURE.md).
    "campaigns.dispatch_due": {"task": "campaigns.dispatch_due", "schedule": timedelta(minutes=1)},
    "campaigns.process_triggers": {"task": "campaigns.process_triggers", "schedule": timedelta(minutes=1)},
    "campaigns.attribute_orders": {"task": "campaigns.attribute_orders", "schedule": timedelta(minutes=5)},
    # Experiments: test-then-send winners whose window has passed.
    "experiments.decide_due": {"task": "experiments.decide_due", "schedule": timedelta(minutes=1)},
    # Segments: drain customers touched by ingest; a full refresh (relative dates move) every hour.
    "segments.refresh_touched": {"task": "segments.refresh_touched", "schedule": timedelta(minutes=1)},
    "segments.refresh_all": {"task": "segments.refresh_all", "schedule": crontab(minute=7)},
    # Segments: refreshes whose worker died mid-way (state stuck `running`) or whose task was lost.
    "segments.reconcile": {"task": "segments.reconcile", "schedule": timedelta(minutes=5)},
    # Customer analytics: features + RFM, clusters, churn and CLV, chained, every night.
    "segments.analytics_pipeline": {
        "task": "segments.analytics_pipeline",
        "schedule": crontab(minute=30, hour=1),
    },
    # Recommender: nightly training (then scoring and promotion), refresh of touched customers, lost chunks.
    "recommender.train_all": {"task": "recommender.train_all", "schedule": crontab(minute=0, hour=1)},
    "recommender.refresh_touched": {"task": "recommender.refresh_touched", "schedule": timedelta(minutes=2)},
    "recommender.reconcile": {"task": "recommender.reconcile", "schedule": timedelta(minutes=5)},
}

# --- Email -------------------------------------------------------------------------------------
# Short aliases for EMAIL_URL: `console:`, `file:///path`, `memory:` next to smtp://host:port.
environ.Env.EMAIL_SCHEMES.update(
    {
        "console": "django.core.mail.backends.console.EmailBackend",
        "file": "django.core.mail.backends.filebased.EmailBackend",
        "memory": "django.core.mail.backends.locmem.EmailBackend",
    }
)
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="console://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Reachly <news@example.com>")
EMAIL_TIMEOUT = 30
ANYMAIL = env.dict("ANYMAIL", default={})

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["access.permissions.HasResourceScope"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["access.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env("API_KEY_RATE", default="6000/min")},
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Reachly API",
    "DESCRIPTION": "Customers, catalog, orders, events, loyalty, recommendations, segments and campaigns.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyAuth": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Api-Key <key>`",
            }
        }
    },
    "SECURITY": [{"ApiKeyAuth": []}],
}
API_KEY_CUSTOM_HEADER = "HTTP_X_API_KEY"

# --- Product settings --------------------------------------------------------------------------
COMPANY_NAME = env("COMPANY_NAME", default="Reachly Demo Shop")
COMPANY_POSTAL_ADDRESS = env(
    "COMPANY_POSTAL_ADDRESS", default="1 Example Street, London EC1A 1AA, United Kingdom"
)
SUPPRESSION_HASH_KEY = env("SUPPRESSION_HASH_KEY", default="reachly-suppression-v1")
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# A segment refresh whose worker was killed this many times in a row (out of memory, say) is failed
# with the reason instead of run again; an explicit refresh (API, admin) tries it again.
SEGMENTS_REFRESH_MAX_INTERRUPTIONS = env.int("SEGMENTS_REFRESH_MAX_INTERRUPTIONS", default=3)

# Experiment results are cached per data version (docs/statistics.md); this bounds what the version
# cannot see (the clock moving the series, an order edited in place).
EXPERIMENT_RESULTS_CACHE_SECONDS = env.int("EXPERIMENT_RESULTS_CACHE_SECONDS", default=300)

# --- Campaign delivery (docs/delivery.md) -----------------------------------------------------
# Web Push: VAPID key pair (base64url private key, as `vapid --gen` or py_vapid produce) and a contact.
WEBPUSH_VAPID_PRIVATE_KEY = env("WEBPUSH_VAPID_PRIVATE_KEY", default="")
WEBPUSH_VAPID_PUBLIC_KEY = env("WEBPUSH_VAPID_PUBLIC_KEY", default="")
WEBPUSH_VAPID_SUBJECT = env("WEBPUSH_VAPID_SUBJECT", default="mailto:push@example.com")
# Generic HTTP push provider: requests are signed with this secret (X-Reachly-Signature).
PUSH_HTTP_SECRET = env("PUSH_HTTP_SECRET", default="change-me-push-secret")
# Bounce/complaint webhooks in Reachly's signed format (/t/webhooks/delivery/).
DELIVERY_WEBHOOK_SECRET = env("DELIVERY_WEBHOOK_SECRET", default="")
# Messages per second per provider (smtp, anymail.<esp>, push, default); empty = unlimited.
CAMPAIGN_SEND_RATES = env.dict("CAMPAIGN_SEND_RATES", cast={"value": float}, default={})
# Share of all customers who get no campaign at all (the global holdout, in percent).
CAMPAIGN_GLOBAL_HOLDOUT_PERCENT = env.float("CAMPAIGN_GLOBAL_HOLDOUT_PERCENT", default=0.0)
# Its hash salt: changing it reassigns who is held out (experiments/assignment.py).
CAMPAIGN_GLOBAL_HOLDOUT_SALT = env("CAMPAIGN_GLOBAL_HOLDOUT_SALT", default="global-holdout")
# Sending pipeline: rows per chunk, lease per chunk, senders per campaign, seconds per task.
CAMPAIGN_CHUNK_SIZE = env.int("CAMPAIGN_CHUNK_SIZE", default=200)
CAMPAIGN_LEASE_SECONDS = env.int("CAMPAIGN_LEASE_SECONDS", default=120)
CAMPAIGN_SEND_PARALLELISM = env.int("CAMPAIGN_SEND_PARALLELISM", default=1)
CAMPAIGN_TASK_BUDGET_SECONDS = env.int("CAMPAIGN_TASK_BUDGET_SECONDS", default=55)
CAMPAIGN_SENDER_STALE_SECONDS = env.int("CAMPAIGN_SENDER_STALE_SECONDS", default=90)
CAMPAIGN_RETRY_BASE_SECONDS = env.int("CAMPAIGN_RETRY_BASE_SECONDS", default=60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # No query string in any request line we log (personal data in URLs, core/log_privacy.py).
    "filters": {"no_query_strings": {"()": "core.log_privacy.DropQueryStrings"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["no_query_strings"]}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
