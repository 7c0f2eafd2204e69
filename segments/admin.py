"""Segments in the admin: a JSON rule editor with a live preview, static uploads, members, refresh.

Who may do what follows the access roles (access/scopes.py): marketers (segments:write) edit,
analysts (segments:read) only look. The preview is the API's `POST /api/v1/segments/preview/`,
called with the admin session by a small script as the rule is edited.
"""

from __future__ import annotations

import csv
import io
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from access.scopes import scopes_for_user
from access.services import audit_request
from segments import selectors, services, static_upload
from segments.models import Segment
from segments.rules.fields import FIELDS, OPERATORS
from segments.rules.validation import check_rule

EXAMPLE_RULE = {
    "all": [
        {"field": "customer.country", "op": "eq", "value": "GB"},
        {"field": "order.count", "where": {"within_days": 90}, "op": "gte", "value": 2},
    ]
}


class SegmentForm(forms.ModelForm):
    rules = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 18, "cols": 100, "style": "font-family: monospace"}),
        help_text="JSON rule (docs/segment-rules.md). The preview below updates as you type.",
    )

    class Meta:
        model = Segment
        fields = ["name", "description", "kind", "active", "rules"]

    def clean(self):
        data = super().clean()
        kind = data.get("kind") or getattr(self.instance, "kind", Segment.Kind.DYNAMIC)
        if self.instance.pk and data.get("kind") and data["kind"] != self.instance.kind:
            self.add_error("kind", "The kind of a segment cannot change.")
        rules = data.get("rules")
        if kind == Segment.Kind.DYNAMIC and "rules" not in self.errors:
            errors = check_rule(rules if rules is not None else {}, segment_id=self.instance.pk).errors
            if errors:
                self.add_error("rules", [str(e) for e in errors])
        elif kind == Segment.Kind.STATIC:
            if rules:
                self.add_error("rules", "A static segment has no rules; upload its members instead.")
            data["rules"] = {}
        return data


class UploadForm(forms.Form):
    identifiers = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 8, "cols": 60}), help_text="One per line"
    )
    file = forms.FileField(required=False, help_text="Or a CSV/text file: the first column of each row")
    match_on = forms.ChoiceField(choices=[(m, m) for m in static_upload.MATCH_ON])
    mode = forms.ChoiceField(choices=[(m, m) for m in static_upload.UPLOAD_MODES])

    def clean(self):
        data = super().clean()
        values = [v.strip() for v in (data.get("identifiers") or "").splitlines() if v.strip()]
        upload = data.get("file")
        if upload is not None:
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationError("The file must be UTF-8 text.") from None
            values += [row[0].strip() for row in csv.reader(io.StringIO(text)) if row and row[0].strip()]
        if not values:
            raise ValidationError("Give at least one external id or email.")
        data["values"] = values
        return data


