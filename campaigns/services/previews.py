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
#: A push test send's destinations are its subscriptions, recorded as "push:<subscription id>".
PUSH_TARGET = "push:"
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


def test_customers_named(external_ids: list[str]) -> list[Customer]:
    """The customers a push test goes to, by external id, in the given order (unknown ids refused)."""
    wanted = list(dict.fromkeys(str(value).strip() for value in external_ids if str(value).strip()))
    if len(wanted) > MAX_TEST_ADDRESSES:
        raise ValidationError(
            {"test_customers": [f"At most {MAX_TEST_ADDRESSES} test customers per test send."]}
        )
    found = {c.external_id: c for c in Customer.objects.filter(external_id__in=wanted)}
    unknown = [value for value in wanted if value not in found]
    if unknown:
        raise ValidationError(
            {"test_customers": [f"No customer with the external id {value[:100]!r}." for value in unknown]}
        )
    return [found[value] for value in wanted]


def push_test_targets(*, variant: Variant, customers: list[Customer] | None) -> list[str]:
    """Where a push test goes: every active push subscription of the chosen test customers.

    A push has no address to type in, so the marketer names customers (their own customer record,
    a colleague's) whose devices are subscribed. Each must have push consent and an active
    subscription; the test send records the subscriptions as `push:<id>` destinations.
    """
    if not customers:
        raise ValidationError(
            {
                "test_customers": [
                    f"Variant {variant.name} goes out by push: a push test goes to the push subscriptions "
                    "of test customers. Choose one or more customers (e.g. your own customer record) with "
                    "push consent and an active push subscription."
                ]
            }
        )
    if len(customers) > MAX_TEST_ADDRESSES:
        raise ValidationError(
            {"test_customers": [f"At most {MAX_TEST_ADDRESSES} test customers per test send."]}
        )
    from customers.models import PushSubscription
    from customers.selectors import customers_with_consent

    ids = [c.pk for c in customers]
    consenting = set(
        customers_with_consent(
            channel=Channel.PUSH, queryset=Customer.objects.filter(pk__in=ids)
        ).values_list("pk", flat=True)
    )
    subscriptions: dict[int, list[int]] = {}
    for customer_id, subscription_id in (
        PushSubscription.objects.filter(customer_id__in=ids, active=True)
        .order_by("customer_id", "pk")
        .values_list("customer_id", "pk")
    ):
        subscriptions.setdefault(customer_id, []).append(subscription_id)
    problems = []
    for customer in customers:
        if customer.pk not in consenting:
            problems.append(f"{customer.external_id}: no push consent on record.")
        elif not subscriptions.get(customer.pk):
            problems.append(f"{customer.external_id}: no active push subscription.")
    if problems:
        raise ValidationError({"test_customers": problems})
    return [f"{PUSH_TARGET}{sid}" for customer in customers for sid in subscriptions[customer.pk]]


def request_test_send(
    *,
    campaign: Campaign,
    variant: Variant,
    addresses: list[str] | None = None,
    customer: Customer | None = None,
    requested_by=None,
    test_customers: list[Customer] | None = None,
) -> TestSend:
    """Record a test send and hand it to the sends queue (the worker gets an id, not the addresses).

    An email variant goes to the given addresses; a push variant to the push subscriptions of the
    given test customers (`push_test_targets`).
    """
    if variant.channel_on(campaign) == Channel.PUSH:
        if addresses:
            raise ValidationError(
                {
                    "addresses": [
                        f"Variant {variant.name} goes out by push: choose test customers whose devices get "
                        "the test, not email addresses."
                    ]
                }
            )
        destinations = push_test_targets(variant=variant, customers=test_customers)
    else:
        if test_customers:
            raise ValidationError(
                {
                    "test_customers": [
                        f"Variant {variant.name} goes out by email: give email addresses; test customers "
                        "are for push variants."
                    ]
                }
            )
        destinations = clean_addresses(addresses)
    user = requested_by if getattr(requested_by, "is_authenticated", False) else None
    test_send = TestSend.objects.create(
        campaign=campaign,
        variant=variant,
        customer=customer,
        addresses=destinations,
        requested_by=user,
    )
    from campaigns.tasks import send_test

    transaction.on_commit(lambda: send_test.delay(test_send.pk))
    return test_send


def deliver_test_send(*, test_send_id: int) -> dict:
    test_send = TestSend.objects.select_related("campaign", "variant", "customer").get(pk=test_send_id)
    if test_send.state != TestSend.State.QUEUED:
        return test_send.result
    if test_send.addresses and all(str(a).startswith(PUSH_TARGET) for a in test_send.addresses):
        return _deliver_push_test(test_send)
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


def _deliver_push_test(test_send: TestSend) -> dict:
    """Each recorded subscription gets the variant's push, untracked, its title marked [TEST].

    The template is filled with the chosen customer's data, else with the test customer's own.
    """
    from campaigns.delivery.push import PushDelivery, Subscription, deactivate
    from customers.models import PushSubscription

    campaign, variant = test_send.campaign, test_send.variant
    wanted = {int(str(a)[len(PUSH_TARGET) :]): str(a) for a in test_send.addresses}
    found = {
        s.pk: s
        for s in PushSubscription.objects.filter(pk__in=list(wanted), active=True).select_related("customer")
    }
    composer = Composer(campaign, limits=DEFAULT_LIMITS, renderer=isolated_renderer())
    composer.utm["utm_medium"] = campaign.utm_medium or Channel.PUSH
    contexts: dict[int, dict] = {}
    results: dict[str, str] = {}
    with PushDelivery() as delivery:
        for subscription_id, target in wanted.items():
            subscription = found.get(subscription_id)
            if subscription is None:
                results[target] = "failed: the subscription is no longer active"
                continue
            data_customer = test_send.customer or subscription.customer
            if data_customer.pk not in contexts:
                context = preview_context(customer=data_customer, campaign=campaign, variant=variant)
                context["links"]["unsubscribe_url"] = _https(f"{Composer.site_url()}/t/u/test/")
                contexts[data_customer.pk] = context
            try:
                composed = composer.push(
                    send_id=0,
                    key=f"test:{test_send.pk}:{target}",
                    variant=variant,
                    context=contexts[data_customer.pk],
                    tracked=False,
                )
            except TemplateError as exc:
                test_send.state, test_send.result = TestSend.State.FAILED, {"errors": exc.as_dicts()}
                test_send.save(update_fields=["state", "result"])
                return test_send.result
            payload = {**composed.message, "title": "[TEST] " + composed.message["title"]}
            outcome = delivery.deliver(
                payload,
                [
                    Subscription(
                        subscription.pk,
                        subscription.kind,
                        subscription.endpoint,
                        subscription.p256dh,
                        subscription.auth,
                        subscription.token,
                    )
                ],
            )
            deactivate(list(outcome.dead_subscriptions))
            results[target] = outcome.kind if not outcome.detail else f"{outcome.kind}: {outcome.detail}"
    ok = all(value == "sent" for value in results.values())
    test_send.state = TestSend.State.SENT if ok else TestSend.State.FAILED
    test_send.result = {"addresses": results}
    test_send.save(update_fields=["state", "result"])
    return test_send.result
