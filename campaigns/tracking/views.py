"""Public tracking endpoints: open pixel, click and push-click redirects, unsubscribe, provider webhooks.

No login, no personal data in the URL: each carries a signed token (see `tokens`). A bad token
is a 404 (or, for the pixel, the same transparent GIF with nothing recorded), never a redirect
to anything the request supplied. GET on the unsubscribe URL only shows a confirmation page:
mail scanners fetch every link, and a GET that unsubscribed would unsubscribe people by accident.
The POST (a form button or an RFC 8058 one-click POST from the mail client) unsubscribes.
"""

from __future__ import annotations

import base64

from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns.models import Send
from campaigns.tracking import engagement, tokens
from campaigns.tracking.webhooks import WebhookRejected, handle_signed_delivery_event

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
TEST_TOKENS = ("test", "preview")


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


@never_cache
@require_GET
def open_pixel(request, token: str):
    try:
        send_id, _ = tokens.read_token(token, purpose=tokens.OPEN)
    except tokens.BadToken:
        send_id = None
    if send_id is not None:
        engagement.record_open(send_id=send_id, user_agent=_agent(request), ip=_client_ip(request))
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store, private"
    return response


def _redirect(request, token: str, purpose: str):
    try:
        send_id, link_hash = tokens.read_token(token, purpose=purpose)
    except tokens.BadToken:
        raise Http404("Unknown link") from None
    url = engagement.resolve_click(
        send_id=send_id,
        link_hash=link_hash,
        user_agent=_agent(request),
        ip=_client_ip(request),
        push=purpose == tokens.PUSH_CLICK,
    )
    if url is None or not url.lower().startswith(("http://", "https://")):
        raise Http404("Unknown link")
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store, private"
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
def click(request, token: str):
    return _redirect(request, token, tokens.CLICK)


@never_cache
@require_GET
def push_click(request, token: str):
    return _redirect(request, token, tokens.PUSH_CLICK)


def _masked(email: str) -> str:
    local, _, domain = (email or "").partition("@")
    if not domain:
        return ""
    return f"{local[:1]}{'•' * max(len(local) - 1, 2)}@{domain}"


@csrf_exempt  # the signed token is the credential; RFC 8058 POSTs come from mail providers
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    if token in TEST_TOKENS:
        return render(request, "campaigns/unsubscribe.html", {"test": True})
    try:
        send_id, _ = tokens.read_token(token, purpose=tokens.UNSUBSCRIBE)
    except tokens.BadToken:
        raise Http404("Unknown link") from None
    send = Send.objects.select_related("customer", "campaign").filter(pk=send_id).first()
    if send is None:
        raise Http404("Unknown link")
    context = {
        "channel": send.channel,
        "address": _masked(send.customer.email),
        "company": send.campaign.name,
    }
    if request.method == "GET":
        return render(request, "campaigns/unsubscribe.html", {**context, "confirm": True})
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    engagement.unsubscribe(
        send_id=send.pk,
        source="unsubscribe_link" if not one_click else "unsubscribe_one_click",
        ip=_client_ip(request),
    )
    return render(request, "campaigns/unsubscribe.html", {**context, "done": True})


@csrf_exempt
@require_POST
def delivery_webhook(request):
    try:
        result = handle_signed_delivery_event(
            body=request.body, signature=request.META.get("HTTP_X_REACHLY_SIGNATURE", "")
        )
    except WebhookRejected as exc:
        return JsonResponse({"detail": exc.message}, status=exc.status)
    return JsonResponse(result)


# Provider payloads anymail could not make sense of (a list where it expects an object, a missing
# key): the sender's malformed request, answered 400 so the provider stops retrying it. Database and
# other server faults are not among these and still answer 500 (the provider retries later).
_MALFORMED_PAYLOAD = (TypeError, KeyError, IndexError, AttributeError, ValueError, RecursionError)


def _anymail_webhook_secret() -> list | str:
    from django.conf import settings

    anymail = getattr(settings, "ANYMAIL", None) or {}
    return anymail.get("WEBHOOK_SECRET") or getattr(settings, "ANYMAIL_WEBHOOK_SECRET", "")


def guard_esp_webhook(view):
    """anymail's webhook views, refused unless basic-auth credentials are configured.

    Without ANYMAIL["WEBHOOK_SECRET"] anymail only warns and accepts anyone's POST, and a forged
    "bounced" or "complained" event names its send by a sequential id: it would suppress customers
    and pause campaigns. Like /t/webhooks/delivery/ without its secret, the door stays shut (503).
    """
    from functools import wraps

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not _anymail_webhook_secret():
            return JsonResponse(
                {"detail": "ESP webhooks are not configured (ANYMAIL WEBHOOK_SECRET)."}, status=503
            )
        try:
            return view(request, *args, **kwargs)
        except _MALFORMED_PAYLOAD as exc:
            return JsonResponse(
                {"detail": f"Malformed provider webhook ({exc.__class__.__name__})."}, status=400
            )

    return guarded
