"""The exception hierarchy. Each class carries the process exit code the CLI uses for it.

A failed *check* is never an exception (it is a ``CheckResult`` with status ``fail``, exit 1);
exceptions mean the input could not be read or an operation could not be carried out.
"""

from __future__ import annotations


class PtqvError(Exception):
    """Base class. ``message`` names the file (and tensor) at fault; ``hint`` says the fix."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __reduce__(self):  # keep the hint when an error crosses a process boundary
        return _rebuild, (type(self), self.message, self.hint)


def _rebuild(cls: type[PtqvError], message: str, hint: str | None) -> PtqvError:
    return cls(message, hint=hint)


class UsageError(PtqvError):
    """The command line asks for something impossible (exit 2)."""

    exit_code = 2


class InputError(PtqvError):
    """An input file or directory is missing, unreadable or invalid (exit 3)."""

    exit_code = 3


class RemoteError(PtqvError):
    """A remote host or scheduler failed or could not be reached (exit 4)."""

    exit_code = 4


class TemplateError(PtqvError):
    """A job spec or template could not be rendered or failed its lint (exit 5)."""

    exit_code = 5


PASS_EXIT = 0
CHECK_FAILED_EXIT = 1
NOT_CHECKABLE_EXIT = 6
INTERNAL_ERROR_EXIT = 70

#: The exit codes of every ``ptqv`` command, defined once: each command's ``--help``, the top-level
#: help and the README show this table.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (PASS_EXIT, "pass (warnings allowed)"),
    (CHECK_FAILED_EXIT, "a blocking check or finding failed"),
    (UsageError.exit_code, "usage: a flag or argument is wrong"),
    (InputError.exit_code, "input: a file or directory is missing, unreadable or invalid"),
    (RemoteError.exit_code, "remote host, scheduler or job runner failed"),
    (TemplateError.exit_code, "template: a job could not be rendered or failed its lint"),
    (NOT_CHECKABLE_EXIT, "not checkable here: this engine cannot run the format on this hardware"),
    (INTERNAL_ERROR_EXIT, "internal error, a bug (PTQV_DEBUG=1 shows the traceback)"),
)
