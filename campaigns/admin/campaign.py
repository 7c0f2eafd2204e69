"""The campaign builder: the change form as numbered steps a marketer works down.

1 Audience (live count), 2 Content and A/B variants (the variant inline with a live preview for a
chosen customer), 3 Schedule and timezone, 4 Holdout, 5 Send limits, then advanced sections
collapsed. A status card on top carries the launch/pause/resume/cancel buttons (each asks for
confirmation on its own page) and the progress bar while sending. The page is Django's change
form with fieldsets, a template that places the inlines among the steps, a little CSS and
core/static/reachly/builder.js for the live parts; without JavaScript it is still a whole form.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from access.exports import export_as_csv
from access.services import audit_request
from campaigns.admin.forms import CampaignForm, VariantForm
from campaigns.admin.pages import BuilderPages
from campaigns.admin.transitions import OFFERED, TRANSITIONS, TransitionPages
from campaigns.models import Campaign, Variant
from campaigns.services import lifecycle
from segments.models import Segment

#: The numbered steps, in page order, with the fieldset class that marks each (the template and
#: the step navigation read these). The variants inline is step 2, placed after the audience.
AUDIENCE = "1 · Audience"
SCHEDULE = "3 · Schedule & timezone"
HOLDOUT = "4 · Holdout"
LIMITS = "5 · Send limits"
CONTENT = "2 · Content & A/B variants"


class VariantInline(admin.StackedInline):
    model = Variant
    form = VariantForm
    extra = 0
    min_num = 1
    max_num = 8
    verbose_name = "variant"
    verbose_name_plural = CONTENT
    fieldsets = [
        (None, {"fields": ["name", "weight", "based_on"]}),
        (
            "Email message",
            {"fields": ["subject", "preheader", "html", "text"], "classes": ["channel-email"]},
        ),
        (
            "Push notification",
            {"fields": [("push_title", "push_url"), "push_body", "push_icon"], "classes": ["channel-push"]},
        ),
        (
            "Experiment: what else this variant varies",
            {"fields": [("channel", "send_local_time", "send_delay_minutes"), "recommender"]},
        ),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if (
            db_field.name in ("subject", "preheader", "push_title", "push_url", "push_icon")
            and field is not None
        ):
            field.widget = forms.TextInput(attrs={"size": 90, "data-part": db_field.name})
        elif db_field.name in ("html", "text", "push_body") and field is not None:
            rows = 14 if db_field.name == "html" else 5
            field.widget = forms.Textarea(
                attrs={"rows": rows, "cols": 100, "class": "code", "data-part": db_field.name}
            )
        elif db_field.name == "weight" and field is not None:
            field.widget = forms.NumberInput(attrs={"min": 1, "class": "vSmallField", "data-weight": "1"})
        return field

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (
            obj is None or obj.status in lifecycle.EDITABLE
        )

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


@admin.register(Campaign)
class CampaignAdmin(TransitionPages, BuilderPages, admin.ModelAdmin):
    form = CampaignForm
    list_display = ["name", "channel", "status_badge", "schedule_kind", "launched_at", "progress_link"]
    list_filter = ["status", "channel", "schedule_kind"]
    search_fields = ["name"]
    inlines = [VariantInline]
    actions = [export_as_csv]
    change_form_template = "admin/campaigns/campaign/change_form.html"
    readonly_fields = ["status", "status_reason", "launched_at", "finished_at", "next_run_at", "site_holdout"]
    fieldsets = [
        (None, {"fields": ["name", "channel"], "classes": ["builder-basics"]}),
        (
            AUDIENCE,
            {"fields": ["include_segments", "exclude_segments"], "classes": ["step", "step-audience"]},
        ),
        (
            SCHEDULE,
            {
                "fields": [
                    "schedule_kind",
                    "send_at",
                    ("local_send_date", "local_send_time"),
                    ("cron", "next_run_at"),
                    "schedule_timezone",
                    ("trigger_kind", "trigger_delay_minutes"),
                    ("trigger_event_type", "trigger_event_name"),
                    "trigger_segment",
                    "trigger_points_days",
                ],
                "classes": ["step", "step-schedule"],
                "description": "Only the fields of the chosen kind matter; the page hides the others.",
            },
        ),
        (
            HOLDOUT,
            {
                "fields": ["control_percent", "site_holdout"],
                "classes": ["step", "step-holdout"],
                "description": "Who gets nothing, so that the campaign's effect can be measured against them.",
            },
        ),
        (
            LIMITS,
            {
                "fields": [
                    ("cap_messages", "cap_period_hours", "cap_overflow"),
                    ("quiet_hours_start", "quiet_hours_end"),
                    "send_rate",
                ],
                "classes": ["step", "step-limits"],
                "description": "A frequency cap across campaigns, quiet hours in each customer's timezone, "
                "and a rate. Deferred messages wait in the ledger, none is lost.",
            },
        ),
        (
            "Advanced · Sender, links and conversions",
            {
                "fields": [
                    ("from_name", "from_email", "reply_to"),
                    ("utm_source", "utm_medium", "utm_campaign"),
                    "conversion_window_hours",
                ],
                "classes": ["collapse", "advanced"],
            },
        ),
        (
            "Advanced · Recommendations in the message",
            {
                "fields": [
                    ("recommendation_count", "recommendation_in_stock_only"),
                    "recommendation_categories",
                    "recommendation_brands",
                    "recommendation_exclude_skus",
                ],
                "classes": ["collapse", "advanced"],
            },
        ),
        (
            "History",
            {"fields": ["status", "status_reason", "launched_at", "finished_at"], "classes": ["collapse"]},
        ),
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
            if name == AUDIENCE:
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

    @admin.display(description="Site-wide holdout")
    def site_holdout(self, obj):
        percent = settings.CAMPAIGN_GLOBAL_HOLDOUT_PERCENT
        if not percent:
            return "None: every customer may receive campaigns (CAMPAIGN_GLOBAL_HOLDOUT_PERCENT is 0)."
        return format_html(
            "{} % of all customers receive no campaign at all, this one included "
            "(CAMPAIGN_GLOBAL_HOLDOUT_PERCENT, the same customers every time).",
            f"{percent:g}",
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span class="badge {}">{}</span>', _tone(obj.status), obj.get_status_display())

    @admin.display(description="Progress")
    def progress_link(self, obj):
        return format_html(
            '<a href="{}">progress</a> · <a href="{}">report</a>',
            reverse("admin:campaigns_campaign_progress", args=[obj.pk]),
            reverse("admin:campaigns_campaign_report", args=[obj.pk]),
        )

    def _actions(self, request, obj) -> dict:
        """The status card's buttons: the transitions this status offers, then the builder's pages."""
        may_change = self.has_change_permission(request, obj)
        # Every transition is on the page, those the status does not offer hidden, so that the
        # progress poll can show Resume after an auto-pause or hide Pause once the send is over.
        offered = OFFERED.get(obj.status, ())
        transitions = [
            {
                "verb": verb,
                "label": label,
                "url": reverse("admin:campaigns_campaign_transition", args=[obj.pk, verb]),
                "offered": verb in offered,
            }
            for verb, (label, _run, _past) in TRANSITIONS.items()
            if may_change
        ]
        pages = [("Preview", "preview"), ("Progress", "progress"), ("Report", "report")]
        if may_change:
            pages.insert(1, ("Test send", "test_send"))
        return {
            "transitions": transitions,
            "pages": [
                {"label": label, "url": reverse(f"admin:campaigns_campaign_{name}", args=[obj.pk])}
                for label, name in pages
            ],
        }

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.status not in lifecycle.EDITABLE:
            # Launched: every field is read-only, so offer no save buttons that could only fail.
            context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)
        steps = []
        for index, (name, _options) in enumerate(self.get_fieldsets(request, obj)):
            if name and (name[0].isdigit() or name.startswith("Advanced")):
                steps.append({"label": name, "anchor": f"fieldset-0-{index}-heading"})
            if name == AUDIENCE:
                steps.append({"label": CONTENT, "anchor": "variants-heading"})
        context.update(
            builder_steps=steps,
            builder_actions=self._actions(request, obj) if obj is not None and obj.pk else None,
            status_tone=_tone(obj.status) if obj is not None else "",
            variant_shares=_shares(obj) if obj is not None and obj.pk else [],
            preview_customers=_sample_customers(obj) if obj is not None and obj.pk else [],
            content_editable=obj is not None
            and obj.pk is not None
            and obj.status in lifecycle.EDITABLE
            and self.has_change_permission(request, obj),
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _create_formsets(self, request, obj, change):
        # Each inline formset may check itself against the others of the same save (the
        # experiment's metric against the variants' channels as posted): give each the list.
        # The campaign form shares `obj` and is cleaned before the formsets, so `formset.instance`
        # carries the posted campaign fields by then.
        formsets, inline_instances = super()._create_formsets(request, obj, change)
        for formset in formsets:
            formset.sibling_formsets = formsets
        return formsets, inline_instances

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


def _tone(status: str) -> str:
    return {"sent": "ok", "sending": "", "scheduled": "", "paused": "warn", "cancelled": "bad"}.get(
        status, "warn"
    )


def _shares(campaign: Campaign) -> list[dict]:
    """Each saved variant's share of the audience after the control group, for the status card."""
    variants = list(campaign.variants.order_by("name").values("name", "weight"))
    total = sum(v["weight"] for v in variants) or 1
    treated = 100 - float(campaign.control_percent or 0)
    return [{"name": v["name"], "percent": round(treated * v["weight"] / total, 1)} for v in variants]


def _sample_customers(campaign: Campaign) -> list[str]:
    """A few customers of the audience (else any) to preview the message for."""
    from customers.models import Customer
    from segments.selectors import audience

    members = audience(include=campaign.include_segments.all(), exclude=campaign.exclude_segments.all())
    ids = list(members.order_by("id").values_list("external_id", flat=True)[:10])
    return ids or list(Customer.objects.order_by("id").values_list("external_id", flat=True)[:10])
