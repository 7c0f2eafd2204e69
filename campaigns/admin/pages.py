"""The builder's own pages and the small JSON endpoints behind its live parts.

Audience count, template editor with live preview, preview frame, test send, progress and the
report. The endpoints answer JSON and are read-only except where the user may change the campaign.
"""

from __future__ import annotations

import csv

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from access.services import audit_request
from campaigns.admin.transitions import OFFERED
from campaigns.composition import TemplateError
from campaigns.models import Campaign, TestSend, Variant
from campaigns.services import lifecycle, previews, results
from customers.models import Customer
from customers.selectors import customers_with_consent
from segments.models import Segment

#: Template parts the editor shows, by channel, and their labels.
PART_LABELS = {
    "subject": "Subject",
    "preheader": "Preheader",
    "html": "HTML body",
    "text": "Text body (empty: written from the HTML)",
    "push_title": "Push title",
    "push_body": "Push body",
    "push_url": "Push link",
}
PART_NAMES = tuple(PART_LABELS)
EMAIL_EDITOR = ("subject", "preheader", "html", "text")
PUSH_EDITOR = ("push_title", "push_body", "push_url")


class BuilderPages:
    """Views of CampaignAdmin beyond the change form (mixed into it; `_campaign` and `_context` come from it)."""

    def audience_count(self, request):
        """Live audience size for the builder: ?include=<id>&exclude=<id>[&channel=email]."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        errors = []
        ids: dict[str, list[int]] = {}
        for field in ("include", "exclude"):
            raw = request.GET.getlist(field)
            bad = [value for value in raw if not value.isdigit()]
            if bad:
                errors.append({"field": field, "message": "Segment ids are whole numbers."})
            ids[field] = [int(value) for value in raw if value.isdigit()][:200]
        channel = request.GET.get("channel", "")
        if channel and channel not in dict(Campaign._meta.get_field("channel").choices):
            errors.append({"field": "channel", "message": f"Unknown channel {channel!r}."})
        if errors:
            return JsonResponse({"errors": errors}, status=400)
        from segments.selectors import audience as audience_of

        members = audience_of(
            include=Segment.objects.filter(pk__in=ids["include"]),
            exclude=Segment.objects.filter(pk__in=ids["exclude"]),
        )
        data = {"include": ids["include"], "exclude": ids["exclude"], "count": members.count()}
        if channel:
            data["channel"] = channel
            data["reachable"] = customers_with_consent(channel=channel, queryset=members).count()
        return JsonResponse(data)

    def preview_render(self, request, pk: int):
        """Render unsaved template parts for a customer (the editor's live preview), as JSON."""
        campaign = self._campaign(request, pk)
        if request.method != "POST":
            return JsonResponse({"errors": [{"field": "", "message": "POST the parts."}]}, status=405)
        parts = {name: request.POST.get(name, "") for name in PART_NAMES}
        too_long = [name for name, value in parts.items() if len(value) > 200_000]
        if too_long:
            return JsonResponse(
                {"errors": [{"field": n, "line": None, "message": "Too long."} for n in too_long]}, status=400
            )
        external_id = request.POST.get("customer", "").strip()
        customer = _customer(external_id)
        if external_id and customer is None:
            return JsonResponse(
                {"errors": [{"field": "customer", "line": None, "message": "No customer with that id."}]},
                status=400,
            )
        # The variant's own recommender (an experiment comparing algorithms), if the editor sent one.
        recommender_id = request.POST.get("recommender", "").strip()
        stand_in = None
        if recommender_id.isdigit():
            from recommender.models import RecommenderConfig

            config = RecommenderConfig.objects.filter(pk=int(recommender_id)).first()
            if config is not None:
                stand_in = Variant(
                    campaign=campaign, name=request.POST.get("name", "")[:64] or "A", recommender=config
                )
        try:
            rendered = previews.preview(parts=parts, customer=customer, campaign=campaign, variant=stand_in)
        except TemplateError as exc:
            return JsonResponse({"errors": exc.as_dicts()}, status=400)
        return JsonResponse({"rendered": rendered, "customer": customer.external_id if customer else None})

    def preview_view(self, request, pk: int):
        """The template editor: the variant's parts on the left, a live preview on the right."""
        campaign = self._campaign(request, pk)
        variants = list(campaign.variants.order_by("id"))
        frame = reverse("admin:campaigns_campaign_preview_frame", args=[campaign.pk])
        variant = (
            request.POST.get("variant")
            or request.GET.get("variant")
            or (str(variants[0].pk) if variants else "")
        )
        customer = (request.POST.get("customer") or request.GET.get("customer", "")).strip()
        chosen = next((v for v in variants if str(v.pk) == variant), None)
        can_save = (
            chosen is not None
            and campaign.status in lifecycle.EDITABLE
            and self.has_change_permission(request, campaign)
        )
        if request.method == "POST":
            if not can_save:
                raise PermissionDenied
            changed = [
                name
                for name in PART_NAMES
                if name in request.POST and request.POST[name] != getattr(chosen, name)
            ]
            for name in changed:
                setattr(chosen, name, request.POST[name])
            try:
                chosen.full_clean()
            except DjangoValidationError as exc:
                for field, problems in exc.message_dict.items():
                    for problem in problems:
                        messages.error(request, f"{field}: {problem}")
            else:
                chosen.save()
                audit_request(
                    request,
                    action="campaign.variant_changed",
                    target=campaign,
                    details={"variant": chosen.name, "fields": changed},
                )
                messages.success(request, f"Variant {chosen.name} saved.")
                return HttpResponseRedirect(f"{request.path}?variant={chosen.pk}&customer={customer}")
        rendered, errors = {}, []
        if chosen is not None:
            try:
                rendered = previews.preview_variant(variant=chosen, customer=_customer(customer))
            except TemplateError as exc:
                errors = exc.as_dicts()
        return TemplateResponse(
            request,
            "admin/campaigns/preview.html",
            self._context(
                request,
                campaign,
                f"Template editor and preview of “{campaign}”",
                variants=variants,
                variant=variant,
                chosen=chosen,
                parts=[
                    (name, PART_LABELS[name], getattr(chosen, name) if chosen else "")
                    for name in (EMAIL_EDITOR if campaign.channel == "email" else PUSH_EDITOR)
                ],
                can_save=can_save,
                customer=customer,
                sample_customers=list(
                    Customer.objects.order_by("id").values_list("external_id", flat=True)[:1]
                ),
                render_url=reverse("admin:campaigns_campaign_preview_render", args=[campaign.pk]),
                frame_url=f"{frame}?variant={variant}&customer={customer}",
                rendered=rendered,
                errors=errors,
            ),
        )

    def preview_frame(self, request, pk: int):
        """The HTML part alone, for the iframe (sandboxed in the page: no scripts, no forms)."""
        campaign = self._campaign(request, pk)
        variant = campaign.variants.filter(pk=request.GET.get("variant") or 0).first()
        if variant is None:
            return HttpResponse("Choose a variant.", content_type="text/plain")
        try:
            rendered = previews.preview_variant(
                variant=variant, customer=_customer(request.GET.get("customer", ""))
            )
        except TemplateError as exc:
            return HttpResponse(str(exc), content_type="text/plain", status=400)
        body = rendered.get("html") or rendered.get("text") or rendered.get("push_body", "")
        response = HttpResponse(body, content_type="text/html" if rendered.get("html") else "text/plain")
        response["Content-Security-Policy"] = (
            "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
        )
        response["X-Frame-Options"] = "SAMEORIGIN"
        return response

    def test_send_view(self, request, pk: int):
        campaign = self._campaign(request, pk, change=True)
        variants = list(campaign.variants.order_by("id"))
        if request.method == "POST":
            addresses = [
                a.strip()
                for a in request.POST.get("addresses", "").replace(",", "\n").splitlines()
                if a.strip()
            ]
            variant = next(
                (v for v in variants if str(v.pk) == request.POST.get("variant")),
                variants[0] if variants else None,
            )
            customer = _customer(request.POST.get("customer", ""))
            named = request.POST.get("test_customers", "").replace(",", "\n").splitlines()
            try:
                if variant is None:
                    raise DjangoValidationError({"variant": ["Add a variant first."]})
                test_send = previews.request_test_send(
                    campaign=campaign,
                    variant=variant,
                    addresses=addresses,
                    customer=customer,
                    requested_by=request.user,
                    test_customers=previews.test_customers_named(named),
                )
            except DjangoValidationError as exc:
                for problems in exc.message_dict.values():
                    for problem in problems:
                        messages.error(request, problem)
            else:
                audit_request(
                    request,
                    action="campaign.test_sent",
                    target=campaign,
                    details={"addresses": len(test_send.addresses), "channel": variant.channel_on(campaign)},
                )
                test_send.refresh_from_db()
                messages.success(request, f"Test send #{test_send.pk}: {test_send.state}.")
                return HttpResponseRedirect(reverse("admin:campaigns_campaign_test_send", args=[campaign.pk]))
        recent = TestSend.objects.filter(campaign=campaign).order_by("-created_at")[:10]
        return TemplateResponse(
            request,
            "admin/campaigns/test_send.html",
            self._context(
                request,
                campaign,
                f"Test send of “{campaign}”",
                variants=[(v, v.channel_on(campaign)) for v in variants],
                recent=recent,
            ),
        )

    def progress_view(self, request, pk: int):
        campaign = self._campaign(request, pk)
        data = results.progress(campaign=campaign)
        # What the status card needs to follow a change of status without a reload.
        data["status_display"] = campaign.get_status_display()
        data["offered"] = list(OFFERED.get(campaign.status, ()))
        if request.GET.get("format") == "json":
            return JsonResponse(data, json_dumps_params={"default": str})
        return TemplateResponse(
            request,
            "admin/campaigns/progress.html",
            self._context(request, campaign, f"Progress of “{campaign}”", data=data),
        )

    def report_view(self, request, pk: int):
        campaign = self._campaign(request, pk)
        bucket = request.GET.get("bucket", "day") if request.GET.get("bucket") in results.BUCKETS else "day"
        report = results.campaign_report(campaign=campaign, bucket=bucket)
        metrics = [k for k in report["totals"] if k not in ("revenue_per_recipient",)]
        if request.GET.get("format") == "csv":
            return _report_csv(request, campaign, report, metrics)
        return TemplateResponse(
            request,
            "admin/campaigns/report.html",
            self._context(
                request, campaign, f"Report of “{campaign}”", report=report, metrics=metrics, bucket=bucket
            ),
        )


def _report_csv(request, campaign: Campaign, report: dict, metrics: list[str]) -> HttpResponse:
    """The per-variant table as CSV, the export an analyst takes to a spreadsheet."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-report.csv"'
    writer = csv.writer(response)
    if report.get("channels"):
        # Variants on several channels: each row says its channel, and each channel has a total.
        writer.writerow(["variant", "channel", *metrics])
        per_channel = [{**row, "variant": "total"} for row in report["channels"]]
        for row in [*report["variants"], *per_channel, {**report["totals"], "variant": "total"}]:
            writer.writerow(
                [row.get("variant"), row.get("channel") or "", *[row.get(m, "") for m in metrics]]
            )
    else:
        writer.writerow(["variant", *metrics])
        for row in [*report["variants"], {**report["totals"], "variant": "total"}]:
            writer.writerow([row.get("variant"), *[row.get(m, "") for m in metrics]])
    audit_request(request, action="export.campaign_report", target=campaign)
    return response


def _customer(external_id: str) -> Customer | None:
    return Customer.objects.filter(external_id=external_id).first() if external_id else None
