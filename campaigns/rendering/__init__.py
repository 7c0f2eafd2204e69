"""Marketer templates, rendered safely and built into messages.

Pure Python (Jinja2, css-inline, the standard library): no Django import, so it is tested
alone. The Django side builds the plain context dicts (``context.py`` is the contract) and
calls these:

* :func:`render_parts` -- any parts (subject, preheader, html, text, push_*) with a context
  and :class:`RenderLimits`; the preview API.
* :func:`render_email` then :func:`build_email` -- one customer's email, as MIME bytes.
* :func:`render_push` -- one customer's push payload.
* :func:`check_source` -- compile a part when a template is saved.
* :class:`TemplateError` -- every failure of a marketer's template, with ``problems``
  (``field``, ``line``, ``message``, ``reason``) and ``as_dicts()`` for the API.
* :class:`IsolatedRenderer` -- the same rendering in a child process with a hard timeout,
  for previews of templates not seen before.
"""

from campaigns.rendering.context import CONTEXT_NAMES, ContextError, check_message_context, check_plain
from campaigns.rendering.environment import (
    DEFAULT_LIMITS,
    PART_KINDS,
    RenderedHtml,
    check_source,
    render_message_parts,
    render_parts,
)
from campaigns.rendering.errors import TemplateError, TemplateProblem
from campaigns.rendering.isolated import IsolatedRenderer
from campaigns.rendering.limits import RenderLimits
from campaigns.rendering.links import LinkRewriter
from campaigns.rendering.message import (
    BuiltEmail,
    EmailTemplates,
    Mailbox,
    RenderedEmail,
    Tracking,
    build_email,
    message_id,
    render_email,
)
from campaigns.rendering.push import PushLimits, PushTemplates, render_push

__all__ = [
    "CONTEXT_NAMES",
    "DEFAULT_LIMITS",
    "PART_KINDS",
    "BuiltEmail",
    "ContextError",
    "EmailTemplates",
    "IsolatedRenderer",
    "LinkRewriter",
    "Mailbox",
    "PushLimits",
    "PushTemplates",
    "RenderLimits",
    "RenderedEmail",
    "RenderedHtml",
    "TemplateError",
    "TemplateProblem",
    "Tracking",
    "build_email",
    "check_message_context",
    "check_plain",
    "check_source",
    "message_id",
    "render_email",
    "render_message_parts",
    "render_parts",
    "render_push",
]
