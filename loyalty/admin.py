from django.contrib import admin

from core.admin import ReadOnlyAdminMixin
from loyalty.models import LoyaltyProgram, Membership, PointsTransaction, Redemption, Reward, Tier


class TierInline(admin.TabularInline):
    model = Tier
    extra = 0
    fields = ["name", "threshold", "multiplier", "benefits"]


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "currency", "points_per_currency_unit", "points_expiry_days", "active"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [TierInline]


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["name", "program", "threshold", "multiplier"]
    list_filter = ["program"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Balances are derived from the ledger: shown, never edited (adjust points through the API)."""

    list_display = ["customer", "program", "tier", "balance", "lifetime_points", "joined_at"]
    list_filter = ["program", "tier"]
    search_fields = ["=customer__external_id", "customer__email"]
    list_select_related = ["customer", "program", "tier"]
    readonly_fields = ["balance", "lifetime_points", "tier", "tier_changed_at", "created_at", "updated_at"]
    raw_id_fields = ["customer"]


@admin.register(PointsTransaction)
class PointsTransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "membership", "kind", "points", "balance_after", "reason", "source_type"]
    list_filter = ["kind", "source_type", "membership__program"]
    search_fields = ["=membership__customer__external_id", "=idempotency_key"]
    list_select_related = ["membership__customer", "membership__program"]
    date_hierarchy = "occurred_at"


@admin.register(Reward)
class RewardAdmin(admin.ModelAdmin):
    list_display = ["name", "program", "cost_points", "minimum_tier", "active"]
    list_filter = ["program", "active"]


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "membership", "reward"]
    list_select_related = ["membership__customer", "reward"]
