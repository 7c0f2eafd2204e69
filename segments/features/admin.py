"""The Customer analytics entry of the admin: its page is the dashboard (see admin_views.py)."""

from __future__ import annotations

from django.contrib import admin

from segments.features.admin_views import analytics_view, can_view
from segments.features.models import AnalyticsRun


@admin.register(AnalyticsRun)
class CustomerAnalyticsAdmin(admin.ModelAdmin):
    """Runs are written by the tasks only; the list page is the analytics dashboard."""

    def has_module_permission(self, request):
        return can_view(request.user)

    def has_view_permission(self, request, obj=None):
        return can_view(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        return analytics_view(request, model_admin=self)
