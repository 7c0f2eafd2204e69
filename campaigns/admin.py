"""The marketer's campaign builder in the Django admin: audience, schedule, variants, preview,
test send, launch/pause/resume/cancel with confirmation, progress and the report.

Every action goes through the same services as the API and is audited; the admin never changes
a status itself. The small endpoints behind the page's live parts (audience count, template
preview, progress) answer JSON and are read-only except where the user may change the campaign.
"""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from access.exports import export_as_csv
from access.services import audit_request
from campaigns.composition import TemplateError
from campaigns.models import (
    Campaign,
    CampaignRun,
    MessageTemplate,
    Send,
    TestSend,
    TrackingEvent,
    Variant,
)
from campaigns.services import lifecycle, previews, results
from campaigns.services.launch import LaunchError, launch_campaign
from customers.models import Customer
from customers.selectors import customers_with_consent
from segments.models import Segment

TRANSITIONS = {
    "launch": ("Launch", lambda c, reason: launch_campaign(campaign=c), "launched"),
    "pause": (
        "Pause",
        lambda c, reason: lifecycle.pause_campaign(campaign=c, reason=reason or "Paused by a marketer"),
        "paused",
    ),
    "resume": ("Resume", lambda c, reason: lifecycle.resume_campaign(campaign=c), "resumed"),
    "cancel": (
        "Cancel",
        lambda c, reason: lifecycle.cancel_campaign(campaign=c, reason=reason or "Cancelled by a marketer"),
        "cancelled",
    ),
}
#: Which buttons a status offers.
OFFERED = {
    "draft": ("launch", "cancel"),
    "scheduled": ("pause", "cancel"),
    "sending": ("pause", "cancel"),
    "paused": ("resume", "cancel"),
    "sent": (),
    "cancelled": (),
}

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


