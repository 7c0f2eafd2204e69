"""Public tracking URLs, mounted at /t/ (config/urls.py)."""

from anymail import urls as anymail_urls
from django.urls import URLPattern, include, path, re_path

from campaigns.tracking import views

app_name = "tracking"

urlpatterns = [
    re_path(r"^o/(?P<token>[A-Za-z0-9._\-]{1,120})\.gif$", views.open_pixel, name="open"),
    re_path(r"^c/(?P<token>[A-Za-z0-9._\-]{1,120})/$", views.click, name="click"),
    re_path(r"^p/(?P<token>[A-Za-z0-9._\-]{1,120})/$", views.push_click, name="push-click"),
    re_path(r"^u/(?P<token>[A-Za-z0-9._\-]{1,120})/$", views.unsubscribe, name="unsubscribe"),
    path("webhooks/delivery/", views.delivery_webhook, name="delivery-webhook"),
    # anymail's ESP webhooks, each behind its basic-auth secret (views.guard_esp_webhook).
    path(
        "esp/",
        include(
            (
                [
                    URLPattern(p.pattern, views.guard_esp_webhook(p.callback), p.default_args, p.name)
                    for p in anymail_urls.urlpatterns
                ],
                anymail_urls.app_name,
            )
        ),
    ),
]
