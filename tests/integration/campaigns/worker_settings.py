"""Settings for a Celery worker started by the campaign tests: the test settings, real email.

config.settings.test pins the locmem email backend for in-process tests; a worker subprocess
must talk SMTP to the test's sink, so EMAIL_URL (set by the fixture) wins here.
"""

from config.settings.test import *  # noqa: F403
from config.settings.test import env

if env("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
CELERY_TASK_ALWAYS_EAGER = False
SITE_URL = env("SITE_URL", default="https://testserver")
LOGGING["root"]["level"] = "INFO"  # noqa: F405

# A fast dispatcher for the reliability tests' beat process (production: every minute).
_dispatch_seconds = env.float("CAMPAIGN_TEST_DISPATCH_SECONDS", default=0)
if _dispatch_seconds:
    from datetime import timedelta

    CELERY_BEAT_SCHEDULE = {
        "campaigns.dispatch_due": {
            "task": "campaigns.dispatch_due",
            "schedule": timedelta(seconds=_dispatch_seconds),
        }
    }
