from django import forms
from django.contrib import admin, messages

from access.models import ApiKey, AuditEntry
from access.scopes import ALL_SCOPES
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


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "actor", "api_key_name", "action", "target_type", "target_repr"]
    list_filter = ["action", "target_type"]
    search_fields = ["action", "target_id", "target_repr"]
    date_hierarchy = "created_at"
