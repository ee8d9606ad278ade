"""The one error hierarchy of nsnet and the process exit codes.

Every error a user can cause or meet derives from NsnetError; the CLI catches
that class in one place and prints its message as one line per problem. Each
error names its kind with one ErrorCode, the closed set a --json error
document's `error` member takes (schemas/validate.schema.json lists the same).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar


class ExitCode(enum.IntEnum):
    """Process exit codes, shared by every command."""

    OK = 0
    ERROR = 1
    INTERNAL = 1  # a bug (an exception nsnet did not expect): the code of any error, which scripts already handle
    CHANGES = 2  # plan --detailed-exitcode: the plan is not empty
    DRIFT = 3  # show --check: live state differs from the topology
    CHECKS_FAILED = 4  # test: a probe failed (the lab answered, differently from what the file expects)
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, what a shell shows for a command that SIGINT ended


class ErrorCode(enum.StrEnum):
    """What kind of error stopped a command: the `error` member of --json error documents."""

    ERROR = "error"  # any other (a lock held too long, a file fmt cannot write, ...)
    TOPOLOGY = "topology"
    CONFLICT = "conflict"
    KERNEL = "kernel"
    PERMISSION = "permission"
    STALE_PLAN = "stale-plan"
    USAGE = "usage"
    INTERNAL = "internal"  # a bug


class NsnetError(Exception):
    """Base of every error nsnet reports to a user."""

    code: ClassVar[ErrorCode] = ErrorCode.ERROR

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's code must be an ErrorCode (one given as its string becomes the member):
        a code outside the closed set fails when the class is defined, not in a user's JSON."""
        super().__init_subclass__(**kwargs)
        cls.code = ErrorCode(cls.code)

    def lines(self) -> list[str]:
        """The message, one problem per line."""
        return [str(self)]

    def problem_docs(self) -> list[dict[str, Any]]:
        return [{"file": None, "line": None, "column": None, "key": None, "message": str(self)}]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a topology file, located as precisely as possible."""

    file: str
    line: int | None
    column: int | None
    path: str  # dotted key path, e.g. namespaces.web1.interfaces.eth0.address
    message: str

    def __str__(self) -> str:
        return _printable(self._text())

    def _text(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


def _printable(text: str) -> str:
    """One line, no terminal escapes: control characters from the input are shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class TopologyError(NsnetError):
    """The topology file is unreadable, malformed or inconsistent."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems

    code = ErrorCode.TOPOLOGY

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]

    def problem_docs(self) -> list[dict[str, Any]]:
        return [{"file": p.file, "line": p.line, "column": p.column, "key": p.path or None, "message": _printable(p.message)} for p in self.problems]


class ConflictError(NsnetError):
    """The topology wants a name that an object nsnet does not own already has."""

    code = ErrorCode.CONFLICT


class KernelError(NsnetError):
    """The kernel refused an operation."""

    code = ErrorCode.KERNEL


class PermissionDenied(NsnetError):
    """nsnet lacks the privileges (root / CAP_NET_ADMIN) a command needs."""

    code = ErrorCode.PERMISSION


class StalePlanError(NsnetError):
    """A saved plan no longer matches the topology file or the live kernel."""

    code = ErrorCode.STALE_PLAN


class InternalError(NsnetError):
    """An exception nsnet did not expect (a bug), reported like an error: one line, or a JSON document."""

    code = ErrorCode.INTERNAL

    def __init__(self, cause: Exception):
        super().__init__(f"internal error: {type(cause).__name__}: {cause}")
