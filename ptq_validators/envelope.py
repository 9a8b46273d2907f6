"""The JSON envelope every ``--json`` document and saved file shares: one ``schema_version``,
a ``kind`` naming the document (``ptqv-gate``, ``ptqv-plan`` ...), then the document's own
fields; and one encoder, ``render_json``. README "JSON output" documents the envelope and the kinds.
"""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring  # the C encoder when available
from typing import Any, TextIO

SCHEMA_VERSION = 1


class Encoded:
    """A value already encoded as JSON text, kept as the pieces it was written in (a large array
    written from templates, such as the layer table of ``layer_json``): ``render_json`` writes
    it in place of a top-level field, joining everything once."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces


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
    which takes seconds on the 46k-layer report of a 671B export (pipe to ``jq`` to read it).
    Top-level values that are ``Encoded`` are written as they are; the text is the same as if
    they had been given as the values they encode."""
    return "".join(_pieces(document))


def write_json(document: Any, stream: TextIO) -> None:
    """Write ``render_json(document)`` to ``stream`` a few thousand pieces at a time, so the
    whole text of a 46k-layer report (and its encoded bytes) never sits in memory at once."""
    pieces = _pieces(document)
    for start in range(0, len(pieces), _CHUNK):
        stream.write("".join(pieces[start : start + _CHUNK]))


_CHUNK = 4096


def _pieces(document: Any) -> list[str]:
    if not (isinstance(document, dict) and any(type(value) is Encoded for value in document.values())):
        return [json.dumps(document, ensure_ascii=False), "\n"]
    pieces = ["{"]
    for key, value in document.items():
        pieces.append(f"{', ' if len(pieces) > 1 else ''}{encode_basestring(key)}: ")
        if type(value) is Encoded:
            pieces += value.pieces
        else:
            pieces.append(json.dumps(value, ensure_ascii=False))
    pieces.append("}\n")
    return pieces
