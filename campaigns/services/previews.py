"""Previews and test sends: a marketer sees the message as one customer would, before launch.

Both use the same context builder as a real send (loyalty, recommendations for that customer),
so what the preview shows is what the customer gets; neither writes to the ledger, and test
messages carry no tracking (their links go straight to the destinations).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from campaigns.composition import (
    EMAIL_PARTS,
    PUSH_PARTS,
    Composer,
    TemplateError,
    build_email_message,
    parts_for,
    render_preview,
    text_from_html,
)
from campaigns.delivery.email import EmailDelivery
from campaigns.models import Campaign, Channel, TestSend, Variant
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


def preview_context(
    *, customer: Customer | None, campaign: Campaign | None, variant: Variant | None = None
) -> dict:
    """The context a real send would build for `customer` (a sample customer when None)."""
    now = timezone.now()
    site_unsubscribe = f"{Composer.site_url()}/t/u/preview/"
    if customer is None:
        row = dict(SAMPLE_CUSTOMER)
        loyalty = None
        recommendations: list[dict] = []
    else:
        row = {field: getattr(customer, field) for field in message_context.CUSTOMER_FIELDS}
        loyalty = message_context.loyalty_parts([customer.pk], now=now).get(customer.pk)
        recommendations = (
            message_context.recommendation_parts([customer.pk], campaign=campaign).get(customer.pk, [])
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
    *, parts: Mapping[str, str], customer: Customer | None = None, campaign: Campaign | None = None
) -> dict[str, str]:
    """Render the given parts for a customer; raises TemplateError naming field and line."""
    known = set(EMAIL_PARTS) | set(PUSH_PARTS)
    chosen = {name: value for name, value in parts.items() if name in known and value}
    rendered = render_preview(parts=chosen, context=preview_context(customer=customer, campaign=campaign))
    if "html" in rendered and not rendered.get("text"):
        rendered["text"] = text_from_html(rendered["html"])
    return rendered


def preview_variant(*, variant: Variant, customer: Customer | None = None) -> dict[str, str]:
    return preview(
        parts=parts_for(variant.campaign.channel, variant.parts()),
        customer=customer,
        campaign=variant.campaign,
    )


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
    if campaign.channel != Channel.EMAIL:
        raise ValidationError({"channel": ["Test sends are for email campaigns; preview a push instead."]})
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
    try:
        rendered = preview_variant(variant=variant, customer=test_send.customer)
    except TemplateError as exc:
        test_send.state, test_send.result = TestSend.State.FAILED, {"errors": exc.as_dicts()}
        test_send.save(update_fields=["state", "result"])
        return test_send.result
    rendered["subject"] = f"[TEST] {rendered.get('subject', '')}"
    composer = Composer(campaign)
    with EmailDelivery() as delivery:
        for address in test_send.addresses:
            message, _ = build_email_message(
                rendered=rendered,
                from_email=composer.from_email,
                to=address,
                reply_to=campaign.reply_to,
                headers={"X-Reachly-Test": "1"},
                rewrite_link=None,
                untracked=(),
                utm=composer.utm,
                open_pixel_url=None,
                unsubscribe_url=None,
                connection=delivery.connection,
            )
            outcome = delivery.deliver(message)
            results[address] = outcome.kind if not outcome.detail else f"{outcome.kind}: {outcome.detail}"
    ok = all(value == "sent" for value in results.values())
    test_send.state = TestSend.State.SENT if ok else TestSend.State.FAILED
    test_send.result = {"addresses": results}
    test_send.save(update_fields=["state", "result"])
    return test_send.result
