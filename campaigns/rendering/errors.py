"""One error type for everything that can go wrong in a marketer's template.

The preview API answers ``400 {"errors": [{field, line, message}]}`` and a send marks the
ledger row failed with the same message, so whatever broke -- a syntax error, a missing
variable, a sandbox refusal, a limit -- ends up as a :class:`TemplateProblem` naming the
part of the message, the line in the marketer's source and what to do about it.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import jinja2
from jinja2.sandbox import SecurityError

from campaigns.rendering.limits import LimitExceeded


@dataclass(frozen=True)
class TemplateProblem:
    field: str
    line: int | None
    message: str
    #: Short machine-readable code: syntax, undefined, security, time_limit, output_limit,
    #: value_limit, recursion, memory, empty, not_found, invalid, crashed, error.
    reason: str = "error"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class TemplateError(Exception):
    """A template could not be rendered. Carries one problem per broken part."""

    def __init__(self, problems: Iterable[TemplateProblem]) -> None:
        self.problems = tuple(problems)
        if not self.problems:
            raise ValueError("a TemplateError needs at least one problem")
        super().__init__("; ".join(_describe(p) for p in self.problems))

    @classmethod
    def single(
        cls, field: str, message: str, *, line: int | None = None, reason: str = "error"
    ) -> TemplateError:
        return cls([TemplateProblem(field=field, line=line, message=message, reason=reason)])

    @property
    def field(self) -> str:
        return self.problems[0].field

    @property
    def line(self) -> int | None:
        return self.problems[0].line

    @property
    def message(self) -> str:
        return self.problems[0].message

    @property
    def reason(self) -> str:
        return self.problems[0].reason

    def as_dicts(self) -> list[dict[str, object]]:
        """The ``errors`` list of the preview API."""
        return [{"field": p.field, "line": p.line, "message": p.message} for p in self.problems]


def _describe(problem: TemplateProblem) -> str:
    where = f"{problem.field}, line {problem.line}" if problem.line else problem.field
    return f"{where}: {problem.message}"


def source_filename(field: str) -> str:
    """The pseudo file name a marketer's part is compiled under; tracebacks carry it."""
    return f"<{field}>"


def _lines_from_traceback(exc: BaseException, field: str) -> tuple[int | None, str | None]:
    """Find the marketer's line, and the shipped block it failed inside, from a traceback.

    Jinja rewrites traceback frames of template code so they carry the template's file
    name and source line; our own parts are compiled as ``<field>``. Read from the frames
    directly: no source file is opened to report an error.
    """
    marker = source_filename(field)
    line: int | None = None
    inner: str | None = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename == marker:
            line = lineno
            inner = None
        elif filename.startswith("shipped:"):
            inner = f"{filename.removeprefix('shipped:')} line {lineno}"
    return line, inner


def problem_from_exception(exc: BaseException, field: str) -> TemplateProblem:
    """Translate whatever a render raised into words a marketer can act on."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        line = (
            exc.lineno if (exc.filename or "") in ("", source_filename(field)) or exc.name == field else None
        )
        message = exc.message or "syntax error"
        if exc.filename and exc.filename.startswith("shipped:"):
            message = f"{message} (in {exc.filename.removeprefix('shipped:')} line {exc.lineno})"
        return TemplateProblem(field, line, f"syntax error: {message}", "syntax")

    line, inner = _lines_from_traceback(exc, field)
    suffix = f" (inside {inner})" if inner else ""

    if isinstance(exc, LimitExceeded):
        return TemplateProblem(field, line, exc.message + suffix, exc.reason)
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateProblem(field, line, f"{exc.message}{suffix}", "not_found")
    if isinstance(exc, SecurityError):
        return TemplateProblem(field, line, f"not allowed in templates: {exc}{suffix}", "security")
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateProblem(field, line, f"{exc.message}{suffix}", "undefined")
    if isinstance(exc, RecursionError):
        return TemplateProblem(field, line, "macros call each other too deeply" + suffix, "recursion")
    if isinstance(exc, MemoryError):
        return TemplateProblem(field, line, "the template needed too much memory" + suffix, "memory")
    if isinstance(exc, jinja2.TemplateError):
        return TemplateProblem(field, line, f"{exc.message or type(exc).__name__}{suffix}", "error")
    if isinstance(exc, (TypeError, ValueError, ArithmeticError, LookupError)):
        return TemplateProblem(field, line, f"could not evaluate an expression: {exc}{suffix}", "error")
    return TemplateProblem(field, line, f"{type(exc).__name__}: {exc}{suffix}", "error")
