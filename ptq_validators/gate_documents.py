"""What the gate reads besides headers: the document pairs its drift checks compare, and the
export's scalar scales. Reading only: the comparisons and verdicts are the checks' (``gate.py``
hands these inputs to them)."""

from __future__ import annotations

import math
import operator
from collections import deque
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from typing import Any

from ptq_validators.checkpoint import PROCESSOR_FILES, TOKENIZER_FILES, Checkpoint, Documents
from ptq_validators.io.safetensors import (
    DTYPE_BITS,
    INFO_BEGIN,
    INFO_DTYPE,
    INFO_END,
    INFO_LAYOUT,
    INFO_NAME,
    TensorInfo,
    numbered_layout,
)
from ptq_validators.layers import Grouping
from ptq_validators.values import DECODABLE, decode

# Files an export should carry over from its source (compared by presence).
SIDECAR_FILES = (
    "config.json",
    "generation_config.json",
    *TOKENIZER_FILES,
    "chat_template.jinja",
    "chat_template.json",
    *PROCESSOR_FILES,
)
# JSON documents of the tokenizer compared key by key (the vocabulary is compared on its own).
TOKENIZER_DOCUMENTS = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
# Binary or plain-text tokenizer files compared by digest.
TOKENIZER_BLOBS = ("tokenizer.model", "vocab.json", "merges.txt")
# Per-expert vectors of scalar scales (one per expert) are still small; larger scale tensors
# are block/group grids, read only by --deep.
MAX_SCALAR_BYTES = 4096

Json = dict[str, Any]


@dataclass(frozen=True)
class ChatTemplate:
    """The effective chat template of one checkpoint and the file it came from."""

    text: str | None
    file: str | None


@dataclass(frozen=True)
class MetadataPair:
    """Source and export documents, read for the drift checks. Pairs where either side lacks a
    document are left out, except where the export's absence is itself the finding (template,
    generation config)."""

    config: tuple[Json, Json]
    vocabularies: tuple[Json, Json] | None  # tokenizer.json of both, when both have one
    tokenizer_documents: list[tuple[str, Json, Json]]  # chat_template keys removed
    digests: list[tuple[str, str, str]]  # (file, source sha256, export sha256)
    templates: tuple[ChatTemplate, ChatTemplate]
    generation: tuple[Json | None, Json]  # export side {} when absent
    source_has_tokenizer: bool


def read_metadata(source: Documents, output: Documents) -> MetadataPair:
    """Read the documents the drift checks compare; invalid JSON or text is an ``InputError``
    naming the file."""
    src_tok, out_tok = source.json_document("tokenizer.json"), output.json_document("tokenizer.json")
    tokenizer_documents = []
    for name in TOKENIZER_DOCUMENTS:
        src_doc, out_doc = source.json_document(name), output.json_document(name)
        if src_doc is not None and out_doc is not None:
            # The chat template is compared once, wherever it lives (``templates``).
            tokenizer_documents.append(
                (
                    name,
                    {k: v for k, v in src_doc.items() if k != "chat_template"},
                    {k: v for k, v in out_doc.items() if k != "chat_template"},
                )
            )
    digests = []
    for name in TOKENIZER_BLOBS:
        src_digest, out_digest = source.file_digest(name), output.file_digest(name)
        if src_digest and out_digest:
            digests.append((name, src_digest, out_digest))
    return MetadataPair(
        config=(source.config, output.config),
        vocabularies=(src_tok, out_tok) if src_tok is not None and out_tok is not None else None,
        tokenizer_documents=tokenizer_documents,
        digests=digests,
        templates=(ChatTemplate(*source.chat_template()), ChatTemplate(*output.chat_template())),
        generation=(
            source.json_document("generation_config.json"),
            output.json_document("generation_config.json") or {},
        ),
        source_has_tokenizer=any(source.has(name) for name in TOKENIZER_FILES),
    )


