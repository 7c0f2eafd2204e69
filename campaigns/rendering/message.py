"""From rendered parts to a MIME email that any receiver accepts.

``render_email_parts`` renders a campaign's subject, preheader, HTML and text templates for
one customer; ``build_email`` turns the result into an ``EmailMessage``:

* ``multipart/alternative`` with a text and an HTML part, both UTF-8 quoted-printable, so
  no body line exceeds 76 octets (RFC 5322 allows 998);
* CSS inlined with css-inline (``@media`` rules kept in ``<style>``; remote and local
  stylesheets are never loaded);
* the preheader as hidden text at the top of the body;
* UTM parameters, then the caller's click-tracking rewrite, on every web link (see
  ``links.py`` for what is left alone), and the caller's open pixel before ``</body>``;
* a deterministic ``Message-ID`` from the send-ledger key, so a row re-sent after a crash
  carries the same id and receivers can drop the duplicate;
* ``List-Unsubscribe`` (https and optional mailto) and ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058).

Headers. Every header value has CR, LF and the other line-breaking and control characters
replaced by spaces. Values are then encoded here, with ``email.header.Header`` (RFC 2047
encoded words for anything not plain ASCII, or that contains ``=?``), and handed to the
message pre-folded: Python 3.11's header parser *decodes* encoded words found in a value
it is given and re-emits their content raw, so a subject of ``=?utf-8?q?x=0D=0ABcc:...?=``
would inject a header. As a last check the generated header block is parsed back and its
header names compared with the ones we set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html as html_lib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from email import policy as email_policy
from email.header import Header
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, quote
from typing import Any, Protocol

import css_inline

from campaigns.rendering.context import check_message_context
from campaigns.rendering.environment import DEFAULT_LIMITS, one_line, render_fields
from campaigns.rendering.errors import TemplateError
from campaigns.rendering.limits import RenderLimits
from campaigns.rendering.links import LinkRewriter, TrackedLinks, rewrite_html_links, rewrite_text_links
from campaigns.rendering.plaintext import html_to_text


class FieldRenderer(Protocol):
    """In-process (``environment.render_fields``) or isolated (``isolated.IsolatedRenderer``)."""

    def __call__(
        self, fields: Mapping[str, str], context: Mapping[str, Any], *, limits: RenderLimits
    ) -> dict[str, str]: ...


@dataclass(frozen=True)
class EmailTemplates:
    subject: str
    html: str
    #: Empty or ``None``: the text part is generated from the HTML.
    text: str | None = None
    preheader: str | None = None


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str | None
    preheader: str | None


def render_email_parts(
    templates: EmailTemplates,
    context: Mapping[str, Any],
    *,
    limits: RenderLimits = DEFAULT_LIMITS,
    renderer: FieldRenderer = render_fields,
) -> RenderedEmail:
    """Render every written part for one customer; raises one ``TemplateError`` for all problems."""
    check_message_context(context)
    fields = {"subject": templates.subject, "html": templates.html}
    if templates.preheader and templates.preheader.strip():
        fields["preheader"] = templates.preheader
    if templates.text and templates.text.strip():
        fields["text"] = templates.text
    rendered = renderer(fields, context, limits=limits)
    subject = one_line(rendered["subject"])
    if not subject:
        raise TemplateError.single("subject", "the subject is empty for this customer", reason="empty")
    text = rendered.get("text")
    if text is not None:
        text = re.sub(r"[ \t]+\n", "\n", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
    preheader = one_line(rendered["preheader"]) if "preheader" in rendered else None
    return RenderedEmail(subject=subject, html=rendered["html"], text=text, preheader=preheader or None)


# ---------------------------------------------------------------------------------------
# Headers

_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")


def clean_header_value(value: str) -> str:
    """No CR, LF or other control character survives into a header; tabs become spaces."""
    return " ".join(_BREAKING.sub(" ", str(value)).replace("\t", " ").split())


class _SafeHeader(str):
    """A header value already cleaned, encoded and folded here; emitted byte for byte.

    ``EmailMessage`` stores a value that has a ``name`` as is and calls its ``fold``
    instead of re-parsing it (``email.policy.EmailPolicy.header_store_parse``/``_fold``).
    """

    name: str

    def __new__(cls, name: str, folded: str) -> _SafeHeader:
        obj = super().__new__(cls, folded)
        obj.name = name
        return obj

    def fold(self, *, policy: Any) -> str:
        return f"{self.name}: {self.replace(chr(10), policy.linesep)}{policy.linesep}"


def _encoded(name: str, text: str) -> str:
    """Plain ASCII stays readable; anything else becomes RFC 2047 encoded words (≤ 76 columns)."""
    text = clean_header_value(text)
    if text.isascii() and "=?" not in text and max(map(len, text.split()), default=0) < 900:
        return Header(text, "us-ascii", header_name=name).encode(linesep="\n", maxlinelen=78)
    return Header(text, "utf-8", header_name=name).encode(linesep="\n", maxlinelen=76)


def _set(message: EmailMessage, name: str, folded: str) -> None:
    del message[name]
    message[name] = _SafeHeader(name, folded)


@dataclass(frozen=True)
class Mailbox:
    address: str
    name: str | None = None

    def formatted(self, header_name: str) -> str:
        address = ascii_address(self.address)
        name = clean_header_value(self.name or "")
        if not name:
            return address
        if name.isascii() and "=?" not in name:
            return f'"{quote(name)}" <{address}>'
        return f"{_encoded(header_name, name)} <{address}>"


_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


def ascii_address(address: str) -> str:
    """``ann@bücher.example`` -> ``ann@xn--bcher-kva.example``; refuses what cannot be sent.

    A non-ASCII local part needs SMTPUTF8, which not every relay offers; the delivery side
    decides what to do with such an address, so it is refused here rather than mangled.
    """
    raw = str(address).strip()
    local, at, domain = raw.rpartition("@")
    if not at or not local or not domain or _BREAKING.search(raw) or " " in raw:
        raise ValueError(f"{address!r} is not an email address")
    if not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError(f"{address!r} has a local part that needs SMTPUTF8 or is malformed")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{address!r} has an invalid domain") from None
    if not re.match(r"^[A-Za-z0-9.-]+$", ascii_domain) or "." not in ascii_domain:
        raise ValueError(f"{address!r} has an invalid domain")
    return f"{local}@{ascii_domain.lower()}"


def message_id(ledger_key: str, domain: str) -> str:
    """Same ledger row, same Message-ID: retries after a crash are recognisable duplicates."""
    host = ascii_address(f"x@{domain}").partition("@")[2]
    digest = hashlib.sha256(str(ledger_key).encode("utf-8")).hexdigest()[:40]
    return f"<{digest}@{host}>"


# ---------------------------------------------------------------------------------------
# Body


@dataclass(frozen=True)
class Tracking:
    """What the caller wants done to links; every part optional."""

    rewrite_link: LinkRewriter | None = None
    open_pixel_url: str | None = None
    utm: Mapping[str, str] | None = None
    #: Only add UTM to links on these hosts (and their subdomains); ``None`` = every host.
    utm_hosts: Collection[str] | None = None
    #: URLs never rewritten (the unsubscribe URL is always added).
    untracked_urls: Collection[str] = field(default_factory=tuple)


_INLINER = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)


def with_preheader(markup: str, preheader: str | None) -> str:
    """The preheader as the first, hidden text of the body: inbox previews show it."""
    if not preheader:
        return markup
    padding = "&#847;&zwnj;&nbsp;" * max(0, 90 - len(preheader))
    hidden = (
        '<div style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;'
        f'overflow:hidden;mso-hide:all;" aria-hidden="true">{html_lib.escape(preheader)}{padding}</div>'
    )
    match = _BODY_OPEN.search(markup)
    if match is None:
        return hidden + markup
    return markup[: match.end()] + hidden + markup[match.end() :]


def with_open_pixel(markup: str, pixel_url: str | None) -> str:
    if not pixel_url:
        return markup
    pixel = (
        f'<img src="{html_lib.escape(pixel_url, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;">'
    )
    closes = list(_BODY_CLOSE.finditer(markup))
    if not closes:
        return markup + pixel
    at = closes[-1].start()
    return markup[:at] + pixel + markup[at:]


def inline_css(markup: str) -> str:
    try:
        return _INLINER.inline(markup)
    except (css_inline.InlineError, ValueError) as exc:
        raise TemplateError.single("html", f"the CSS could not be inlined: {exc}", reason="invalid") from None


@dataclass(frozen=True)
class BuiltEmail:
    message: EmailMessage
    #: Destination of each tracked link, by the index given to ``rewrite_link``.
    links: list[str]
    #: The message as generated and checked (CRLF line ends), ready for SMTP.
    raw: bytes

    def as_bytes(self) -> bytes:
        return self.raw


def build_email(
    rendered: RenderedEmail,
    *,
    sender: Mailbox,
    recipient: Mailbox,
    ledger_key: str,
    message_id_domain: str,
    unsubscribe_url: str,
    unsubscribe_mailto: str | None = None,
    tracking: Tracking | None = None,
    reply_to: Mailbox | None = None,
    date: dt.datetime | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> BuiltEmail:
    if not unsubscribe_url.startswith("https://"):
        raise ValueError("RFC 8058 one-click unsubscribe needs an https URL")
    tracking = tracking or Tracking()
    untracked = {unsubscribe_url, *tracking.untracked_urls}
    links = TrackedLinks()

    markup = inline_css(with_preheader(rendered.html, rendered.preheader))
    markup = rewrite_html_links(
        markup,
        rewrite_link=tracking.rewrite_link,
        links=links,
        utm=tracking.utm,
        utm_hosts=tracking.utm_hosts,
        untracked=untracked,
    )
    markup = with_open_pixel(markup, tracking.open_pixel_url)
    text = rendered.text if rendered.text is not None else html_to_text(rendered.html)
    text = rewrite_text_links(
        text,
        rewrite_link=tracking.rewrite_link,
        links=links,
        utm=tracking.utm,
        utm_hosts=tracking.utm_hosts,
        untracked=untracked,
    )

    message = EmailMessage(policy=email_policy.SMTP)
    _set(message, "From", sender.formatted("From"))
    _set(message, "To", recipient.formatted("To"))
    if reply_to is not None:
        _set(message, "Reply-To", reply_to.formatted("Reply-To"))
    _set(message, "Subject", _encoded("Subject", rendered.subject))
    _set(message, "Date", format_datetime(date or dt.datetime.now(dt.UTC)))
    _set(message, "Message-ID", message_id(ledger_key, message_id_domain))
    _set(message, "List-Unsubscribe", _list_unsubscribe(unsubscribe_url, unsubscribe_mailto))
    _set(message, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    for name, value in (extra_headers or {}).items():
        if not _HEADER_NAME.match(name) or name.lower() in _RESERVED:
            raise ValueError(f"{name!r} cannot be set as an extra header")
        _set(message, name, _encoded(name, value))
    expected = [name.lower() for name in message]

    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(markup, subtype="html", charset="utf-8", cte="quoted-printable")
    raw = message.as_bytes()
    _check_headers(raw, expected)
    return BuiltEmail(message=message, links=list(links.destinations), raw=raw)


_RESERVED = frozenset(
    [
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    ]
)


def _list_unsubscribe(https_url: str, mailto: str | None) -> str:
    entries = [f"<{_header_url(https_url)}>"]
    if mailto:
        target = mailto if mailto.startswith("mailto:") else f"mailto:{mailto}"
        entries.insert(0, f"<{_header_url(target)}>")
    return ",\n ".join(entries)


def _header_url(url: str) -> str:
    cleaned = clean_header_value(url)
    if cleaned != url.strip() or not cleaned.isascii() or any(c in cleaned for c in " <>,"):
        raise ValueError(f"{url!r} cannot go into a List-Unsubscribe header as it is")
    if len(cleaned) > 900:
        raise ValueError("an unsubscribe URL longer than 900 characters does not fit a header line")
    return cleaned


def _check_headers(raw: bytes, expected: list[str]) -> None:
    """Parse the generated header block back: exactly the headers we set, nothing injected."""
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    parsed = BytesHeaderParser(policy=email_policy.compat32).parsebytes(head)
    names = [name.lower() for name in parsed]
    extra = set(names) - set(expected) - {"mime-version", "content-type", "content-transfer-encoding"}
    if extra or len(names) != len(set(names)) or parsed.defects:
        raise ValueError(
            f"refusing to send a message whose headers do not parse back as set: {sorted(extra)}"
        )
    for line in head.split(b"\r\n"):
        if len(line) > 998:
            raise ValueError("a header line is longer than 998 octets")
