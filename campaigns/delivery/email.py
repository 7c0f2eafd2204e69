"""Email through Django's email backends: SMTP, or an ESP through django-anymail.

A chunk opens ONE connection and sends every message over it; each message's answer is read on
its own so one refused address never stops the chunk. SMTP replies map to the ledger by class:
4xx is temporary (retry later with backoff), 5xx is permanent (failed). A dropped connection
is reopened for the rest of the chunk and the message it hit is retried later.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket

from django.conf import settings
from django.core.mail import BadHeaderError, EmailMultiAlternatives, get_connection

from campaigns.delivery.outcomes import Outcome, from_http_status

try:
    from anymail.exceptions import (
        AnymailAPIError,
        AnymailError,
        AnymailInvalidAddress,
        AnymailRecipientsRefused,
        AnymailRequestsAPIError,
    )
except ImportError:  # pragma: no cover - anymail is a pinned dependency
    AnymailError = AnymailAPIError = AnymailInvalidAddress = AnymailRecipientsRefused = None  # type: ignore
    AnymailRequestsAPIError = None  # type: ignore


class _Prebuilt:
    """What Django's backends get from `message()`: here the bytes are already made."""

    def __init__(self, raw: bytes):
        self.raw = raw

    def as_bytes(self, *args, **kwargs) -> bytes:
        return self.raw

    def as_string(self, *args, **kwargs) -> str:
        return self.raw.decode("utf-8", errors="replace")

    def get_charset(self):
        return None


class PrebuiltEmail(EmailMultiAlternatives):
    """A message whose MIME bytes the rendering package built (CSS inlined, QP, encoded headers).

    Django's SMTP backend's connection sends `raw` as it is (see `EmailDelivery.deliver`), and
    the locmem, file and console backends write it as it is: building it again with
    `email.message` would cost milliseconds per message and re-parse the headers. ESP backends
    (anymail) read the parts instead: subject, text, HTML and the extra headers, all set too.
    """

    def __init__(
        self,
        *,
        raw: bytes,
        envelope_from: str,
        from_email: str,
        to: str,
        subject: str,
        text: str,
        html: str,
        headers: dict[str, str],
        reply_to: str = "",
    ):
        super().__init__(
            subject=subject,
            body=text,
            from_email=from_email,
            to=[to],
            headers=headers,
            reply_to=[reply_to] if reply_to else None,
        )
        if html:
            self.attach_alternative(html, "text/html")
        self.raw = raw
        self.envelope_from = envelope_from
        self.envelope_to = to

    def message(self, *args, **kwargs):
        return _Prebuilt(self.raw)


def provider_name(backend_path: str | None = None) -> str:
    """A short name for rate limits and reports: smtp, anymail.sendgrid, locmem…"""
    path = backend_path or settings.EMAIL_BACKEND
    parts = path.split(".")
    if parts[0] == "anymail" and len(parts) > 2:
        return f"anymail.{parts[2]}"
    return parts[-2] if len(parts) > 1 else path


def _smtp_code_outcome(code: int, text: bytes | str) -> Outcome:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    message = f"SMTP {code} {detail}".strip()
    if 400 <= code < 500:
        return Outcome.retry(message)
    return Outcome.failed(message)


