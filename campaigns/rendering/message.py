"""From a campaign's templates and one customer's context to a MIME email any receiver accepts.

``render_email`` renders the subject, preheader, HTML and text templates for one customer;
``build_email`` turns the result into the message:

* ``multipart/alternative`` with a text and an HTML part, both UTF-8 quoted-printable, so
  no body line exceeds 76 octets (RFC 5322 allows 998), CRLF line ends throughout;
* CSS inlined with css-inline (``@media`` rules kept in ``<style>``; remote and local
  stylesheets never loaded), links found and the text part written -- once per template
  skeleton, see ``body_plan.py``;
* the preheader as hidden text at the top of the body;
* UTM parameters, then the caller's click tracking, on every web link (``links.py`` says
  which are left alone), and the caller's open pixel before ``</body>``;
* a deterministic ``Message-ID`` (and MIME boundary) from the send-ledger key, so a row
  re-sent after a crash is byte for byte the same message and receivers can drop it;
* ``List-Unsubscribe`` (https, and mailto when given) and ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058).

Headers. Every header value has CR, LF and the other line-breaking and control characters
replaced by spaces, then is encoded here -- RFC 2047 encoded words for anything not plain
ASCII or containing ``=?`` -- and written out as bytes. The message is assembled here
rather than by ``email.message.EmailMessage``: on this Python (3.11.7) its header parser
decodes encoded words found in a value it is given and re-emits their content raw, so a
subject of ``=?utf-8?q?x=0D=0ABcc:...?=`` would inject a header; and its pure-Python
quoted-printable encoder takes ~4 ms per message against ~0.05 ms for ``binascii``.
``BuiltEmail.message()`` parses the bytes back into an ``EmailMessage`` for code that
wants one.
"""

from __future__ import annotations

import binascii
import datetime as dt
import email
import email.policy
import functools
import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, quote
from typing import Any, Protocol

from campaigns.rendering.body_plan import plan_body
from campaigns.rendering.context import check_message_context
from campaigns.rendering.environment import DEFAULT_LIMITS, RenderedHtml, one_line, render_message_parts
from campaigns.rendering.errors import TemplateError
from campaigns.rendering.limits import RenderLimits
from campaigns.rendering.links import LinkRewriter, LinkTracker, track_text_links


class PartRenderer(Protocol):
    """In-process (``environment.render_message_parts``) or isolated (``isolated.IsolatedRenderer``)."""

    def __call__(
        self, parts: Mapping[str, str], context: Mapping[str, Any], *, limits: RenderLimits
    ) -> dict[str, str | RenderedHtml]: ...


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
    html_part: RenderedHtml
    #: ``None`` when the text part is to be generated from the HTML.
    text: str | None
    preheader: str | None

    @property
    def html(self) -> str:
        """The rendered HTML as written (before CSS inlining and link tracking)."""
        return self.html_part.html


def render_email(
    templates: EmailTemplates,
    context: Mapping[str, Any],
    *,
    limits: RenderLimits = DEFAULT_LIMITS,
    renderer: PartRenderer = render_message_parts,
) -> RenderedEmail:
    """Render every written part for one customer; raises one ``TemplateError`` for all problems."""
    check_message_context(context)
    parts = {"subject": templates.subject, "html": templates.html}
    if templates.preheader and templates.preheader.strip():
        parts["preheader"] = templates.preheader
    if templates.text and templates.text.strip():
        parts["text"] = templates.text
    rendered = renderer(parts, context, limits=limits)
    subject = clean_header_value(str(rendered["subject"]))  # as it will read in the inbox
    if not subject:
        raise TemplateError.single("subject", "the subject is empty for this customer", reason="empty")
    text = rendered.get("text")
    if text is not None:
        text = re.sub(r"[ \t]+\n", "\n", str(text))
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
    preheader = one_line(str(rendered["preheader"])) if "preheader" in rendered else None
    html_part = rendered["html"]
    assert isinstance(html_part, RenderedHtml)
    return RenderedEmail(subject=subject, html_part=html_part, text=text, preheader=preheader or None)


# ---------------------------------------------------------------------------------------
# Headers

_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+$")
#: Longest display name kept: a header line must stay under 998 octets.
_MAX_NAME = 200


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_header_value(value: str) -> str:
    """No CR, LF or other control character survives into a header; runs of space become one;
    a lone surrogate (valid in JSON, not in UTF-8) becomes U+FFFD."""
    text = _BREAKING.sub(" ", str(value)).replace("\t", " ")
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", text)
    return " ".join(text.split())


