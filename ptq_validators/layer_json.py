"""The layer table's JSON rows as text, written at C speed from one template per distinct row.

A 671B MoE export has ~46k rows but a few dozen distinct ones once the name is set aside: the
rows of layers of one kind (``LayerKind``) differ only in ``name``. Each distinct row is encoded once by ``json.dumps`` (from
``Layer.to_json``, so the fields and their order stay those of ``LayerRow``) with a placeholder
name, cut around it, and every row is the two halves around its own encoded name. The text is
byte-identical to ``json.dumps([layer.to_json() for layer in layers], ensure_ascii=False)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from json.encoder import encode_basestring  # the C encoder when available

from ptq_validators.envelope import Encoded
from ptq_validators.layers import Layer

_PLACEHOLDER = "\x00name\x00"
_ENCODED_PLACEHOLDER = encode_basestring(_PLACEHOLDER)


def encode_layers(layers: Sequence[Layer]) -> Encoded:
    """``layers`` as the JSON array of their ``to_json`` rows (non-ASCII kept, the default
    separators), for ``render_json`` / ``write_json`` to write in place, row by row."""
    return Encoded(_rows(layers))


def _rows(layers: Sequence[Layer]) -> Iterator[str]:
    # A row is its name and its kind's fields (``Layer.row``), so one template per kind.
    templates: dict[int, tuple[str, str]] = {}
    separator = ""
    yield "["
    for layer in layers:
        halves = templates.get(id(layer.kind))
        if halves is None:
            halves = templates[id(layer.kind)] = _template(layer)
        yield from (separator, halves[0], encode_basestring(layer.name), halves[1])
        separator = ", "
    yield "]"


def _template(layer: Layer) -> tuple[str, str]:
    row = layer.to_json()
    row["name"] = _PLACEHOLDER
    # "name" is the row's first field, so the first occurrence is the placeholder itself.
    before, _, after = json.dumps(row, ensure_ascii=False).partition(_ENCODED_PLACEHOLDER)
    return before, after
