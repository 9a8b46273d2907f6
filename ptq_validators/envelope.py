"""The JSON envelope every ``--json`` document and saved file shares: one ``schema_version``,
a ``kind`` naming the document (``ptqv-gate``, ``ptqv-plan`` ...), then the document's own
fields; and one encoder, ``render_json``. README "JSON output" documents the envelope and the kinds.
"""

from __future__ import annotations

import json
import re
from typing import Any

SCHEMA_VERSION = 1


def envelope(kind: str, **fields: Any) -> dict[str, Any]:
    """``{"schema_version", "kind", **fields}``; ``kind`` without the ``ptqv-`` prefix."""
    return {"schema_version": SCHEMA_VERSION, "kind": f"ptqv-{kind}", **fields}


_TENSOR = re.compile(r"tensor '([^']+)'")


def error_document(message: str, hint: str | None, exit_code: int) -> dict[str, Any]:
    """The ``ptqv-error`` document a ``--json`` command prints on stdout when it cannot run:
    the exit code, the file and tensor the message names (None when it names none), the
    message and the fix. Messages name their file first (``path: what is wrong``)."""
    head, sep, _ = message.partition(": ")
    file = head if sep and " " not in head else None
    tensor = _TENSOR.search(message)
    return envelope(
        "error",
        exit_code=exit_code,
        file=file,
        tensor=tensor.group(1) if tensor else None,
        message=message,
        fix=hint,
    )


def render_json(document: Any) -> str:
    """The one encoder: the document on one line, non-ASCII kept, with a trailing newline.

    Compact on purpose: ``indent`` makes the json module fall back to its pure-Python encoder,
    which takes seconds on the 46k-layer report of a 671B export (pipe to ``jq`` to read it)."""
    return json.dumps(document, ensure_ascii=False) + "\n"
