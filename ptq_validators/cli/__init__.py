"""The `ptqv` entry point: runs the Typer app and translates exceptions into exit codes.

This is the only place that turns an exception into a message: ``PtqvError`` subclasses print
one ``ptqv: error: ...`` line (plus the fix) on stderr and exit with their code; anything else is
a bug and exits 70 with a request to rerun under ``PTQV_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import os
import sys

INTERNAL_ERROR_EXIT = 70


def main(argv: list[str] | None = None) -> None:
    """Run ``ptqv`` with ``argv`` (default: ``sys.argv[1:]``) and exit with its code."""
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
