"""Number, money and date formats for the locales our customers write in.

Babel (CLDR) is the library for this and is not among the project's pinned dependencies;
this is a deliberately small table covering the languages the demo and the shipped
layouts use. Unknown locales fall back to their language, then to English. If the list
grows, switch the filters in ``filters.py`` to Babel rather than growing this table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

NBSP = "\u00a0"
NARROW_NBSP = "\u202f"


@dataclass(frozen=True)
class LocaleFormat:
    decimal: str
    group: str
    #: ``{amount}`` and ``{symbol}`` placeholders.
    money: str
    percent: str
    #: ``{d}``, ``{dd}``, ``{m}``, ``{mm}``, ``{y}`` and ``{month}`` placeholders.
    short_date: str
    long_date: str
    months: tuple[str, ...]
    twelve_hour: bool = False
    #: Numbers below 10 ** (3 + min_grouping - 1) are not grouped (Spanish writes 1234).
    min_grouping: int = 1


def _months(names: str) -> tuple[str, ...]:
    months = tuple(names.split())
    assert len(months) == 12
    return months


_EN_MONTHS = _months("January February March April May June July August September October November December")
_AFTER = "{amount}" + NBSP + "{symbol}"
_BEFORE = "{symbol}" + NBSP + "{amount}"

LOCALES: dict[str, LocaleFormat] = {
    "en": LocaleFormat(".", ",", "{symbol}{amount}", "{n}%", "{dd}/{mm}/{y}", "{d} {month} {y}", _EN_MONTHS),
    "en-US": LocaleFormat(
        ".", ",", "{symbol}{amount}", "{n}%", "{m}/{d}/{y}", "{month} {d}, {y}", _EN_MONTHS, twelve_hour=True
    ),
    "de": LocaleFormat(
        ",",
        ".",
        _AFTER,
        "{n}" + NBSP + "%",
        "{dd}.{mm}.{y}",
        "{d}. {month} {y}",
        _months("Januar Februar März April Mai Juni Juli August September Oktober November Dezember"),
    ),
    "fr": LocaleFormat(
        ",",
        NARROW_NBSP,
        _AFTER,
        "{n}" + NARROW_NBSP + "%",
        "{dd}/{mm}/{y}",
        "{d} {month} {y}",
        _months("janvier février mars avril mai juin juillet août septembre octobre novembre décembre"),
    ),
    "es": LocaleFormat(
        ",",
        ".",
        _AFTER,
        "{n}" + NBSP + "%",
        "{d}/{m}/{y}",
        "{d} de {month} de {y}",
        _months("enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"),
        min_grouping=2,
    ),
    "it": LocaleFormat(
        ",",
        ".",
        _AFTER,
        "{n}%",
        "{dd}/{mm}/{y}",
        "{d} {month} {y}",
        _months(
            "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre"
        ),
    ),
    "nl": LocaleFormat(
        ",",
        ".",
        _BEFORE,
        "{n}%",
        "{dd}-{mm}-{y}",
        "{d} {month} {y}",
        _months("januari februari maart april mei juni juli augustus september oktober november december"),
    ),
    "pt": LocaleFormat(
        ",",
        ".",
        _BEFORE,
        "{n}%",
        "{dd}/{mm}/{y}",
        "{d} de {month} de {y}",
        _months("janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro"),
    ),
    "sv": LocaleFormat(
        ",",
        NBSP,
        _AFTER,
        "{n}" + NBSP + "%",
        "{y}-{mm}-{dd}",
        "{d} {month} {y}",
        _months("januari februari mars april maj juni juli augusti september oktober november december"),
    ),
    "da": LocaleFormat(
        ",",
        ".",
        _AFTER,
        "{n}" + NBSP + "%",
        "{dd}.{mm}.{y}",
        "{d}. {month} {y}",
        _months("januar februar marts april maj juni juli august september oktober november december"),
    ),
}

#: ISO 4217 minor units where they differ from 2.
_MINOR_UNITS = {
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "CLP": 0,
    "VND": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}
_SYMBOLS = {
    "EUR": "€",
    "USD": "$",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "CN¥",
    "INR": "₹",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "SEK": "kr",
    "NOK": "kr",
    "DKK": "kr.",
    "PLN": "zł",
    "BRL": "R$",
}
#: A dollar is plain "$" at home.
_HOME_REGION = {"CAD": "CA", "AUD": "AU", "NZD": "NZ"}


def normalise_locale(tag: str | None) -> tuple[str, str | None]:
    """``'en_us'`` -> ``('en', 'US')``; ``None`` -> ``('en', None)``."""
    if not tag:
        return "en", None
    parts = str(tag).replace("_", "-").split("-")
    language = parts[0].lower() or "en"
    region = parts[1].upper() if len(parts) > 1 and parts[1] else None
    return language, region


def locale_format(tag: str | None) -> LocaleFormat:
    language, region = normalise_locale(tag)
    if region and f"{language}-{region}" in LOCALES:
        return LOCALES[f"{language}-{region}"]
    return LOCALES.get(language, LOCALES["en"])


def to_decimal(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None


def _group(digits: str, fmt: LocaleFormat) -> str:
    if len(digits) < 3 + fmt.min_grouping:
        return digits
    head = len(digits) % 3 or 3
    groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return fmt.group.join(groups)


def format_number(value: object, *, decimals: int = 0, locale: str | None = None) -> str:
    fmt = locale_format(locale)
    amount = to_decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    decimals = max(0, min(int(decimals), 10))
    quantum = Decimal(1).scaleb(-decimals)
    rounded = amount.quantize(quantum, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    text = f"{abs(rounded):f}"
    whole, _, fraction = text.partition(".")
    out = _group(whole, fmt)
    if decimals:
        out += fmt.decimal + fraction.ljust(decimals, "0")
    return sign + out


def currency_symbol(currency: str, locale: str | None) -> str:
    _language, region = normalise_locale(locale)
    if _HOME_REGION.get(currency) and _HOME_REGION[currency] == region:
        return "$"
    return _SYMBOLS.get(currency, currency)


def format_money(
    value: object, currency: str, *, locale: str | None = None, decimals: int | None = None
) -> str:
    code = str(currency).strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"{currency!r} is not an ISO currency code such as EUR or USD")
    places = _MINOR_UNITS.get(code, 2) if decimals is None else decimals
    number = format_number(value, decimals=places, locale=locale)
    sign = ""
    if number.startswith("-"):
        sign, number = "-", number[1:]
    return sign + locale_format(locale).money.format(amount=number, symbol=currency_symbol(code, locale))


def format_percent(value: object, *, decimals: int = 0, locale: str | None = None) -> str:
    number = format_number(to_decimal(value) * 100, decimals=decimals, locale=locale)
    return locale_format(locale).percent.format(n=number)


def _date_parts(day: dt.date, fmt: LocaleFormat) -> dict[str, object]:
    return {
        "d": day.day,
        "dd": f"{day.day:02d}",
        "m": day.month,
        "mm": f"{day.month:02d}",
        "y": day.year,
        "month": fmt.months[day.month - 1],
    }


def format_date(day: dt.date, *, style: str = "long", locale: str | None = None) -> str:
    fmt = locale_format(locale)
    if style == "iso":
        return day.isoformat()
    if style == "short":
        return fmt.short_date.format(**_date_parts(day, fmt))
    if style in ("long", "medium"):
        return fmt.long_date.format(**_date_parts(day, fmt))
    raise ValueError(f"unknown date style {style!r}: use 'short', 'long' or 'iso'")


def format_time(moment: dt.time | dt.datetime, *, locale: str | None = None) -> str:
    fmt = locale_format(locale)
    if fmt.twelve_hour:
        hour = moment.hour % 12 or 12
        return f"{hour}:{moment.minute:02d}{NBSP}{'AM' if moment.hour < 12 else 'PM'}"
    return f"{moment.hour:02d}:{moment.minute:02d}"


def format_datetime(moment: dt.datetime, *, style: str = "long", locale: str | None = None) -> str:
    if style == "iso":
        return moment.isoformat(timespec="minutes")
    return f"{format_date(moment.date(), style=style, locale=locale)}, {format_time(moment, locale=locale)}"