class VariantInline(admin.StackedInline):
    model = Variant
    extra = 0
    min_num = 1
    max_num = 8
    fields = [
        ("name", "weight"),
        "subject",
        "preheader",
        "html",
        "text",
        ("push_title", "push_url"),
        "push_body",
        "push_icon",
        "based_on",
        ("channel", "send_local_time", "send_delay_minutes", "recommender"),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if (
            db_field.name in ("subject", "preheader", "push_title", "push_url", "push_icon")
            and field is not None
        ):
            field.widget = forms.TextInput(attrs={"size": 100})
        elif db_field.name in ("html", "text") and field is not None:
            field.widget = forms.Textarea(attrs={"rows": 14, "cols": 110, "style": "font-family: monospace"})
        return field

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (
            obj is None or obj.status in lifecycle.EDITABLE
        )

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "status_badge", "schedule_kind", "launched_at", "progress_link"]
    list_filter = ["status", "channel", "schedule_kind"]
    search_fields = ["name"]
    inlines = [VariantInline]
    actions = [export_as_csv]
    change_form_template = "admin/campaigns/campaign/change_form.html"
    readonly_fields = ["status", "status_reason", "launched_at", "finished_at", "next_run_at", "buttons"]
    fieldsets = [
        (None, {"fields": ["name", "channel", "status", "status_reason", "buttons"]}),
        ("Audience", {"fields": ["include_segments", "exclude_segments"]}),
        (
            "Schedule",
            {
                "fields": [
                    "schedule_kind",
                    "send_at",
                    ("local_send_date", "local_send_time"),
                    ("cron", "schedule_timezone", "next_run_at"),
                    ("trigger_kind", "trigger_event_type", "trigger_event_name"),
                    ("trigger_segment", "trigger_points_days", "trigger_delay_minutes"),
                ]
            },
        ),
        (
            "Sender and links",
            {
                "fields": [
                    ("from_name", "from_email", "reply_to"),
                    ("utm_source", "utm_medium", "utm_campaign"),
                    "conversion_window_hours",
                ]
            },
        ),
        (
            "Send limits",
            {
                "fields": [
                    ("cap_messages", "cap_period_hours", "cap_overflow"),
                    ("quiet_hours_start", "quiet_hours_end"),
                    "send_rate",
                ],
                "classes": ["collapse"],
                "description": "Frequency cap across campaigns, quiet hours in the customer's timezone, and a rate.",
            },
        ),
        (
            "Experiment",
            {
                "fields": ["control_percent"],
                "description": "Variants and their weights are below; the control group gets nothing "
                "and is compared with the variants (the global holdout is set for the whole site).",
            },
        ),
        (
            "Recommendations",
            {
                "fields": [
                    ("recommendation_count", "recommendation_in_stock_only"),
                    "recommendation_categories",
                    "recommendation_brands",
                    "recommendation_exclude_skus",
                ]
            },
        ),
        ("Timeline", {"fields": ["launched_at", "finished_at"], "classes": ["collapse"]}),
    ]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name in ("include_segments", "exclude_segments"):
            kwargs["widget"] = forms.CheckboxSelectMultiple(attrs={"data-audience": db_field.name})
            kwargs["queryset"] = Segment.objects.filter(active=True).order_by("name")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_fieldsets(self, request, obj=None):
        count_url = reverse("admin:campaigns_campaign_audience_count")
        fieldsets = []
        for name, options in super().get_fieldsets(request, obj):
            if name == "Audience":
                options = {
                    **options,
                    "description": format_html(
                        "Customers in any included segment and none of the excluded ones. "
                        '<span class="live-count" data-audience-count-url="{}" aria-live="polite">…</span>',
                        count_url,
                    ),
                }
            fieldsets.append((name, options))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status not in lifecycle.EDITABLE:
            fields += [f.name for f in Campaign._meta.fields if f.name not in fields] + [
                "include_segments",
                "exclude_segments",
            ]
        return fields

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        tone = {"sent": "ok", "sending": "", "scheduled": "", "paused": "warn", "cancelled": "bad"}
        return format_html(
            '<span class="badge {}">{}</span>', tone.get(obj.status, "warn"), obj.get_status_display()
        )

    @admin.display(description="Progress")
    def progress_link(self, obj):
        return format_html(
            '<a href="{}">progress</a> · <a href="{}">report</a>',
            reverse("admin:campaigns_campaign_progress", args=[obj.pk]),
            reverse("admin:campaigns_campaign_report", args=[obj.pk]),
        )

    @admin.display(description="Actions")
    def buttons(self, obj):
        if obj is None or obj.pk is None:
            return "Save the draft first."
        links = [
            (TRANSITIONS[verb][0], reverse("admin:campaigns_campaign_transition", args=[obj.pk, verb]))
            for verb in OFFERED.get(obj.status, ())
        ]
        links += [
            ("Preview", reverse("admin:campaigns_campaign_preview", args=[obj.pk])),
            ("Test send", reverse("admin:campaigns_campaign_test_send", args=[obj.pk])),
            ("Progress", reverse("admin:campaigns_campaign_progress", args=[obj.pk])),
            ("Report", reverse("admin:campaigns_campaign_report", args=[obj.pk])),
        ]
        return format_html(
            " ".join(['<a class="button" href="{}">{}</a>'] * len(links)),
            *[part for label, url in links for part in (url, label)],
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.status not in lifecycle.EDITABLE:
            # Launched: every field is read-only, so offer no save buttons that could only fail.
            context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        if change and obj.status not in lifecycle.EDITABLE:
            raise PermissionDenied("This campaign can no longer be changed.")
        if not change and obj.created_by_id is None and request.user.is_authenticated:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        audit_request(
            request,
            action="campaign.changed" if change else "campaign.created",
            target=obj,
            details={"fields": sorted(form.changed_data)},
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("audience-count/", wrap(self.audience_count), name="campaigns_campaign_audience_count"),
            path(
                "<int:pk>/preview/render/",
                wrap(self.preview_render),
                name="campaigns_campaign_preview_render",
            ),
            path(
                "<int:pk>/transition/<str:verb>/",
                wrap(self.transition_view),
                name="campaigns_campaign_transition",
            ),
            path("<int:pk>/preview/", wrap(self.preview_view), name="campaigns_campaign_preview"),
            path(
                "<int:pk>/preview/frame/", wrap(self.preview_frame), name="campaigns_campaign_preview_frame"
            ),
            path("<int:pk>/test-send/", wrap(self.test_send_view), name="campaigns_campaign_test_send"),
            path("<int:pk>/progress/", wrap(self.progress_view), name="campaigns_campaign_progress"),
            path("<int:pk>/report/", wrap(self.report_view), name="campaigns_campaign_report"),
            *super().get_urls(),
        ]

    def _campaign(self, request, pk: int, *, change: bool = False) -> Campaign:
        campaign = get_object_or_404(Campaign, pk=pk)
        allowed = (
            self.has_change_permission(request, campaign)
            if change
            else self.has_view_permission(request, campaign)
        )
        if not allowed:
            raise PermissionDenied
        return campaign

    def _context(self, request, campaign: Campaign, title: str, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": campaign,
            "campaign": campaign,
            "title": title,
            **extra,
        }

    def transition_view(self, request, pk: int, verb: str):
        if verb not in TRANSITIONS:
            raise PermissionDenied
        campaign = self._campaign(request, pk, change=True)
        label, run, past = TRANSITIONS[verb]
        change_url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        if request.method == "POST":
            try:
                campaign = run(campaign, request.POST.get("reason", "").strip()[:200])
            except LaunchError as exc:
                for field, problems in exc.errors.items():
                    for problem in problems:
                        messages.error(request, f"{field}: {problem}")
                return HttpResponseRedirect(change_url)
            except lifecycle.TransitionError as exc:
                messages.error(request, str(exc))
                return HttpResponseRedirect(change_url)
            audit_request(
                request, action=f"campaign.{past}", target=campaign, details={"status": campaign.status}
            )
            messages.success(request, f"“{campaign}” {past}: now {campaign.get_status_display().lower()}.")
            return HttpResponseRedirect(change_url)
        audience = None
        if verb == "launch":
            from segments.selectors import audience as audience_of

            audience = audience_of(
                include=campaign.include_segments.all(), exclude=campaign.exclude_segments.all()
            ).count()
        return TemplateResponse(
            request,
            "admin/campaigns/confirm_transition.html",
            self._context(
                request, campaign, f"{label} “{campaign}”?", verb=verb, label=label, audience=audience
            ),
        )

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
        try:
            rendered = previews.preview(parts=parts, customer=customer, campaign=campaign)
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
            try:
                if variant is None:
                    raise DjangoValidationError({"variant": ["Add a variant first."]})
                test_send = previews.request_test_send(
                    campaign=campaign,
                    variant=variant,
                    addresses=addresses,
                    customer=customer,
                    requested_by=request.user,
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
                    details={"addresses": len(addresses)},
                )
                test_send.refresh_from_db()
                messages.success(request, f"Test send #{test_send.pk}: {test_send.state}.")
                return HttpResponseRedirect(reverse("admin:campaigns_campaign_test_send", args=[campaign.pk]))
        recent = TestSend.objects.filter(campaign=campaign).order_by("-created_at")[:10]
        return TemplateResponse(
            request,
            "admin/campaigns/test_send.html",
            self._context(request, campaign, f"Test send of “{campaign}”", variants=variants, recent=recent),
        )

    def progress_view(self, request, pk: int):
        campaign = self._campaign(request, pk)
        data = results.progress(campaign=campaign)
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
    writer.writerow(["variant", *metrics])
    for row in [*report["variants"], {**report["totals"], "variant": "total"}]:
        writer.writerow([row.get("variant"), *[row.get(m, "") for m in metrics]])
    audit_request(request, action="export.campaign_report", target=campaign)
    return response


def _customer(external_id: str) -> Customer | None:
    return Customer.objects.filter(external_id=external_id).first() if external_id else None


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "updated_at"]
    search_fields = ["name"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Send)
class SendAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "campaign",
        "variant",
        "customer",
        "channel",
        "arm",
        "state",
        "reason",
        "not_before",
        "attempts",
        "kills",
        "sent_at",
    ]
    list_filter = ["state", "channel", "arm", "campaign"]
    search_fields = ["customer__external_id", "reason"]
    list_select_related = ["campaign", "variant", "customer"]
    show_full_result_count = False


@admin.register(CampaignRun)
class CampaignRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "key", "state", "scheduled_for", "audience_size", "finished_at"]
    list_filter = ["state", "campaign"]


@admin.register(TrackingEvent)
class TrackingEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "variant", "kind", "machine", "machine_reason", "occurred_at"]
    list_filter = ["kind", "machine", "campaign"]
    show_full_result_count = False
