"""The JSON envelope every ``--json`` document and saved file shares: one ``schema_version``,
a ``kind`` naming the document (``ptqv-gate``, ``ptqv-plan`` ...), then the document's own
fields; and one encoder, ``render_json``. README "JSON" documents the envelope and the kinds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring  # the C encoder when available
from typing import Any, TextIO

SCHEMA_VERSION = 1


class Encoded:
    """A value already encoded as JSON text, as the pieces it is written in, made as they are
    written (a large array written from templates, such as the layer table of ``layer_json``):
    ``render_json`` and ``write_json`` write it in place of a top-level field. Written once."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: Iterable[str]) -> None:
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
    """Write ``render_json(document)`` to ``stream`` piece by piece (an ``Encoded`` value comes
    in blocks), so the whole text of a 46k-layer report (and its encoded bytes) never sits in
    memory at once."""
    for piece in _pieces(document):
        stream.write(piece)


def _pieces(document: Any) -> Iterator[str]:
    if not (isinstance(document, dict) and any(type(value) is Encoded for value in document.values())):
        yield from (json.dumps(document, ensure_ascii=False), "\n")
        return
    yield "{"
    for number, (key, value) in enumerate(document.items()):
        yield f"{', ' if number else ''}{encode_basestring(key)}: "
        if type(value) is Encoded:
            yield from value.pieces
        else:
            yield json.dumps(value, ensure_ascii=False)
    yield "}\n"
