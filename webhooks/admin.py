from django.contrib import admin

from core.admin import ReadOnlyAdminMixin
from webhooks import services
from webhooks.models import OutboxMessage, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "topics", "active", "created_at"]
    list_filter = ["active"]
    readonly_fields = ["secret", "created_at"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "topic", "created_at", "fanned_out_at"]
    list_filter = ["topic"]
    date_hierarchy = "created_at"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "pk",
        "endpoint",
        "message",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
    ]
    list_filter = ["status", "endpoint"]
    list_select_related = ["endpoint", "message"]
    actions = ["retry_selected"]

    @admin.action(description="Retry selected deliveries now")
    def retry_selected(self, request, queryset):
        for delivery in queryset:
            services.retry_delivery(delivery=delivery)
        self.message_user(request, f"{queryset.count()} delivery(ies) queued again.")

    def has_change_permission(self, request, obj=None):
        # Read-only rows, but the retry action needs the changelist's action form.
        return obj is None and request.user.is_superuser
