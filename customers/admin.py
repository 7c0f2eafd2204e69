from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path

from access.services import audit_request
from core.admin import ReadOnlyAdminMixin, ReadOnlyTabularInline
from customers import services
from customers.admin_import import import_view
from customers.customer360 import customer_360
from customers.models import (
    Channel,
    ConsentRecord,
    ConsentStatus,
    Customer,
    CustomerConsent,
    Event,
    Order,
    OrderLine,
    PushSubscription,
    Suppression,
)
from customers.timeline import customer_timeline


class ConsentFilter(admin.SimpleListFilter):
    title = "consent granted"
    parameter_name = "consent"

    def lookups(self, request, model_admin):
        return Channel.choices

    def queryset(self, request, queryset):
        if self.value() not in Channel.values:
            return queryset
        granted = CustomerConsent.objects.filter(
            customer=OuterRef("pk"), channel=self.value(), status=ConsentStatus.GRANTED
        )
        return queryset.filter(Exists(granted))


class TierFilter(admin.SimpleListFilter):
    title = "loyalty tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        from loyalty.models import Tier

        return [(t.pk, str(t)) for t in Tier.objects.select_related("program")]

    def queryset(self, request, queryset):
        if not self.value() or not str(self.value()).isdigit():
            return queryset
        return queryset.filter(memberships__tier_id=self.value()).distinct()


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("deleted", "Deleted"), ("erased", "Erased")]

    def queryset(self, request, queryset):
        if self.value() == "deleted":
            return queryset.filter(deleted_at__isnull=False, erased_at__isnull=True)
        if self.value() == "erased":
            return queryset.filter(erased_at__isnull=False)
        if self.value() == "active":
            return queryset.filter(deleted_at__isnull=True, erased_at__isnull=True)
        return queryset


class ConsentStateInline(ReadOnlyTabularInline):
    model = CustomerConsent
    fields = ["channel", "status", "source", "changed_at"]


class PushSubscriptionInline(admin.TabularInline):
    model = PushSubscription
    extra = 0
    fields = ["kind", "endpoint", "active", "last_error"]
    readonly_fields = ["last_error"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "email", "full_name", "country", "created_at", "deleted_at"]
    search_fields = ["=external_id", "email"]
    list_filter = [StateFilter, "country", TierFilter, ConsentFilter]
    readonly_fields = ["created_at", "updated_at", "deleted_at", "erased_at"]
    inlines = [ConsentStateInline, PushSubscriptionInline]
    actions = ["soft_delete_selected", "restore_selected", "erase_selected"]
    list_per_page = 50

    def get_queryset(self, request):
        return Customer.all_objects.all()

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, search_term.strip())

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_csv), name="customers_customer_import"),
            path(
                "<int:pk>/export/", self.admin_site.admin_view(self.export), name="customers_customer_export"
            ),
            *super().get_urls(),
        ]

    def import_csv(self, request):
        if not self.has_add_permission(request):
            return self.admin_site.login(request)
        return import_view(request, model_admin=self, kinds=["customers", "orders", "retail"])

    def export(self, request, pk):
        if not request.user.is_superuser:
            return JsonResponse({"detail": "Only administrators may export personal data."}, status=403)
        customer = get_object_or_404(Customer.all_objects, pk=pk)
        audit_request(request, action="customer.exported", target=customer)
        response = JsonResponse(services.export_customer(customer=customer), json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}.json"'
        return response

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.announce_changed([form.instance.pk])  # segments refresh this customer

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        customer = Customer.all_objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if customer is not None:
            extra_context["timeline"] = customer_timeline(customer=customer, limit=100)
            extra_context["c360"] = customer_360(customer=customer)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Soft-delete selected customers (reversible)")
    def soft_delete_selected(self, request, queryset):
        for customer in queryset:
            services.soft_delete_customer(customer=customer, actor=request.user)
        self.message_user(request, f"{queryset.count()} customer(s) deleted.")

    @admin.action(description="Restore selected deleted customers")
    def restore_selected(self, request, queryset):
        for customer in queryset:
            services.restore_customer(customer=customer, actor=request.user)
        self.message_user(request, "Restored.")

    @admin.action(description="Erase selected customers (GDPR, irreversible)")
    def erase_selected(self, request, queryset):
        if not request.user.is_superuser:
            self.message_user(request, "Only administrators may erase customers.", messages.ERROR)
            return None
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(
                request,
                "admin/customers/erase_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "customers": list(queryset),
                    "title": "Erase customers",
                },
            )
        for customer in queryset:
            services.erase_customer(customer=customer, actor=request.user)
        self.message_user(request, f"{queryset.count()} customer(s) erased.")
        return None


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["customer", "channel", "action", "source", "occurred_at", "recorded_at"]
    list_filter = ["channel", "action", "source"]
    search_fields = ["=customer__external_id", "customer__email"]
    list_select_related = ["customer"]
    date_hierarchy = "occurred_at"


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["channel", "short_hash", "reason", "created_at"]
    list_filter = ["channel", "reason"]

    @admin.display(description="address hash")
    def short_hash(self, obj):
        return f"{obj.address_hash[:16]}…"


class OrderLineInline(ReadOnlyTabularInline):
    model = OrderLine
    fields = ["line_no", "sku", "product", "kind", "quantity", "unit_price"]


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Orders are immutable once received (returns arrive as new orders), so they are read-only here."""

    list_display = ["external_id", "customer", "status", "placed_at", "total", "currency"]
    list_filter = ["status", "currency"]
    search_fields = ["=external_id", "=customer__external_id"]
    list_select_related = ["customer"]
    date_hierarchy = "placed_at"
    inlines = [OrderLineInline]


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "customer", "type", "name", "product"]
    list_filter = ["type"]
    search_fields = ["=customer__external_id", "=idempotency_key"]
    list_select_related = ["customer", "product"]
    date_hierarchy = "occurred_at"
