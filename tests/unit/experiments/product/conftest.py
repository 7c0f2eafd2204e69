"""The product side of experiments (decision rule, results logic) imports Django models but needs no
database. Under pytest-django the settings are already configured; under `-p no:django` (the
pure-statistics command in docs/statistics.md) they are configured here."""

import os

import django
from django.conf import settings

if not settings.configured:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
