"""Errors users can cause. Each carries where the problem is (a JSON path, a field, a line) and a human message."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ConflictError",
    "CrmError",
    "DefinitionError",
    "FieldError",
    "NotFoundError",
    "PermissionDenied",
    "PlanRefused",
    "Problem",
    "RecordValidationError",
]


class CrmError(Exception):
    """Base of every error a user can cause; the CLI, API and UI render these, never a traceback."""

    def lines(self) -> list[str]:
        """The error as printable lines."""
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One problem in an app definition, at a JSON path such as `$defs/deal/properties/amount`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class DefinitionError(CrmError):
    """An app definition that cannot be used; lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:5]))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


@dataclass(frozen=True)
class FieldError:
    """A problem with one field's value (`field` is the field key; `line` a file line number when importing)."""

    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.field}: {self.message}" if self.field else f"{where}{self.message}"


class RecordValidationError(CrmError):
    """A record (or a batch of them) that fails validation; `errors` lists every problem."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors[:5]))

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]

    def by_field(self) -> dict[str, list[str]]:
        """Messages grouped by field key, for forms."""
        out: dict[str, list[str]] = {}
        for err in self.errors:
            out.setdefault(err.field, []).append(err.message)
        return out


class ConflictError(CrmError):
    """An update based on a stale version; nothing was written."""

    def __init__(self, record_id: str, expected: int, actual: int, current: dict | None = None) -> None:
        self.record_id = record_id
        self.expected = expected
        self.actual = actual
        self.current = current
        super().__init__(
            f"record {record_id} was changed by someone else (you edited version {expected}, it is now at {actual});"
            " nothing was saved"
        )


class NotFoundError(CrmError):
    """An app, entity, field or record that does not exist."""


class PermissionDenied(CrmError):
    """An action the acting user's roles do not allow; nothing was read or changed."""

    def __init__(self, action: str, target: str) -> None:
        self.action = action
        self.target = target
        super().__init__(f"you may not {action} {target}")


@dataclass
class PlanRefused(CrmError):
    """A migration plan that cannot be applied without losing or corrupting data."""

    reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__("; ".join(self.reasons[:3]))

    def lines(self) -> list[str]:
        return list(self.reasons)
