"""CSV export as an admin action: what an analyst may take away (read permission is enough)."""

from __future__ import annotations

import csv

from django.contrib import admin
from django.http import HttpResponse

from access.services import audit_request


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet would run a cell starting with one of these as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@admin.action(description="Export selected rows as CSV", permissions=["view"])
def export_as_csv(modeladmin, request, queryset):
    fields = list(modeladmin.model._meta.concrete_fields)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{modeladmin.model._meta.model_name}.csv"'
    writer = csv.writer(response)
    writer.writerow([f.name for f in fields])
    count = 0
    for obj in queryset.iterator(chunk_size=2000):
        writer.writerow([_cell(getattr(obj, f.attname)) for f in fields])
        count += 1
    audit_request(
        request, action="export.csv", details={"model": modeladmin.model._meta.label_lower, "rows": count}
    )
    return response
