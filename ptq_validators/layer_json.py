"""The layer table's JSON rows as text, written at C speed from one template per distinct row.

A 671B MoE export has ~46k rows but a few dozen distinct ones once the name is set aside: the
rows of layers of one kind (``LayerKind``) differ only in ``name``. Each distinct row is encoded once by ``json.dumps`` (from
``Layer.to_json``, so the fields and their order stay those of ``LayerRow``) with a placeholder
name, cut around it, and every row is the two halves around its own encoded name, a block of
rows joined in one call. The text is byte-identical to
``json.dumps([layer.to_json() for layer in layers], ensure_ascii=False)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import chain
from json.encoder import encode_basestring  # the C encoder when available

from ptq_validators.envelope import Encoded
from ptq_validators.layers import Layer, LayerKind, LayerTable

_PLACEHOLDER = "\x00name\x00"
_ENCODED_PLACEHOLDER = encode_basestring(_PLACEHOLDER)
_BLOCK = 2048  # rows per piece: ~1 MB of text, so the whole array is never in memory at once


def encode_layers(table: LayerTable) -> Encoded:
    """The ``table``'s layers as the JSON array of their ``to_json`` rows (non-ASCII kept, the
    default separators), for ``render_json`` / ``write_json`` to write in place, a block at a
    time."""
    return Encoded(_blocks(table.layers, table.names, table.kinds))


def _blocks(layers: Sequence[Layer], names: Sequence[str], kinds: Sequence[LayerKind]) -> Iterator[str]:
    # A row is its name and its kind's fields (``Layer.row``), so one template per kind, made
    # on its first layer; each row after the first opens with the separator.
    first = dict(zip(reversed(kinds), reversed(layers), strict=True))  # kind → its first layer
    halves = {kind: _template(layer) for kind, layer in first.items()}
    opening = {kind: ", " + before for kind, (before, _) in halves.items()}
    closing = {kind: after for kind, (_, after) in halves.items()}
    yield "["
    for start in range(0, len(layers), _BLOCK):
        block = kinds[start : start + _BLOCK]
        befores = list(map(opening.__getitem__, block))
        if start == 0:
            befores[0] = befores[0][2:]
        encoded = map(encode_basestring, names[start : start + _BLOCK])
        yield "".join(
            chain.from_iterable(zip(befores, encoded, map(closing.__getitem__, block), strict=True))
        )
    yield "]"


def _template(layer: Layer) -> tuple[str, str]:
    row = layer.to_json()
    row["name"] = _PLACEHOLDER
    # "name" is the row's first field, so the first occurrence is the placeholder itself.
    before, _, after = json.dumps(row, ensure_ascii=False).partition(_ENCODED_PLACEHOLDER)
    return before, after