def encode_header(name: str, value: str) -> str:
    """A cleaned header value, RFC 2047-encoded where needed, folded with CRLF + space.

    Plain ASCII stays readable; anything else -- or ASCII holding ``=?`` (which a reader
    would decode) or a word too long to fold -- becomes encoded words, which fold anywhere.
    """
    text = clean_header_value(value)
    if text.isascii() and "=?" not in text:
        if len(name) + 2 + len(text) <= 78:
            return text
        if max(map(len, text.split()), default=0) < 900:
            return Header(text, "us-ascii", header_name=name).encode(linesep="\r\n", maxlinelen=78)
    return Header(text, "utf-8", header_name=name).encode(linesep="\r\n", maxlinelen=76)


def ascii_address(address: str) -> str:
    """``ann@bücher.example`` -> ``ann@xn--bcher-kva.example``; refuses what cannot be sent.

    A non-ASCII local part needs SMTPUTF8, which not every relay offers; the delivery side
    decides what to do with such an address, so it is refused here rather than mangled.
    """
    raw = str(address).strip()
    local, at, domain = raw.rpartition("@")
    if not at or not local or not domain or _BREAKING.search(raw) or " " in raw or len(raw) > 254:
        raise ValueError(f"{address!r} is not an email address")
    if not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError(f"{address!r} has a local part that needs SMTPUTF8 or is malformed")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{address!r} has an invalid domain") from None
    if not _DOMAIN.match(ascii_domain) or "." not in ascii_domain:
        raise ValueError(f"{address!r} has an invalid domain")
    return f"{local}@{ascii_domain.lower()}"


@dataclass(frozen=True)
class Mailbox:
    address: str
    name: str | None = None

    def formatted(self, header_name: str) -> str:
        return _formatted_mailbox(header_name, self.address, self.name or "")


@functools.lru_cache(maxsize=1024)
def _formatted_mailbox(header_name: str, address: str, name: str) -> str:
    """Cached: a campaign's sender is the same on every message."""
    address = ascii_address(address)
    name = clean_header_value(name)[:_MAX_NAME]
    if not name:
        return address
    if name.isascii() and "=?" not in name:
        return f'"{quote(name)}" <{address}>'
    encoded = Header(name, "utf-8", header_name=header_name).encode(linesep="\r\n", maxlinelen=76)
    return f"{encoded} <{address}>"