def classify(exc: BaseException) -> Outcome:
    """Map an exception from a backend to retry or permanent failure.

    Order matters: smtplib's exceptions and anymail's requests-based errors are OSErrors too.
    """
    if isinstance(exc, BadHeaderError):
        return Outcome.failed(f"invalid header: {exc}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()), (550, b"recipient refused"))
        return _smtp_code_outcome(code, text)
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data error, others
        return _smtp_code_outcome(exc.smtp_code, exc.smtp_error)
    if AnymailError is not None and isinstance(exc, AnymailError):
        if isinstance(exc, (AnymailRecipientsRefused, AnymailInvalidAddress)):
            return Outcome.failed(f"ESP refused the recipient: {exc}")
        status = getattr(exc, "status_code", None)
        if isinstance(exc, AnymailAPIError) and status:
            verdict = from_http_status(int(status))
            return (
                Outcome.retry(f"ESP HTTP {status}")
                if verdict != "failed"
                else Outcome.failed(f"ESP HTTP {status}: {exc}")
            )
        return Outcome.retry(f"ESP error: {exc}")
    if isinstance(exc, (smtplib.SMTPServerDisconnected, socket.timeout, ConnectionError, OSError)):
        return Outcome.retry(f"connection problem: {type(exc).__name__}: {exc}")
    return Outcome.failed(f"{type(exc).__name__}: {exc}")


def _esp_message_id(message) -> str:
    status = getattr(message, "anymail_status", None)
    if status is not None and getattr(status, "message_id", None) is not None:
        return str(status.message_id)
    return ""


class EmailDelivery:
    """One open connection for one chunk (use as a context manager)."""

    def __init__(self, backend: str | None = None):
        from django.core.mail.backends.smtp import EmailBackend as SmtpBackend

        self.connection = get_connection(backend, fail_silently=False)
        self.provider = provider_name(backend)
        self.raw_smtp = type(self.connection) is SmtpBackend

    def __enter__(self) -> EmailDelivery:
        # An unreachable server is not an error here: each message then fails as a retry.
        with contextlib.suppress(Exception):
            self.connection.open()
        return self

    def __exit__(self, *exc_info) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection is not news
            self.connection.close()

    def deliver(self, message, send_id: int | None = None) -> Outcome:
        message.connection = self.connection
        if send_id is not None and self.provider.startswith("anymail."):
            # ESP webhooks echo metadata back: the send is found without a lookup by ESP id.
            message.metadata = {**(getattr(message, "metadata", None) or {}), "send_id": str(send_id)}
        try:
            if self.raw_smtp and isinstance(message, PrebuiltEmail):
                accepted = self._send_raw(message)
            else:
                accepted = self.connection.send_messages([message])
        except Exception as exc:  # noqa: BLE001 - every failure becomes a ledger outcome
            outcome = classify(exc)
            closing = isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 421
            if closing or isinstance(exc, (smtplib.SMTPServerDisconnected, socket.timeout, ConnectionError)):
                self._reopen()
            return outcome
        status = getattr(message, "anymail_status", None)
        if status is not None and status.status and status.status <= {"rejected", "invalid"}:
            return Outcome.failed(f"ESP {'/'.join(sorted(status.status))}")
        if accepted == 0:
            return Outcome.retry("the backend accepted nothing")
        return Outcome.sent(_esp_message_id(message))

    def _send_raw(self, message: PrebuiltEmail) -> int:
        """The prebuilt bytes over the SMTP backend's own (opened, TLS'd, logged-in) connection."""
        # Converted before MAIL FROM: an address smtplib cannot encode fails this message alone.
        envelope_from = envelope_address(message.envelope_from)
        envelope_to = envelope_address(message.envelope_to)
        if self.connection.connection is None:
            self.connection.open()
        smtp = self.connection.connection
        try:
            smtp.sendmail(envelope_from, [envelope_to], message.raw)
        except smtplib.SMTPException:
            raise  # smtplib has reset the transaction itself
        except Exception:
            # Anything else mid-transaction (after MAIL FROM) would poison the next message on
            # this connection ("503 nested MAIL command"): reset it first.
            with contextlib.suppress(Exception):
                smtp.rset()
            raise
        return 1

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        with contextlib.suppress(Exception):  # still down: the next message will say so
            self.connection.open()


def envelope_address(address: str) -> str:
    """An address for the SMTP envelope: an internationalised domain in its ASCII (IDNA) form.

    Addresses are stored as the customer gave them (anna@bücher.example); smtplib speaks ASCII
    unless the server offers SMTPUTF8, and the domain has an ASCII spelling that every server takes.
    """
    local, at, domain = address.rpartition("@")
    if at and domain and not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}{at}{domain}"