def read_scalar_scales(
    checkpoint: Checkpoint, grouping: Grouping, roles: frozenset[str]
) -> dict[str, tuple[float, ...]]:
    """Decode the small scale tensors of ``checkpoint`` (``grouping``: its tensors' roles) whose
    role is in ``roles`` (global, input, KV scales; a ``weight_scale`` only when per-tensor): a
    few bytes each, read with one open per shard and one read per run of adjacent scales.
    Weight bytes are never read here."""
    # Whether a tensor is read depends on its role and layout alone, and a 671B export has a
    # few dozen of those pairs, judged once each: the layer table found them on one module per
    # layout (when every tensor is held by a module), else they are paired here. Usually every
    # tensor of a role gets one answer (all its global scales are scalars): then the tensors are
    # marked by role, at C speed.
    if grouping.role_layouts is not None and grouping.shadowed is None:
        kinds = {kind for kind in grouping.role_layouts if kind[0] in roles}
    else:
        kinds = set(_role_layouts(checkpoint, grouping, list(map(roles.__contains__, grouping.roles))))
    readable = {(role, number): _readable(role, *numbered_layout(number)) for role, number in kinds}
    answers: dict[str, set[bool]] = {}
    for (role, _), verdict in readable.items():
        answers.setdefault(role, set()).add(verdict)
    if all(len(verdicts) == 1 for verdicts in answers.values()):
        by_role = {role: verdicts.pop() for role, verdicts in answers.items()}
        picked: list[Any] = list(map(by_role.get, grouping.roles, repeat(False)))
    else:  # some role read for some layouts only: judged tensor by tensor
        wanted = list(map(roles.__contains__, grouping.roles))
        picked = [False] * len(wanted)
        places = compress(range(len(wanted)), wanted)
        keys = _role_layouts(checkpoint, grouping, wanted)
        deque(map(picked.__setitem__, places, map(readable.__getitem__, keys)), maxlen=0)
    values: dict[str, tuple[float, ...]] = {}
    for members, data in checkpoint.read_tensors(picked):
        # What is read depends on the layouts alone: a shard's few distinct ones say whether
        # its scales are all of one dtype, and all scalars (the usual case).
        layouts = list(map(numbered_layout, set(map(INFO_LAYOUT, members))))
        dtypes = {dtype for dtype, _ in layouts}
        if len(dtypes) > 1:  # scales of several dtypes in one shard: decoded one by one
            bounds = list(accumulate(_sizes(members), initial=0))
            pieces = map(data.__getitem__, map(slice, bounds[:-1], bounds[1:]))
            decoded = map(tuple, map(decode, map(INFO_DTYPE, members), pieces))
            values.update(zip(map(INFO_NAME, members), decoded, strict=True))
            continue
        # One dtype: every value at once, then each tensor's share.
        dtype = dtypes.pop()
        flat = tuple(decode(dtype, data))  # its slices are tuples: smaller than lists
        if all(math.prod(shape) == 1 for _, shape in layouts):  # scalar scales: their 1-tuples
            values.update(zip(map(INFO_NAME, members), zip(flat), strict=True))
            continue
        item = DTYPE_BITS[dtype] // 8
        bounds = list(accumulate(map(operator.floordiv, _sizes(members), repeat(item)), initial=0))
        shares = map(flat.__getitem__, map(slice, bounds[:-1], bounds[1:]))
        values.update(zip(map(INFO_NAME, members), shares, strict=True))
    return values


def _role_layouts(checkpoint: Checkpoint, grouping: Grouping, wanted: list[bool]) -> zip[tuple[str, int]]:
    """The (role, layout number) of each tensor ``wanted`` marks (a flag per tensor, in table
    order), for lookups: made twice rather than kept (zip reuses its tuple when the last one is
    let go; 135k of them kept would be 10 MB)."""
    return zip(
        compress(grouping.roles, wanted),
        map(INFO_LAYOUT, compress(checkpoint.infos, wanted)),
        strict=True,
    )


def _sizes(members: list[TensorInfo]) -> list[int]:
    """Each tensor's size in bytes."""
    return list(map(operator.sub, map(INFO_END, members), map(INFO_BEGIN, members)))


def _readable(role: str, dtype: str, shape: tuple[int, ...]) -> bool:
    """Whether a scale tensor of ``role``, ``dtype`` and ``shape`` is read: a decodable dtype
    within ``MAX_SCALAR_BYTES``, and a ``weight_scale`` only when per-tensor (one value)."""
    elements = math.prod(shape)
    if dtype not in DECODABLE or elements * DTYPE_BITS[dtype] > 8 * MAX_SCALAR_BYTES:
        return False
    return role != "weight_scale" or elements == 1
