"""Filter pieces shared by the apps' list endpoints."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, normalised to UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("Date-time out of range.", code="invalid") from None


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class StrictFilterSet(django_filters.FilterSet):
    """Refuse what the schema does not allow instead of ignoring it: an empty value for a typed
    filter (a date, a number, a choice) and a parameter given twice."""

    def is_valid(self):
        valid = super().is_valid()
        for name, filter_ in self.filters.items():
            if name not in self.data:
                continue
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else [self.data.get(name)]
            if len(values) > 1:
                self.form.add_error(name, "Give this parameter once.")
                valid = False
            elif values[0] == "" and type(filter_) is not django_filters.CharFilter:
                self.form.add_error(name, "May not be empty.")
                valid = False
            elif isinstance(filter_, django_filters.BooleanFilter) and str(values[0]).lower() not in (
                "true",
                "false",
            ):
                self.form.add_error(name, "Must be true or false.")
                valid = False
        return valid
