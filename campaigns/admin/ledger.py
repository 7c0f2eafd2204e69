"""Saved templates and the read-only records of sending: the ledger, runs and tracking events."""

from __future__ import annotations

from django.contrib import admin

from campaigns.models import CampaignRun, MessageTemplate, Send, TrackingEvent


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
