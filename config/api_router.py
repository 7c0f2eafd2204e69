"""Every app registers its `/api/v1/` routes here; each app's `api/urls.py` owns its paths."""

from importlib import import_module
from importlib.util import find_spec

from django.urls import include, path

API_APPS = [
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

urlpatterns = []
for _app in API_APPS:
    if find_spec(f"{_app}.api") is not None and find_spec(f"{_app}.api.urls") is not None:
        urlpatterns.append(path("", include(import_module(f"{_app}.api.urls"))))
