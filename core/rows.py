"""Validation of incoming rows for bulk calls and CSV imports.

One row schema per kind of record validates the bulk API, the single-record API and the CSV
importers alike, so a rule holds everywhere. It is hand-written rather than a DRF serializer per
row because a 10,000-row call must validate in tens of milliseconds: a serializer instance per row
costs about a hundred times more.

Errors are reported per row and field (`RowError`), never raised half-way through a batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator, URLValidator
from django.utils.dateparse import parse_datetime

from core.reference import is_known_country, is_known_currency, is_known_timezone

MAX_JSON_DEPTH = 5
MAX_JSON_NODES = 1000
MAX_JSON_CHARS = 16_000


class FieldInvalid(ValueError):
    """A value that cannot be accepted; the message is shown to the caller as is."""


@dataclass(frozen=True)
class RowError:
    index: int
    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message, "code": self.code}


@dataclass(frozen=True)
class Field:
    parse: Callable[[Any], Any]
    required: bool = False
    nullable: bool = False
    description: str = ""


@dataclass
class RowSchema:
    """Named fields with their parsers; unknown names are errors, never silently dropped."""

    fields: dict[str, Field]
    name: str = "row"
    extra_checks: list[Callable[[dict[str, Any]], list[tuple[str, str]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.required_names = tuple(name for name, spec in self.fields.items() if spec.required)

    def clean(
        self, row: Any, index: int, *, prefix: str = ""
    ) -> tuple[dict[str, Any] | None, list[RowError]]:
        if not isinstance(row, Mapping):
            return None, [
                RowError(
                    index,
                    prefix.rstrip(".") or "non_field_errors",
                    f"Each {self.name} must be a JSON object.",
                )
            ]
        errors: list[RowError] = []
        fields = self.fields
        cleaned: dict[str, Any] = {}
        for name, value in row.items():
            spec = fields.get(name)
            if spec is None:
                errors.append(RowError(index, f"{prefix}{name}", "Unknown field.", "unknown_field"))
                continue
            if value is None:
                if spec.nullable:
                    cleaned[name] = None
                else:
                    errors.append(RowError(index, f"{prefix}{name}", "This field may not be null.", "null"))
                continue
            try:
                cleaned[name] = spec.parse(value)
            except NestedInvalid as nested:
                errors.extend(
                    RowError(index, f"{prefix}{name}{err.field}", err.message, err.code)
                    for err in nested.errors
                )
            except FieldInvalid as exc:
                errors.append(RowError(index, f"{prefix}{name}", str(exc)))
        for name in self.required_names:
            if name not in row:
                errors.append(RowError(index, f"{prefix}{name}", "This field is required.", "required"))
        if not errors:
            for check in self.extra_checks:
                errors.extend(RowError(index, f"{prefix}{f}", m) for f, m in check(cleaned))
        return (None if errors else cleaned), errors


class NestedInvalid(FieldInvalid):
    def __init__(self, errors: list[RowError]):
        super().__init__("invalid nested rows")
        self.errors = errors


def validate_rows(
    schema: RowSchema, rows: Iterable[Any]
) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
    """Clean every row; returns the valid rows with their index and all errors."""
    valid: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for index, row in enumerate(rows):
        cleaned, row_errors = schema.clean(row, index)
        if row_errors:
            errors.extend(row_errors)
        else:
            valid.append((index, cleaned))
    return valid, errors


# --- parsers ---------------------------------------------------------------------------------


def mark_duplicates(
    valid: list[tuple[int, dict]], key: str, errors: list[RowError]
) -> list[tuple[int, dict]]:
    """A key twice in one call is ambiguous (which one wins?), so the later rows are errors."""
    first: dict[str, int] = {}
    kept = []
    for index, row in valid:
        value = row[key]
        if value in first:
            errors.append(
                RowError(
                    index, key, f"Duplicate {key} in this call (first at index {first[value]}).", "duplicate"
                )
            )
            continue
        first[value] = index
        kept.append((index, row))
    return kept


def text(max_length: int, *, blank: bool = True, strip: bool = True) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldInvalid("Must be a string.")
        result = value.strip() if strip else value
        if "\x00" in result:
            raise FieldInvalid("Must not contain NUL characters.")
        if not blank and not result:
            raise FieldInvalid("May not be blank.")
        if len(result) > max_length:
            raise FieldInvalid(f"At most {max_length} characters.")
        return result

    return parse


_SLASH_OR_CONTROL = re.compile(r"[\x00-\x1f/]")


def identifier(max_length: int) -> Callable[[Any], str]:
    """An external id or SKU: a non-blank string without slashes or control characters."""
    base = text(max_length, blank=False)

    def parse(value: Any) -> str:
        result = base(value)
        if _SLASH_OR_CONTROL.search(result) is not None:
            raise FieldInvalid("Must not contain '/' or control characters.")
        return result

    return parse


_email_validator = EmailValidator()
# The everyday shape of an address (dot-atom local part, ASCII host names): a strict subset of what
# Django's EmailValidator accepts, checked with one compiled regex. Anything else (IDN domains,
# quoted local parts, IP literals) goes to Django's validator, which is ten times slower.
_PLAIN_EMAIL = re.compile(
    r"^[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z"
)


def email(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldInvalid("Must be a string.")
    address = value.strip()
    if not address:
        return ""
    if len(address) > 254:
        raise FieldInvalid("At most 254 characters.")
    if _PLAIN_EMAIL.match(address) is None:
        try:
            _email_validator(address)
        except DjangoValidationError:
            raise FieldInvalid("Enter a valid email address.") from None
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


_url_validator = URLValidator(schemes=["http", "https"])


def url(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldInvalid("Must be a string.")
    address = value.strip()
    if not address:
        return ""
    if len(address) > 1000:
        raise FieldInvalid("At most 1000 characters.")
    try:
        _url_validator(address)
    except DjangoValidationError:
        raise FieldInvalid("Enter a valid http(s) URL.") from None
    return address


_DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?\Z")


def decimal(
    *, max_digits: int = 12, decimal_places: int = 2, min_value: Decimal | None = None
) -> Callable[[Any], Decimal]:
    limit = Decimal(10) ** (max_digits - decimal_places)
    quantum = Decimal(1).scaleb(-decimal_places)

    def parse(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise FieldInvalid("Must be a number.")
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldInvalid("Must be a finite number.")
        if isinstance(value, str) and _DECIMAL_TEXT.match(value.strip()) is None:
            raise FieldInvalid("Must be a number, e.g. 4.50.")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise FieldInvalid("Must be a number.") from None
        if not number.is_finite():
            raise FieldInvalid("Must be a finite number.")
        if min_value is not None and number < min_value:
            raise FieldInvalid(f"Must be at least {min_value}.")
        if abs(number) >= limit:
            raise FieldInvalid(f"Must be less than {limit} in absolute value.")
        rounded = number.quantize(quantum)
        if rounded != number:
            raise FieldInvalid(f"At most {decimal_places} decimal places.")
        return rounded

    return parse


def integer(*, min_value: int | None = None, max_value: int | None = 2**31 - 1) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldInvalid("Must be an integer.")
        if min_value is not None and value < min_value:
            raise FieldInvalid(f"Must be at least {min_value}.")
        if max_value is not None and value > max_value:
            raise FieldInvalid(f"Must be at most {max_value}.")
        return value

    return parse


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise FieldInvalid("Must be true or false.")


_TRUE_WORDS = {"true", "1", "yes", "y"}
_FALSE_WORDS = {"false", "0", "no", "n"}


def from_text(value: str, kind: str) -> Any:
    """A CSV cell as the JSON value the row schemas expect; left as text when it does not convert,
    so validation reports it with the usual message."""
    text_value = value.strip()
    if kind == "integer":
        try:
            return int(text_value)
        except ValueError:
            return value
    if kind == "boolean":
        lowered = text_value.lower()
        if lowered in _TRUE_WORDS:
            return True
        if lowered in _FALSE_WORDS:
            return False
    return value


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def moment(value: Any) -> datetime:
    """An ISO 8601 timestamp; one without an offset is taken as UTC."""
    if not isinstance(value, str):
        raise FieldInvalid("Must be an ISO 8601 date-time string.")
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise FieldInvalid("Must be an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z.")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)  # PostgreSQL refuses offsets beyond ±15:59
        if not _EARLIEST <= parsed < _LATEST:
            raise FieldInvalid("Must be between 1970 and 2200.")
    except (OverflowError, ValueError):
        raise FieldInvalid("Must be between 1970 and 2200.") from None
    return parsed


def choice(values: Iterable[str]) -> Callable[[Any], str]:
    allowed = tuple(values)

    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise FieldInvalid(f"Must be one of: {', '.join(allowed)}.")
        return value

    return parse


_short_text = text(64)


def country(value: Any) -> str:
    result = _short_text(value)
    if result and not is_known_country(result):
        raise FieldInvalid("Unknown country; use an ISO 3166 code such as GB or a country name.")
    return result.replace("_", " ") if result else result


def timezone_name(value: Any) -> str:
    result = _short_text(value)
    if result and not is_known_timezone(result):
        raise FieldInvalid("Unknown time zone; use an IANA name such as Europe/London.")
    return result


def currency(value: Any) -> str:
    result = _short_text(value).upper()
    if not is_known_currency(result):
        raise FieldInvalid("Unknown currency; use an ISO 4217 code such as GBP.")
    return result


def json_object(value: Any) -> dict[str, Any]:
    """A free-form JSON object, limited in depth, node count and size so one row stays small."""
    if not isinstance(value, dict):
        raise FieldInvalid("Must be a JSON object.")
    check_json_limits(value)
    return value


def check_json_limits(value: Any) -> None:
    nodes = 0
    chars = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise FieldInvalid(f"Too many values (more than {MAX_JSON_NODES}).")
        if isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                raise FieldInvalid(f"Nested deeper than {MAX_JSON_DEPTH} levels.")
            for key, child in item.items():
                chars += len(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                raise FieldInvalid(f"Nested deeper than {MAX_JSON_DEPTH} levels.")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise FieldInvalid("Must not contain NUL characters.")
            chars += len(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise FieldInvalid("Numbers must be finite.")
        if chars > MAX_JSON_CHARS:
            raise FieldInvalid(f"Larger than {MAX_JSON_CHARS} characters.")


def list_of(schema: RowSchema, *, min_items: int = 0, max_items: int = 1000) -> Callable[[Any], list[dict]]:
    def parse(value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise FieldInvalid("Must be a list.")
        if len(value) < min_items:
            raise FieldInvalid(f"At least {min_items} item(s) required.")
        if len(value) > max_items:
            raise FieldInvalid(f"At most {max_items} items.")
        out, errors = [], []
        for position, item in enumerate(value):
            cleaned, item_errors = schema.clean(item, 0, prefix=f"[{position}].")
            errors.extend(item_errors)
            if cleaned is not None:
                out.append(cleaned)
        if errors:
            raise NestedInvalid(errors)
        return out

    return parse
