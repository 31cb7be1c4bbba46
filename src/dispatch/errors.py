"""One error tree for the whole of dispatch.

Everything dispatch raises on purpose derives from :class:`DispatchError`.
Only the CLI turns these into output and an exit code::

    DispatchError                 exit 1 unless a subclass says otherwise
    ├── InputError                a user mistake: carries Problems with path/line
    │   ├── ContentError          an article that cannot be loaded
    │   ├── ConfigError           dispatch.toml or the environment
    │   ├── TemplateError         an email template
    │   └── ScheduleError         schedules.yaml
    ├── StoreError                the state database
    ├── DeliveryError             a transport that cannot deliver
    └── MailboxError              a bounce mailbox that cannot be read
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the user's input, located as precisely as we can.

    Rendered as ``path:line: field: message (expected …)`` so editors and
    terminals can jump to it.
    """

    path: str
    message: str
    line: int | None = None
    field: str | None = None
    expected: str | None = None
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        parts = [where]
        if self.field:
            parts.append(self.field)
        text = self.message
        if self.expected and self.expected.startswith("did you mean"):
            text = f"{text} ({self.expected})"  # a suggestion reads better bare
        elif self.expected:
            text = f"{text} (expected {self.expected})"
        if self.severity is Severity.WARNING:
            text = f"warning: {text}"
        parts.append(text)
        return ": ".join(parts)


class DispatchError(Exception):
    exit_code = 1


class InputError(DispatchError):
    """A mistake in something the user wrote; never shown with a traceback."""

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
        else:
            self.problems = tuple(problems)
            super().__init__("\n".join(str(p) for p in self.problems))


class ContentError(InputError):
    pass


class ConfigError(InputError):
    pass


class TemplateError(InputError):
    pass


class ScheduleError(InputError):
    pass


class StoreError(DispatchError):
    pass


class DeliveryError(DispatchError):
    pass


class MailboxError(DispatchError):
    """The bounce mailbox cannot be reached, logged into or read."""
