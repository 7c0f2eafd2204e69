"""Previews and test sends: a marketer sees the message as one customer would, before launch.

Both use the same context builder as a real send (loyalty, recommendations for that customer),
so what the preview shows is what the customer gets; neither writes to the ledger, and test
messages carry no tracking (their links go straight to the destinations).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from campaigns.composition import (
    EMAIL_PARTS,
    PUSH_PARTS,
    Composer,
    TemplateError,
    email_templates,
    isolated_renderer,
    render_preview_parts,
)
from campaigns.delivery.email import EmailDelivery
from campaigns.models import Campaign, Channel, TestSend, Variant
from campaigns.rendering import DEFAULT_LIMITS, Mailbox, Tracking, build_email, render_email
from campaigns.services import context as message_context
from customers.models import Customer

logger = logging.getLogger(__name__)

MAX_TEST_ADDRESSES = 10
SAMPLE_CUSTOMER = {
    "first_name": "Alex",
    "last_name": "Example",
    "email": "alex@example.com",
    "locale": "en",
    "timezone": "Europe/London",
    "country": "GB",
    "attributes": {},
}


def _https(url: str) -> str:
    """Previews and test messages need an https unsubscribe URL (RFC 8058) even on an http dev site."""
    return "https://" + url.split("://", 1)[1] if url.startswith("http://") else url


def preview_context(
    *, customer: Customer | None, campaign: Campaign | None, variant: Variant | None = None
) -> dict:
    """The context a real send would build for `customer` (a sample customer when None)."""
    now = timezone.now()
    site_unsubscribe = _https(f"{Composer.site_url()}/t/u/preview/")
    if customer is None:
        row = dict(SAMPLE_CUSTOMER)
        loyalty = None
        recommendations: list[dict] = []
    else:
        row = {field: getattr(customer, field) for field in message_context.CUSTOMER_FIELDS}
        loyalty = message_context.loyalty_parts([customer.pk], now=now).get(customer.pk)
        recommendations = (
            message_context.recommendation_parts(
                [customer.pk], campaign=campaign, config=variant.recommender if variant else None
            ).get(customer.pk, [])
            if campaign is not None
            else message_context.recommendation_parts(
                [customer.pk], campaign=Campaign(recommendation_count=4)
            ).get(customer.pk, [])
        )
    stand_in = campaign or Campaign(name="Preview")
    return message_context.message_context(
        customer=row,
        loyalty=loyalty,
        recommendations=recommendations,
        campaign=stand_in,
        variant=variant,
        unsubscribe_url=site_unsubscribe,
        now=now,
    )


def preview(
    *,
    parts: Mapping[str, str],
    customer: Customer | None = None,
    campaign: Campaign | None = None,
    variant: Variant | None = None,
) -> dict[str, str]:
    """Render the given parts for a customer; raises TemplateError naming part and line.

    With a subject and an HTML body the whole email is built as it would be sent (layout, CSS
    inlined, text part written from the HTML when empty), without tracking. Other parts (push,
    a lone subject) are rendered as written. Rendering runs in the isolated child renderer:
    a template typed a minute ago is not trusted with this process.
    """
    known = set(EMAIL_PARTS) | set(PUSH_PARTS)
    chosen = {name: value for name, value in parts.items() if name in known and value}
    context = preview_context(customer=customer, campaign=campaign, variant=variant)
    if chosen.get("subject") and chosen.get("html"):
        rendered = render_email(email_templates(chosen), context, renderer=isolated_renderer())
        composer = Composer(campaign or Campaign(name="Preview"))
        built = build_email(
            rendered,
            sender=composer.sender,
            recipient=Mailbox(context["customer"]["email"] or "preview@example.com"),
            ledger_key="preview",
            message_id_domain=composer.domain,
            unsubscribe_url=context["links"]["unsubscribe_url"],
            tracking=Tracking(utm=composer.utm),
            require_https=settings.TRACKING_REQUIRE_HTTPS,
        )
        result = {"subject": built.subject, "html": built.html, "text": built.text}
        if rendered.preheader:
            result["preheader"] = rendered.preheader
        others = {k: v for k, v in chosen.items() if k not in EMAIL_PARTS}
        if others:
            result.update(render_preview_parts(parts=others, context=context))
        return result
    return render_preview_parts(parts=chosen, context=context)


def preview_variant(*, variant: Variant, customer: Customer | None = None) -> dict[str, str]:
    names = EMAIL_PARTS if variant.channel_on(variant.campaign) == Channel.EMAIL else PUSH_PARTS
    parts = {name: getattr(variant, name) for name in names}
    return preview(parts=parts, customer=customer, campaign=variant.campaign, variant=variant)


def clean_addresses(addresses: Any) -> list[str]:
    if not isinstance(addresses, list) or not addresses:
        raise ValidationError({"addresses": ["Give a list of one or more email addresses."]})
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise ValidationError({"addresses": [f"At most {MAX_TEST_ADDRESSES} addresses per test send."]})
    cleaned = []
    for address in addresses:
        value = str(address).strip()
        try:
            validate_email(value)
        except ValidationError:
            raise ValidationError({"addresses": [f"{value[:100]!r} is not an email address."]}) from None
        cleaned.append(value)
    return cleaned


def request_test_send(
    *,
    campaign: Campaign,
    variant: Variant,
    addresses: list[str],
    customer: Customer | None = None,
    requested_by=None,
) -> TestSend:
    """Record a test send and hand it to the sends queue (the worker gets an id, not the addresses)."""
    if variant.channel_on(campaign) != Channel.EMAIL:
        raise ValidationError({"channel": ["Test sends are for email variants; preview a push instead."]})
    user = requested_by if getattr(requested_by, "is_authenticated", False) else None
    test_send = TestSend.objects.create(
        campaign=campaign,
        variant=variant,
        customer=customer,
        addresses=clean_addresses(addresses),
        requested_by=user,
    )
    from campaigns.tasks import send_test

    transaction.on_commit(lambda: send_test.delay(test_send.pk))
    return test_send


def deliver_test_send(*, test_send_id: int) -> dict:
    test_send = TestSend.objects.select_related("campaign", "variant", "customer").get(pk=test_send_id)
    if test_send.state != TestSend.State.QUEUED:
        return test_send.result
    campaign, variant = test_send.campaign, test_send.variant
    results: dict[str, str] = {}
    composer = Composer(campaign, limits=DEFAULT_LIMITS, renderer=isolated_renderer())
    context = preview_context(customer=test_send.customer, campaign=campaign, variant=variant)
    context["links"]["unsubscribe_url"] = _https(f"{Composer.site_url()}/t/u/test/")
    with EmailDelivery() as delivery:
        for address in test_send.addresses:
            try:
                composed = composer.email(
                    send_id=0,
                    key=f"test:{test_send.pk}:{address}",
                    variant=variant,
                    context=context,
                    to=address,
                    tracked=False,
                    subject_prefix="[TEST] ",
                )
            except TemplateError as exc:
                test_send.state, test_send.result = TestSend.State.FAILED, {"errors": exc.as_dicts()}
                test_send.save(update_fields=["state", "result"])
                return test_send.result
            outcome = delivery.deliver(composed.message)
            results[address] = outcome.kind if not outcome.detail else f"{outcome.kind}: {outcome.detail}"
    ok = all(value == "sent" for value in results.values())
    test_send.state = TestSend.State.SENT if ok else TestSend.State.FAILED
    test_send.result = {"addresses": results}
    test_send.save(update_fields=["state", "result"])
    return test_send.result
