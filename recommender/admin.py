"""The recommender in the admin: configs, model versions with metrics and a comparison chart,
promote / rollback / train with confirmation, and a "recommendations for customer X" panel.

Marketers and admins act; analysts (and anyone with view permission only) read. Every action
goes through the registry services, which audit it.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from access.scopes import ROLE_ADMIN, ROLE_ANALYST, ROLE_MARKETER
from access.services import audit_request
from recommender.charts import metrics_chart_svg
from recommender.models import ModelVersion, RecommenderConfig, ScoringRun
from recommender.services import registry, serving

OPERATOR_ROLES = (ROLE_ADMIN, ROLE_MARKETER)
READER_ROLES = (ROLE_ADMIN, ROLE_MARKETER, ROLE_ANALYST)


def _in_roles(user, roles) -> bool:
    return user.is_active and user.is_staff and user.groups.filter(name__in=roles).exists()


def can_operate(user) -> bool:
    return (
        user.is_superuser
        or _in_roles(user, OPERATOR_ROLES)
        or user.has_perm("recommender.change_recommenderconfig")
    )


def can_read(user) -> bool:
    return (
        can_operate(user) or _in_roles(user, READER_ROLES) or user.has_perm("recommender.view_modelversion")
    )


class RoleAwareAdmin(admin.ModelAdmin):
    def has_module_permission(self, request):
        return can_read(request.user)

    def has_view_permission(self, request, obj=None):
        return can_read(request.user)

    def has_change_permission(self, request, obj=None):
        return can_operate(request.user)

    def has_add_permission(self, request):
        return can_operate(request.user)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


def _metric(key: str, label: str):
    @admin.display(description=label)
    def show(obj):
        value = (obj.metrics or {}).get(key)
        return f"{value:.4f}" if isinstance(value, int | float) else "—"

    show.__name__ = "metric_" + key.replace("@", "_at_")
    return show


@admin.register(RecommenderConfig)
class RecommenderConfigAdmin(RoleAwareAdmin):
    list_display = [
        "name",
        "algorithm",
        "is_default",
        "active_version_link",
        "items_per_customer",
        "updated_at",
    ]
    readonly_fields = ["active_version", "created_at", "updated_at"]
    change_form_template = "admin/recommender/recommenderconfig/change_form.html"

    @admin.display(description="Active version")
    def active_version_link(self, obj):
        if obj.active_version_id is None:
            return "—"
        url = reverse("admin:recommender_modelversion_change", args=[obj.active_version_id])
        return format_html('<a href="{}">v{}</a>', url, obj.active_version_id)

    def save_model(self, request, obj, form, change):
        # Never write active_version from a form: promote and rollback own it.
        if change:
            fields = [f for f in form.changed_data if f != "active_version"]
            obj.save(update_fields=[*fields, "updated_at"] if fields else ["updated_at"])
        else:
            obj.save()
        audit_request(
            request,
            action="recommender.config_changed" if change else "recommender.config_created",
            target=obj,
            details={"fields": sorted(form.changed_data)},
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        config = RecommenderConfig.objects.filter(pk=object_id).first()
        if config is not None:
            versions = list(
                config.versions.filter(status__in=["ready", "retired"]).order_by("-created_at")[:12]
            )
            extra["chart"] = metrics_chart_svg(list(reversed(versions)))
            extra["can_operate"] = can_operate(request.user)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/train/", wrap(self.train_view), name="recommender_recommenderconfig_train"),
            path(
                "<int:pk>/rollback/", wrap(self.rollback_view), name="recommender_recommenderconfig_rollback"
            ),
            *super().get_urls(),
        ]

    def _confirm(self, request, *, title: str, obj, message: str, back: str):
        return TemplateResponse(
            request,
            "admin/recommender/confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": title,
                "object": obj,
                "message": message,
                "back": back,
            },
        )

    def train_view(self, request, pk: int):
        if not can_operate(request.user):
            raise PermissionDenied
        config = get_object_or_404(RecommenderConfig, pk=pk)
        back = reverse("admin:recommender_recommenderconfig_change", args=[pk])
        if request.method != "POST":
            return self._confirm(
                request,
                title=f"Train “{config}” now?",
                obj=config,
                message=f"A new {config.algorithm} version is trained in the background, scored, then promoted.",
                back=back,
            )
        from recommender.tasks import train

        with transaction.atomic():
            version = registry.start_training(config=config)
            audit_request(request, action="recommender.train_requested", target=version)
            transaction.on_commit(lambda: train.delay(config.pk, version.pk))
        messages.success(request, f"Training of version {version.pk} queued.")
        return HttpResponseRedirect(back)

    def rollback_view(self, request, pk: int):
        if not can_operate(request.user):
            raise PermissionDenied
        config = get_object_or_404(RecommenderConfig, pk=pk)
        back = reverse("admin:recommender_recommenderconfig_change", args=[pk])
        if request.method != "POST":
            target = config.active_version.previous_version if config.active_version else None
            return self._confirm(
                request,
                title=f"Roll “{config}” back?",
                obj=config,
                message=(
                    f"Serve version {target.pk} ({target.algorithm}) again instead of {config.active_version_id}."
                    if target
                    else "There is no previous version to go back to."
                ),
                back=back,
            )
        try:
            version = registry.rollback(config_id=config.pk, actor=request.user)
        except registry.RegistryError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"“{config}” now serves version {version.pk}.")
        return HttpResponseRedirect(back)


@admin.register(ModelVersion)
class ModelVersionAdmin(RoleAwareAdmin):
    list_display = [
        "id",
        "config",
        "algorithm",
        "status",
        "is_active",
        _metric("ndcg@10", "nDCG@10"),
        _metric("precision@10", "Precision@10"),
        _metric("recall@10", "Recall@10"),
        _metric("coverage", "Coverage"),
        "n_customers",
        "n_products",
        "n_interactions",
        "fit_seconds",
        "created_at",
    ]
    list_filter = ["config", "status", "algorithm"]
    readonly_fields = [
        "config",
        "algorithm",
        "params",
        "status",
        "metrics",
        "n_customers",
        "n_products",
        "n_interactions",
        "artifact",
        "error",
        "fit_seconds",
        "created_at",
        "trained_at",
        "scored_at",
        "promoted_at",
        "previous_version",
    ]
    change_form_template = "admin/recommender/modelversion/change_form.html"

    def has_add_permission(self, request):
        return False  # versions come from training runs

    def has_change_permission(self, request, obj=None):
        return False  # every field is the training run's record; actions have their own views

    @admin.display(boolean=True, description="Active")
    def is_active(self, obj):
        return obj.config.active_version_id == obj.pk

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("config")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        version = ModelVersion.objects.select_related("config").filter(pk=object_id).first()
        if version is not None:
            extra["can_operate"] = can_operate(request.user)
            extra["is_active"] = version.config.active_version_id == version.pk
            extra["runs"] = list(ScoringRun.objects.filter(model_version=version)[:5])
            external_id = request.GET.get("customer", "").strip()[:191]
            extra["customer_query"] = external_id
            if external_id and version.status in (ModelVersion.Status.READY, ModelVersion.Status.RETIRED):
                try:
                    extra["preview"] = serving.preview_for_customer(
                        version=version, external_id=external_id, n=10
                    )
                except Exception as exc:  # noqa: BLE001 - a broken artifact is shown, not a 500
                    extra["preview_error"] = str(exc)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/promote/", wrap(self.promote_view), name="recommender_modelversion_promote"),
            *super().get_urls(),
        ]

    def promote_view(self, request, pk: int):
        if not can_operate(request.user):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion.objects.select_related("config"), pk=pk)
        back = reverse("admin:recommender_modelversion_change", args=[pk])
        if request.method != "POST":
            active = version.config.active_version_id
            return TemplateResponse(
                request,
                "admin/recommender/confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "opts": self.model._meta,
                    "title": f"Promote version {version.pk}?",
                    "object": version,
                    "message": f"“{version.config}” will serve version {version.pk} ({version.algorithm}) "
                    f"instead of {active or 'nothing'}; the current one stays available for rollback.",
                    "back": back,
                },
            )
        try:
            registry.promote(version_id=version.pk, actor=request.user)
        except registry.RegistryError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Version {version.pk} is now active for “{version.config}”.")
        return HttpResponseRedirect(back)


def similar_products_panel(product) -> str:
    """The "similar products" panel of the product admin page (catalog/admin.py shows it)."""
    try:
        result = serving.similar_products(product=product, n=6, config=serving.resolve_config(None))
    except Exception as exc:  # noqa: BLE001 - a panel never breaks the product page
        return format_html('<span class="help">Similar products unavailable: {}</span>', str(exc)[:200])
    if not result["items"]:
        return format_html('<span class="help">{}</span>', "No similar products yet.")
    items = format_html(
        "".join("<li>{} — {} <small>({})</small></li>" for _ in result["items"]),
        *[value for card in result["items"] for value in (card["sku"], card["name"], card["explanation"])],
    )
    source = "model" if result["source"] == "model" else "same category"
    return format_html('<ul style="margin:0">{}</ul><p class="help">From the {}.</p>', items, source)
