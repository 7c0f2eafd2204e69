from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from rest_framework_api_key.models import APIKey

from access.exports import export_as_csv
from access.models import ApiKey, AuditEntry
from access.scopes import ALL_SCOPES, ROLES
from access.services import create_api_key, revoke_api_key
from core.admin import ReadOnlyAdminMixin


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in ALL_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Only what the integration needs.",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "rate", "expiry_date"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here once (the secret is shown a single time) and revoked, never edited."""

    list_display = ["name", "prefix", "scopes", "rate", "created", "last_used_at", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["name", "prefix"]
    actions = ["revoke_selected"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "scopes", "rate", "expiry_date"]
        return ["name", "prefix", "scopes", "rate", "expiry_date", "created", "last_used_at", "revoked"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        api_key, secret = create_api_key(
            name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], rate=form.cleaned_data["rate"]
        )
        if form.cleaned_data.get("expiry_date"):
            ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=form.cleaned_data["expiry_date"])
        obj.pk = api_key.pk
        messages.warning(
            request,
            f"The API key for {api_key.name} is: {secret} — store it now, it will not be shown again.",
        )

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request, queryset):
        for api_key in queryset:
            revoke_api_key(api_key=api_key, actor=request.user)
        self.message_user(request, f"{queryset.count()} key(s) revoked.")


class ActorFilter(admin.SimpleListFilter):
    title = "who"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        users = get_user_model().objects.filter(
            pk__in=AuditEntry.objects.exclude(actor=None).values("actor").distinct()
        )
        return [("api", "An API key"), ("system", "The system")] + [
            (str(u.pk), u.get_username()) for u in users
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "api":
            return queryset.exclude(api_key_name="")
        if value == "system":
            return queryset.filter(actor=None, api_key_name="")
        if value and value.isdigit():
            return queryset.filter(actor_id=value)
        return queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who launched, paused, changed, exported or erased what: read-only, filterable, exportable."""

    list_display = ["created_at", "who", "action", "target_type", "target_link", "short_details"]
    list_filter = [ActorFilter, "action", "target_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["action", "target_id", "target_repr", "actor__username", "api_key_name"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
    actions = [export_as_csv]
    show_full_result_count = False
    fields = [
        "created_at",
        "actor",
        "api_key_name",
        "action",
        "target_type",
        "target_id",
        "target_repr",
        "details",
    ]
    readonly_fields = fields

    @admin.display(description="who", ordering="actor__username")
    def who(self, obj):
        if obj.actor_id:
            return obj.actor.get_username()
        return f"API key {obj.api_key_name}" if obj.api_key_name else "system"

    @admin.display(description="target")
    def target_link(self, obj):
        if not obj.target_type or not obj.target_id:
            return obj.target_repr or "—"
        app_label, _, model = obj.target_type.partition(".")
        try:
            url = reverse(f"admin:{app_label}_{model}_change", args=[obj.target_id])
        except NoReverseMatch:
            return obj.target_repr
        return format_html('<a href="{}">{}</a>', url, obj.target_repr or obj.target_id)

    @admin.display(description="details")
    def short_details(self, obj):
        text = ", ".join(f"{k}={v}" for k, v in (obj.details or {}).items())
        return text if len(text) <= 80 else text[:79] + "…"


# The library registers its own key model; ours (ApiKey, with scopes) is the one to manage.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class RoleFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"

    def lookups(self, request, model_admin):
        return [(role, role) for role in ROLES] + [("superuser", "Superuser"), ("none", "No role")]

    def queryset(self, request, queryset):
        if self.value() in ROLES:
            return queryset.filter(groups__name=self.value())
        if self.value() == "superuser":
            return queryset.filter(is_superuser=True)
        if self.value() == "none":
            return queryset.filter(is_superuser=False, groups__isnull=True)
        return queryset


class PeopleAdmin(UserAdmin):
    """People and their roles: give staff status and one role (Admin, Marketer or Analyst)."""

    list_display = ["username", "email", "roles", "is_staff", "is_active", "last_login"]
    list_filter = [RoleFilter, "is_staff", "is_active"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def roles(self, obj):
        names = [g.name for g in obj.groups.all()]
        return ", ".join((["superuser"] if obj.is_superuser else []) + names) or "—"


_User = get_user_model()
if admin.site.is_registered(_User):
    admin.site.unregister(_User)
admin.site.register(_User, PeopleAdmin)
