"""The Celery application.

Conventions (ARCHITECTURE.md): explicit task names, one queue per concern (`default`,
`recommender`, `segments`, `sends`), `acks_late` with `reject_on_worker_lost` so a killed
worker's task is redelivered, prefetch 1, time limits on every task.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("reachly")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
