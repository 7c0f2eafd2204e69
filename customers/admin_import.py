"""The admin's CSV upload page: the same importers as `manage.py import_csv`, with the row report."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse

from access.services import audit_request
from customers.importers import import_file

KIND_CHOICES = [
    ("customers", "Customers"),
    ("products", "Products"),
    ("orders", "Orders (one line per order line)"),
    ("retail", "Online retail sample (customers, products, orders)"),
]
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class ImportForm(forms.Form):
    kind = forms.ChoiceField(choices=KIND_CHOICES)
    file = forms.FileField(help_text="UTF-8 CSV with a header row; see docs/imports.md for the columns.")
    partial = forms.BooleanField(
        required=False, help_text="Keep the valid rows and report the others (default: all or nothing)."
    )
    demo_contacts = forms.BooleanField(
        required=False,
        label="Demo contacts",
        help_text="Retail sample only: give each customer an @example.com address and demo email consent.",
    )

    def __init__(self, *args, kinds: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [c for c in KIND_CHOICES if c[0] in kinds]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"Files over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB: use manage.py import_csv."
            )
        return upload


def import_view(request, *, model_admin, kinds: list[str]):
    report = None
    form = ImportForm(request.POST or None, request.FILES or None, kinds=kinds)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        kind = data["kind"]
        result = import_file(
            data["file"].file,
            kind=kind if kind != "retail" else "",
            partial=data["partial"],
            file_format="retail" if kind == "retail" else "standard",
            demo_contacts=data["demo_contacts"],
        )
        report = result.as_dict()
        audit_request(
            request,
            action="import.csv",
            details={
                "kind": kind,
                "file": data["file"].name,
                "committed": result.committed,
                "errors": len(result.errors),
            },
        )
    context = {
        **admin.site.each_context(request),
        "title": "Import from CSV",
        "opts": model_admin.model._meta,
        "form": form,
        "report": report,
        "sections": [s for s in ("customers", "products", "orders") if report and s in report],
    }
    return TemplateResponse(request, "admin/customers/import_csv.html", context)
