from __future__ import annotations

import factory

from webhooks.models import WebhookEndpoint


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEndpoint

    name = factory.Sequence(lambda n: f"crm-{n}")
    url = "http://127.0.0.1:9/hook"
    secret = "whsec_test_secret"
    topics = factory.LazyFunction(list)
