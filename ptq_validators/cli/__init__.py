"""The `ptqv` entry point: runs the Typer app and translates exceptions into exit codes.

This is the only place that turns an exception into a message: ``PtqvError`` subclasses print
one ``ptqv: error: ...`` line (plus the fix) on stderr and exit with their code; anything else is
a bug and exits 70 with a request to rerun under ``PTQV_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from ptq_validators.errors import INTERNAL_ERROR_EXIT

# Commands whose result holds about a million small objects on a 671B checkpoint (headers, the
# layer table): tearing them down one by one at interpreter exit would add most of a second to
# a command that is already done, so these leave with ``os._exit`` once their output is flushed.
# So do the top-level help and version, for whom the interpreter's teardown of typer's modules
# is a tenth of their time. They write no files and hold nothing that needs closing on exit;
# every other command exits normally (atexit handlers, buffered files and connections are
# closed the ordinary way).
FAST_EXIT_COMMANDS = frozenset({"gate", "scan", "--help", "--version"})


def main(argv: list[str] | None = None) -> None:
    """Run ``ptqv`` with ``argv`` (default: ``sys.argv[1:]``) and exit with its code.

    Called with ``argv`` (tests, embedding) it returns or raises ``SystemExit``. As the process
    entry point, a command in ``FAST_EXIT_COMMANDS`` leaves through ``os._exit``."""
    command = sys.argv[1] if argv is None and len(sys.argv) > 1 else None
    if command not in FAST_EXIT_COMMANDS:
        _run(argv)
        return
    try:
        _run(None)
    except SystemExit as done:
        # Leave from inside the handler: the exception's traceback holds the command's frames,
        # and through them its report; letting the exception go would first free that report
        # object by object (about 1 % of a 671B gate).
        _exit_now(done.code)
    _exit_now(0)


def _exit_now(code: object) -> NoReturn:
    """Flush the output and end the process with ``code`` (a ``SystemExit`` code)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


def _run(argv: list[str] | None) -> None:
    from ptq_validators.cli.app import app
    from ptq_validators.errors import PtqvError

    debug = os.environ.get("PTQV_DEBUG") == "1"
    try:
        app(args=argv, prog_name="ptqv")
    except PtqvError as exc:
        if debug:
            raise
        print(f"ptqv: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"ptqv: fix: {exc.hint}", file=sys.stderr)
        if "--json" in (sys.argv[1:] if argv is None else argv):  # one JSON document on stdout, errors too
            from ptq_validators.envelope import error_document, render_json

            sys.stdout.write(render_json(error_document(exc.message, exc.hint, exc.exit_code)))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("ptqv: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: keep the message short, offer the traceback
        if debug:
            raise
        print(
            f"ptqv: internal error: {type(exc).__name__}: {exc} "
            "(rerun with PTQV_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
        )
        sys.exit(INTERNAL_ERROR_EXIT)
