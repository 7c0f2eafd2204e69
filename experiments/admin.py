"""Experiments in the admin: the design inline on the campaign, the results page, the holdout report.

The inline is defined here and appended to the campaign admin's inlines, so the campaign builder
stays one page. The results page is server-rendered (the SVG chart included); the only action is
"decide now" for a test-then-send experiment, which goes through the same service as beat.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms.formsets import DELETION_FIELD_NAME
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from access.services import audit_request
from campaigns.admin import CampaignAdmin
from experiments.models import Experiment, ExperimentState, Metric, Mode
from experiments.services.chart import effect_chart
from experiments.services.decision import decide_experiment
from experiments.services.holdout import holdout_report
from experiments.services.results import cached_experiment_results


def _results_link(obj) -> str:
    if obj is None or obj.pk is None:
        return "Save the campaign first."
    return format_html(
        '<a class="button" href="{}">Results</a>',
        reverse("admin:experiments_experiment_results", args=[obj.pk]),
    )


def posted_variants(formset) -> list:
    """The variants as this save would leave them: posted values, deleted and empty rows left out."""
    formset.is_valid()  # cleans each form, so its instance carries the posted fields
    variants = []
    for form in formset.forms:
        cleaned = getattr(form, "cleaned_data", {})
        if formset.can_delete and cleaned.get(DELETION_FIELD_NAME):
            continue
        if form.instance.pk is None and not form.has_changed():
            continue  # an extra row left empty
        variants.append(form.instance)
    return variants


class ExperimentForm(forms.ModelForm):
    """Checked against the variants of the same save (see CampaignAdmin._create_formsets)."""

    variant_formset = None  # set by ExperimentFormSet
    campaign = None

    class Meta:
        model = Experiment
        fields = [  # the admin passes its fieldsets' fields; these are a default
            "metric",
            "relative",
            "method",
            "alpha",
            "correction",
            "planned_sample_size",
            "max_unsubscribe_rate",
            "max_complaint_rate",
            "mode",
            "default_variant",
            "sample_percent",
            "wait_minutes",
            "min_sample_per_arm",
            "decision_rule",
            "chance_threshold",
            "bandit_floor",
        ]

    def clean(self):
        # Runs before the model's clean (Experiment.clean reads `variants_to_check`).
        cleaned = super().clean()
        if self.variant_formset is not None:
            self.instance.campaign = self.campaign
            self.instance.variants_to_check = posted_variants(self.variant_formset)
        return cleaned


class ExperimentFormSet(BaseInlineFormSet):
    sibling_formsets: list = []  # CampaignAdmin sets the formsets of the same save

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        from campaigns.models import Variant

        form.variant_formset = next((f for f in self.sibling_formsets if f.model is Variant), None)
        form.campaign = self.instance
        return form


class ExperimentInline(admin.StackedInline):
    model = Experiment
    form = ExperimentForm
    formset = ExperimentFormSet
    extra = 0
    max_num = 1
    can_delete = True
    fk_name = "campaign"
    readonly_fields = ["state", "winner", "decision_reason", "decided_at", "results"]
    fieldsets = [
        (
            None,
            {"fields": [("metric", "relative"), ("method", "alpha", "correction"), "planned_sample_size"]},
        ),
        ("Guardrails", {"fields": [("max_unsubscribe_rate", "max_complaint_rate")]}),
        (
            "Mode",
            {
                "fields": [
                    "mode",
                    "default_variant",
                    ("sample_percent", "wait_minutes", "min_sample_per_arm"),
                    ("decision_rule", "chance_threshold"),
                    "bandit_floor",
                ]
            },
        ),
        ("Decision", {"fields": ["state", "winner", "decision_reason", "decided_at", "results"]}),
    ]

    @admin.display(description="Results")
    def results(self, obj):
        return _results_link(obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "default_variant":
            from campaigns.models import Variant

            campaign_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            kwargs["queryset"] = Variant.objects.filter(campaign_id=campaign_id or 0)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        # The design is fixed at launch (the ledger is written from it): drafts only.
        return super().has_change_permission(request, obj) and (obj is None or obj.status == "draft")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        experiment = getattr(obj, "experiment", None) if obj is not None else None
        if experiment is not None and experiment.state != ExperimentState.DESIGN:
            fields += [f.name for f in Experiment._meta.fields if f.name not in fields]
        return fields

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


if ExperimentInline not in CampaignAdmin.inlines:
    CampaignAdmin.inlines = [*CampaignAdmin.inlines, ExperimentInline]


def _chart(results: dict, percent: bool):
    svg = effect_chart(results["series"] or [], percent=percent, title=results["metric_label"])
    return mark_safe(svg)  # noqa: S308 - effect_chart escapes every text it writes


def percent_metric(results: dict) -> bool:
    return results["relative"] or results["metric"] != Metric.REVENUE_PER_RECIPIENT


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["campaign", "metric", "method", "mode", "state", "winner", "results_link"]
    list_filter = ["state", "mode", "metric", "method"]
    search_fields = ["campaign__name"]
    readonly_fields = [f.name for f in Experiment._meta.fields]

    def has_add_permission(self, request):
        return False  # designed on the campaign's page

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Results")
    def results_link(self, obj):
        return _results_link(obj)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("holdout/", wrap(self.holdout_view), name="experiments_experiment_holdout"),
            path("<int:pk>/results/", wrap(self.results_view), name="experiments_experiment_results"),
            path("<int:pk>/decide/", wrap(self.decide_view), name="experiments_experiment_decide"),
            *super().get_urls(),
        ]

    def _context(self, request, title: str, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def results_view(self, request, pk: int):
        experiment = get_object_or_404(Experiment.objects.select_related("campaign", "winner"), pk=pk)
        if not self.has_view_permission(request, experiment):
            raise PermissionDenied
        results = cached_experiment_results(experiment=experiment)
        if request.GET.get("format") == "json":
            return JsonResponse(results)
        percent = percent_metric(results)
        arms = [{**arm, "metric_value": arm.get(results["metric"])} for arm in results["arms"]]
        return TemplateResponse(
            request,
            "admin/experiments/results.html",
            self._context(
                request,
                f"Results of “{experiment.campaign}”",
                experiment=experiment,
                results=results,
                arms=arms,
                percent=percent,
                chart=_chart(results, percent),
                varies=any(
                    v["channel"] != experiment.campaign.channel
                    or v["send_local_time"]
                    or v["send_delay_minutes"] is not None
                    or v["recommender"]
                    for v in results.get("variants", [])
                ),
                can_decide=experiment.mode == Mode.TEST_THEN_SEND
                and experiment.state == ExperimentState.SAMPLING
                and request.user.has_perm("campaigns.change_campaign"),
            ),
        )

    def decide_view(self, request, pk: int):
        experiment = get_object_or_404(Experiment, pk=pk)
        if request.method != "POST" or not request.user.has_perm("campaigns.change_campaign"):
            raise PermissionDenied
        url = reverse("admin:experiments_experiment_results", args=[experiment.pk])
        if decide_experiment(experiment_id=experiment.pk, force=True):
            experiment.refresh_from_db()
            audit_request(
                request,
                action="experiment.decided",
                target=experiment,
                details={"winner": experiment.winner_id},
            )
            messages.success(request, f"Decided: {experiment.decision_reason}")
        else:
            messages.error(request, "Only a test-then-send experiment whose sample is out can be decided.")
        return HttpResponseRedirect(url)

    def holdout_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            days = min(max(int(request.GET.get("days", 30)), 1), 366)
        except ValueError:
            days = 30
        report = holdout_report(days=days)
        return TemplateResponse(
            request,
            "admin/experiments/holdout.html",
            self._context(request, "Global holdout: the total lift of marketing", report=report, days=days),
        )
