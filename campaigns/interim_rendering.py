"""INTERIM: a small stand-in for `campaigns.rendering` until that package is merged.

The rendering package (branch `rendering`) owns the sandbox with time and size limits, MIME
building with RFC 8058 headers, link rewriting and the open pixel. Until it lands on main,
campaigns need *something* real to send with; this module offers the same two entry points
with the same shapes, on Jinja's ImmutableSandboxedEnvironment and Django's email classes,
without the time/size budget. `campaigns.composition` imports from here only when
`campaigns.rendering` does not provide them; delete this file after the merge.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import jinja2
from django.core.mail import EmailMultiAlternatives
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError


@dataclass(frozen=True)
class TemplateProblem:
    field: str
    line: int | None
    message: str
    reason: str = "error"


class TemplateError(Exception):
    def __init__(self, problems):
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field} line {p.line}: {p.message}" for p in self.problems))

    def as_dicts(self) -> list[dict[str, object]]:
        return [{"field": p.field, "line": p.line, "message": p.message} for p in self.problems]


_HTML_ENV = ImmutableSandboxedEnvironment(autoescape=True, undefined=jinja2.Undefined)
_TEXT_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=jinja2.Undefined)


@functools.lru_cache(maxsize=256)
def _compiled(kind: str, field: str, source: str) -> jinja2.Template:
    env = _HTML_ENV if kind == "html" else _TEXT_ENV
    return env.from_string(source)


def _line_of(exc: BaseException) -> int | None:
    line = getattr(exc, "lineno", None)
    if line:
        return line
    tb = exc.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def render(parts: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    rendered: dict[str, str] = {}
    problems: list[TemplateProblem] = []
    for field, source in parts.items():
        kind = "html" if field == "html" else "text"
        try:
            rendered[field] = _compiled(kind, field, source or "").render(context)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(TemplateProblem(field, exc.lineno, f"syntax error: {exc.message}", "syntax"))
        except SecurityError as exc:
            problems.append(
                TemplateProblem(field, _line_of(exc), f"not allowed in templates: {exc}", "security")
            )
        except Exception as exc:  # noqa: BLE001 - a broken template is reported, never raised
            problems.append(TemplateProblem(field, _line_of(exc), f"{type(exc).__name__}: {exc}"))
    if problems:
        raise TemplateError(problems)
    for field in ("subject", "preheader", "push_title", "push_body"):
        if field in rendered:
            rendered[field] = re.sub(r"\s+", " ", rendered[field]).strip()
    return rendered


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "head"):
            self.skip += 1
        elif tag in ("br", "p", "div", "tr", "h1", "h2", "h3", "li"):
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("style", "script", "head") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def text_from_html(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    text = "".join(parser.out)
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


_HREF = re.compile(r'(<a\b[^>]*?\shref\s*=\s*)(["\'])(.*?)\2', re.IGNORECASE | re.DOTALL)


def build_email_message(
    *,
    rendered: Mapping[str, str],
    from_email: str,
    to: str,
    reply_to: str = "",
    headers: Mapping[str, str] | None = None,
    rewrite_link: Callable[[str, int], str] | None = None,
    untracked: tuple[str, ...] = (),
    utm: Mapping[str, str] | None = None,
    open_pixel_url: str | None = None,
    unsubscribe_url: str | None = None,
    connection=None,
) -> tuple[EmailMultiAlternatives, list[str]]:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    links: list[str] = []

    def with_utm(url: str) -> str:
        if not utm:
            return url
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        present = {k for k, _ in query}
        query += [(k, v) for k, v in utm.items() if v and k not in present]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def replace(match: re.Match[str]) -> str:
        url = html_lib.unescape(match.group(3)).strip()
        if not url.lower().startswith(("http://", "https://")) or url in untracked:
            return match.group(0)
        destination = with_utm(url)
        index = len(links)
        links.append(destination)
        new = rewrite_link(destination, index) if rewrite_link else destination
        return f"{match.group(1)}{match.group(2)}{html_lib.escape(new, quote=True)}{match.group(2)}"

    body_html = rendered.get("html", "")
    if body_html:
        body_html = _HREF.sub(replace, body_html)
        if open_pixel_url:
            pixel = f'<img src="{html_lib.escape(open_pixel_url)}" width="1" height="1" alt="" style="display:none">'
            body_html = (
                body_html.replace("</body>", pixel + "</body>")
                if "</body>" in body_html
                else body_html + pixel
            )
    text = rendered.get("text") or (text_from_html(rendered.get("html", "")) if rendered.get("html") else "")
    all_headers = dict(headers or {})
    if unsubscribe_url:
        all_headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        all_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = EmailMultiAlternatives(
        subject=rendered.get("subject", ""),
        body=text,
        from_email=from_email,
        to=[to],
        reply_to=[reply_to] if reply_to else None,
        headers=all_headers,
        connection=connection,
    )
    if body_html:
        message.attach_alternative(body_html, "text/html")
    return message, links


def push_payload(*, rendered: Mapping[str, str], click_url: str) -> dict[str, Any]:
    return {
        "title": rendered.get("push_title", ""),
        "body": rendered.get("push_body", ""),
        "icon": rendered.get("push_icon", "") or None,
        "url": click_url,
    }
