"""The shipped layouts and blocks: the only templates a marketer template can extend, include or import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, TemplateNotFound

SHIPPED_ROOT = Path(__file__).resolve().parents[2] / "templates"


class ShippedTemplates(BaseLoader):
    """Only the project's own layouts and blocks, read once from disk, by exact name.

    Marketer templates can ``{% extends %}``, ``{% include %}`` and ``{% import %}``
    these and nothing else: a name is looked up in an in-memory table, never joined to a
    path, so ``../`` and ``/etc/passwd`` are simply unknown names.
    """

    def __init__(self, root: Path, suffixes: tuple[str, ...]) -> None:
        self.sources: dict[str, str] = {}
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink() and path.suffix in suffixes:
                    self.sources[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        source = self.sources.get(template) if isinstance(template, str) else None
        if source is None:
            available = ", ".join(self.sources) or "none"
            raise TemplateNotFound(
                str(template),
                f"there is no shipped layout or block called {str(template)[:80]!r} (available: {available})",
            )
        return source, f"shipped:{template}", lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)