def _can(request, action: str) -> bool:
    return f"segments:{action}" in scopes_for_user(request.user)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    change_form_template = "admin/segments/segment/change_form.html"
    list_display = ["name", "kind", "active", "member_count", "refresh_state", "refreshed_at", "links"]
    list_filter = ["kind", "active", "refresh_state"]
    search_fields = ["name", "description"]
    readonly_fields = [
        "member_count",
        "refreshed_at",
        "refresh_state",
        "refresh_error",
        "refresh_seconds",
        "refresh_interruptions",
        "links",
    ]
    actions = ["refresh_selected"]

    class Media:
        js = ["segments/rule_builder.js"]

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["name", "description", "kind", "active", "links"]}),
            ("Rule", {"fields": ["rules"]}),
            (
                "Membership",
                {
                    "fields": [
                        "member_count",
                        "refresh_state",
                        "refreshed_at",
                        "refresh_seconds",
                        "refresh_error",
                        "refresh_interruptions",
                    ]
                },
            ),
        ]

    # --- roles ------------------------------------------------------------------------------
    def has_module_permission(self, request):
        return _can(request, "read")

    def has_view_permission(self, request, obj=None):
        return _can(request, "read")

    def has_add_permission(self, request):
        return _can(request, "write")

    def has_change_permission(self, request, obj=None):
        return _can(request, "write")

    def has_delete_permission(self, request, obj=None):
        return _can(request, "write")

    # --- display ----------------------------------------------------------------------------
    @admin.display(description="Open")
    def links(self, obj):
        if obj is None or obj.pk is None:
            return "Save first."
        members = reverse("admin:segments_segment_members", args=[obj.pk])
        if obj.kind == Segment.Kind.STATIC:
            upload = reverse("admin:segments_segment_upload", args=[obj.pk])
            return format_html('<a href="{}">members</a> · <a href="{}">upload list</a>', members, upload)
        return format_html('<a href="{}">members</a>', members)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(
            preview_url=reverse("segment-preview"),
            rule_fields=[
                (name, spec.type, ", ".join(OPERATORS[spec.type]), spec.help) for name, spec in FIELDS.items()
            ],
            example_rule=json.dumps(EXAMPLE_RULE, indent=2),
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_changeform_initial_data(self, request):
        return {"rules": EXAMPLE_RULE, **super().get_changeform_initial_data(request)}

    # --- writes -----------------------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_request(
                request,
                action="segment.changed" if change else "segment.created",
                target=obj,
                details={"fields": sorted(form.changed_data)},
            )
            if (
                obj.kind == Segment.Kind.DYNAMIC
                and obj.active
                and (not change or "rules" in form.changed_data)
            ):
                self._enqueue([obj.pk])

    def delete_model(self, request, obj):
        users = services.check_can_delete(segment=obj)
        if users:
            raise PermissionDenied(f"Segments {users} refer to this segment.")
        audit_request(request, action="segment.deleted", target=obj)
        super().delete_model(request, obj)

    @staticmethod
    def _enqueue(ids: list[int]) -> None:
        from segments.tasks import refresh

        services.request_refresh(segment_ids=ids)
        for pk in ids:
            transaction.on_commit(lambda pk=pk: refresh.delay(pk))

    @admin.action(description="Refresh selected segments now", permissions=["change"])
    def refresh_selected(self, request, queryset):
        ids = list(queryset.filter(kind=Segment.Kind.DYNAMIC).values_list("pk", flat=True))
        with transaction.atomic():
            self._enqueue(ids)
            for segment in queryset.filter(pk__in=ids):
                audit_request(request, action="segment.refresh_requested", target=segment)
        self.message_user(request, f"Refresh queued for {len(ids)} dynamic segment(s).")

    # --- extra pages ------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/members/", wrap(self.members_view), name="segments_segment_members"),
            path("<int:pk>/upload/", wrap(self.upload_view), name="segments_segment_upload"),
            *super().get_urls(),
        ]

    def _context(self, request, segment, title, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": segment,
            "segment": segment,
            "title": title,
            **extra,
        }

    def members_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        segment = get_object_or_404(Segment, pk=pk)
        paginator = Paginator(selectors.segment_members(segment=segment), 100)
        page = paginator.get_page(request.GET.get("page"))
        return TemplateResponse(
            request,
            "admin/segments/segment/members.html",
            self._context(request, segment, f"Members of “{segment}”", page=page),
        )

    def upload_view(self, request, pk: int):
        if not self.has_change_permission(request):
            raise PermissionDenied
        segment = get_object_or_404(Segment, pk=pk)
        report = None
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                report = static_upload.upload_static_members(
                    segment=segment,
                    identifiers=form.cleaned_data["values"],
                    match_on=form.cleaned_data["match_on"],
                    mode=form.cleaned_data["mode"],
                )
            except ValidationError as exc:
                for problems in exc.message_dict.values():
                    for problem in problems:
                        messages.error(request, problem)
                return HttpResponseRedirect(request.path)
            audit_request(
                request,
                action="segment.uploaded",
                target=segment,
                details={"received": report.received, "matched": report.matched},
            )
            messages.success(
                request, f"{report.matched} of {report.received} matched; {report.member_count} members now."
            )
        return TemplateResponse(
            request,
            "admin/segments/segment/upload.html",
            self._context(request, segment, f"Upload members of “{segment}”", form=form, report=report),
        )
