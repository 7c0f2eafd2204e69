"""Rule errors: each names the JSON path of the offending part, so an editor can point at it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class RuleValidationError(ValueError):
    """Raised by `compile_rule` (and services) when a rule does not validate."""

    def __init__(self, errors: list[RuleError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors[:5]))

    def messages(self) -> list[str]:
        return [str(e) for e in self.errors]