def message_id(ledger_key: str, domain: str) -> str:
    """Same ledger row, same Message-ID: retries after a crash are recognisable duplicates."""
    host = ascii_address(f"x@{domain}").partition("@")[2]
    digest = hashlib.sha256(str(ledger_key).encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"<{digest}@{host}>"


def _header_url(url: str) -> str:
    cleaned = clean_header_value(url)
    if cleaned != url.strip() or not cleaned.isascii() or any(c in cleaned for c in " <>,"):
        raise ValueError(f"{url!r} cannot go into a List-Unsubscribe header as it is")
    if len(cleaned) > 900:
        raise ValueError("an unsubscribe URL longer than 900 characters does not fit a header line")
    return cleaned


def list_unsubscribe(https_url: str, mailto: str | None) -> str:
    entries = [f"<{_header_url(https_url)}>"]
    if mailto:
        target = mailto if mailto.lower().startswith("mailto:") else f"mailto:{mailto}"
        entries.insert(0, f"<{_header_url(target)}>")
    return ",\r\n ".join(entries)


_RESERVED = frozenset(
    [
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "sender",
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


# ---------------------------------------------------------------------------------------
# The message


@dataclass(frozen=True)
class Tracking:
    """What the caller wants done to links; every part optional."""

    #: ``rewrite_link(destination_url, index) -> tracked_url`` for each web link.
    rewrite_link: LinkRewriter | None = None
    open_pixel_url: str | None = None
    #: ``{"source": "reachly", "medium": "email", "campaign": "spring"}`` (``utm_`` optional).
    utm: Mapping[str, str] | None = None
    #: Only add UTM to links on these hosts (and their subdomains); ``None`` = every host.
    utm_hosts: Collection[str] | None = None
    #: URLs never tracked nor given UTM; the unsubscribe URL always is one. Pass the
    #: customer's ``links.preferences_url`` too.
    untracked_urls: Collection[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class BuiltEmail:
    #: The message as sent (CRLF line ends), ready for ``smtplib`` ``sendmail``.
    raw: bytes
    message_id: str
    #: Destination (after UTM) of each tracked link, by the index given to ``rewrite_link``.
    links: list[str]
    subject: str
    #: The bodies as they are in the message (CSS inlined, links tracked, pixel added),
    #: for providers that take parts rather than a MIME message.
    text: str
    html: str
    #: The header values as set, unencoded.
    headers: dict[str, str]

    def message(self) -> EmailMessage:
        """The message parsed back, for code that wants an ``email.message.EmailMessage``."""
        parsed = email.message_from_bytes(self.raw, policy=email.policy.SMTP)
        assert isinstance(parsed, EmailMessage)
        return parsed


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
    headers: Mapping[str, str] | None = None,
    require_https: bool = True,
) -> BuiltEmail:
    """The MIME message for one ledger row. Raises ``ValueError`` for bad addresses or headers
    (the caller's data) and ``TemplateError`` if the HTML cannot be prepared.

    ``require_https=False`` is for development sites served over plain http: the http
    unsubscribe URL is accepted and ``List-Unsubscribe-Post`` is left out, because RFC 8058
    one-click unsubscribe is defined for https URLs only.
    """
    one_click = unsubscribe_url.startswith("https://")
    if not one_click and (require_https or not unsubscribe_url.startswith("http://")):
        raise ValueError("RFC 8058 one-click unsubscribe needs an https URL")
    tracking = tracking or Tracking()
    links = LinkTracker(
        rewrite_link=tracking.rewrite_link,
        utm=tracking.utm,
        utm_hosts=tracking.utm_hosts,
        untracked=(unsubscribe_url, *tracking.untracked_urls),
    )
    plan, values = plan_body(
        rendered.html_part, preheader=bool(rendered.preheader), text=rendered.text is None
    )
    html = plan.html_for(
        values.escaped, preheader=rendered.preheader, pixel_url=tracking.open_pixel_url, links=links
    )
    text = (
        plan.text_for(values.raw, links) if rendered.text is None else track_text_links(rendered.text, links)
    )

    identifier = message_id(ledger_key, message_id_domain)
    values_set: dict[str, str] = {
        "From": sender.formatted("From"),
        "To": recipient.formatted("To"),
    }
    if reply_to is not None:
        values_set["Reply-To"] = reply_to.formatted("Reply-To")
    values_set["Subject"] = encode_header("Subject", rendered.subject)
    values_set["Date"] = format_datetime(date or dt.datetime.now(dt.UTC))
    values_set["Message-ID"] = identifier
    values_set["List-Unsubscribe"] = list_unsubscribe(unsubscribe_url, unsubscribe_mailto)
    if one_click:
        values_set["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name) or name.lower() in _RESERVED or len(name) > 76:
            raise ValueError(f"{name!r} cannot be set as an extra header")
        values_set[name] = encode_header(name, value)

    boundary = "=_" + hashlib.sha256(identifier.encode("ascii")).hexdigest()[:32]
    raw = _mime(values_set, boundary, text, html)
    shown = {name: clean_header_value(value) for name, value in values_set.items()}
    shown["Subject"] = rendered.subject
    return BuiltEmail(
        raw=raw,
        message_id=identifier,
        links=links.destinations,
        subject=rendered.subject,
        text=text,
        html=html,
        headers=shown,
    )


_NEWLINES = re.compile(r"\r\n|\r|\n")


def _quoted_printable(body: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends and lines of at most 76 octets."""
    body = body.replace("\n", "\r\n") if "\r" not in body else _NEWLINES.sub("\r\n", body)
    return binascii.b2a_qp(body.encode("utf-8", "replace"), istext=True)  # "replace": lone surrogates


def _mime(headers: Mapping[str, str], boundary: str, text: str, html: str) -> bytes:
    """Assemble the message. A boundary starting with ``=_`` cannot occur in quoted-printable
    text (``=`` is always followed by two hex digits or a line end there)."""
    head: list[str] = [f"{name}: {value}" for name, value in headers.items()]
    head.append("MIME-Version: 1.0")
    head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    _check_head(head)
    part_head = "Content-Type: text/{}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    return b"".join(
        (
            "\r\n".join(head).encode("ascii"),
            b"\r\n\r\n",
            f"--{boundary}\r\n{part_head.format('plain')}".encode("ascii"),
            _quoted_printable(text),
            f"\r\n--{boundary}\r\n{part_head.format('html')}".encode("ascii"),
            _quoted_printable(html),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )


def _check_head(lines: Sequence[str]) -> None:
    """Last line of defence: every header line is ASCII, unbroken and under 998 octets."""
    for entry in lines:
        for number, line in enumerate(entry.split("\r\n")):
            if (
                not line.isascii()
                or "\r" in line
                or "\n" in line
                or len(line) > 998
                or (number > 0 and line[:1] not in (" ", "\t"))
            ):
                raise ValueError(f"refusing to write a malformed header line: {line[:60]!r}")
