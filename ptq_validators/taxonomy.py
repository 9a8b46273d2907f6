"""One vocabulary of layer groups, shared by the plan (intended precision) and the gate (found).

``classify(module_name)`` decides which group a linear-like module belongs to from its dotted
name alone (plus the model's layer count, to recognise DeepSeek-style MTP layers stored after
the last decoder layer). The rules follow the names the real model families use; see
``docs/formats.md`` §8.
"""

from __future__ import annotations

import operator
import re
from enum import Enum
from functools import lru_cache
from itertools import repeat

from ptq_validators.globs import index_key


class LayerGroup(str, Enum):
    """Where a linear-like module sits in the model. Values are what JSON and reports show."""

    ATTENTION = "attention"
    MLP = "mlp"
    EXPERTS = "experts"
    ROUTER = "router"
    LM_HEAD = "lm_head"
    EMBED = "embed"
    VISION = "vision"
    PROJECTOR = "projector"
    MTP = "mtp"
    NORM = "norm"
    OTHER = "other"


# Groups a serving engine expects to stay in high precision unless a recipe says otherwise.
CONVENTIONALLY_UNQUANTIZED = frozenset(
    {
        LayerGroup.ROUTER,
        LayerGroup.LM_HEAD,
        LayerGroup.EMBED,
        LayerGroup.VISION,
        LayerGroup.PROJECTOR,
        LayerGroup.MTP,
        LayerGroup.NORM,
    }
)

_PROJECTOR_SEGMENTS = frozenset(
    {
        "multi_modal_projector",
        "mm_projector",
        "merger",
        "connector",
        "embed_vision",
        "vision_projection",
        "visual_projection",
    }
)
_VISION_SEGMENTS = frozenset(
    {
        "vision_tower",
        "visual",
        "vision_model",
        "vision_encoder",
        "image_encoder",
        "vit",
        "vision",
        "audio_tower",
        "audio_model",
        "audio_encoder",
        "siglip",
        "vision_embed_tokens",
    }
)
_EMBED_SEGMENTS = frozenset(
    {
        "embed_tokens",
        "wte",
        "word_embeddings",
        "embed_in",
        "embeddings",
        "tok_embeddings",
        "embedding",
        "shared",
    }
)
_LM_HEAD_SEGMENTS = frozenset({"lm_head", "output_layer", "embed_out"})
_ROUTER_SEGMENTS = frozenset({"router", "shared_expert_gate", "gate"})
_ATTENTION_SEGMENTS = frozenset(
    {
        "self_attn",
        "attn",
        "attention",
        "cross_attn",
        "self_attention",
        "linear_attn",
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "qkv_proj",
        "query_key_value",
        "c_attn",
        "q_a_proj",
        "q_b_proj",
        "kv_a_proj_with_mqa",
        "kv_b_proj",
        "wq",
        "wk",
        "wv",
        "wo",
    }
)
_MLP_SEGMENTS = frozenset(
    {
        "mlp",
        "feed_forward",
        "ffn",
        "block_sparse_moe",
        "moe",
        "shared_expert",
        "shared_experts",
        "shared_mlp",
        "gate_proj",
        "up_proj",
        "down_proj",
        "gate_up_proj",
        "fc1",
        "fc2",
        "c_fc",
        "c_proj",
        "w1",
        "w2",
        "w3",
        "dense_h_to_4h",
        "dense_4h_to_h",
    }
)
_MTP_SEGMENTS = frozenset({"mtp", "eh_proj", "shared_head", "mtp_block", "nextn"})
_NORM_RE = re.compile(r"(^|_)(norm|layernorm|ln)(_|\d|$)|norm$")
_LAYER_INDEX_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_MASKED_LAYER_INDEX = ".layers.#."  # what ``index_key`` makes of a match of _LAYER_INDEX_RE


def classify(
    module_name: str, *, num_hidden_layers: int | None = None, template: str | None = None
) -> LayerGroup:
    """Return the layer group of ``module_name`` (a dotted module path without the suffix).

    ``num_hidden_layers`` lets a decoder layer index at or past the model's layer count be
    recognised as an MTP / next-n prediction layer (DeepSeek-V3 stores its MTP layer there).
    ``template`` is ``index_key(module_name)`` where the caller has it already.
    """
    # Indices do not change the group except for that MTP test: classify the name with its
    # numbers masked, once per template, and read the layer index only where there is one.
    key = index_key(module_name) if template is None else template
    if (
        num_hidden_layers is not None
        and _has_layer_index(key)
        and _is_mtp_layer(module_name, num_hidden_layers)
    ):
        return LayerGroup.MTP
    return classify_template(key)


def mtp_flags(names: list[str], shapes: list[str], num_hidden_layers: int | None) -> list[bool]:
    """For each of ``names``, whether ``classify`` calls it an MTP layer by its decoder-layer
    index. ``shapes`` are their ``name_shapes``: in names of one shape the index stands in the
    same place, found once per shape. Where the index is each shape's first digit run, the names
    of a shape share the text before it, and one string per shape decides every name by a plain
    comparison (no slice per name); otherwise each distinct index is compared once."""
    if num_hidden_layers is None:
        return [False] * len(names)
    places: dict[str, slice] = {}
    # Per shape, the least name its names must reach to be MTP layers (one above them all
    # where they have no index: the same text with each digit's place one higher).
    thresholds: dict[str, str] = {}
    bound = str(num_hidden_layers)
    comparable = bound.isdigit()
    for shape, name in dict(zip(shapes, names, strict=True)).items():
        match = _LAYER_INDEX_RE.search("." + name + ".") if _has_layer_index(index_key(name)) else None
        if match is None:
            thresholds[shape] = name.translate(_ABOVE_DIGITS) + "\0"
            continue
        start, end = match.start(1) - 1, match.end(1) - 1  # its span in ".name.", one character on
        places[shape] = slice(start, end)
        prefix, width = name[:start], end - start
        comparable = comparable and name[start:end].isascii() and not _ASCII_DIGIT.search(prefix)
        # Digit strings of one width compare as their numbers; a narrower index is smaller.
        thresholds[shape] = prefix + (bound.zfill(width) if width >= len(bound) else ":")
    if not places:
        return [False] * len(names)
    if comparable:
        return list(map(operator.le, map(thresholds.__getitem__, shapes), names))
    indices: list[str] = list(map(operator.getitem, names, map(places.get, shapes, repeat(_NOTHING))))
    late = {index for index in set(indices) if index and int(index) >= num_hidden_layers}
    return list(map(late.__contains__, indices))


_ABOVE_DIGITS = str.maketrans("0123456789", ":" * 10)  # ":" follows "9"
_ASCII_DIGIT = re.compile("[0-9]")
_NOTHING = slice(0, 0)


@lru_cache(maxsize=4096)
def _has_layer_index(template: str) -> bool:
    return _MASKED_LAYER_INDEX in f".{template}."


@lru_cache(maxsize=4096)
def classify_template(module_name: str) -> LayerGroup:
    """The group of every module named like ``module_name`` (a template, ``index_key``), but
    for ``classify``'s MTP test by layer index (``mtp_flags``)."""
    segments = module_name.split(".")
    seg_set = set(segments)
    last = segments[-1]

    if seg_set & _PROJECTOR_SEGMENTS:
        return LayerGroup.PROJECTOR
    if seg_set & _VISION_SEGMENTS:
        return LayerGroup.VISION
    if seg_set & _MTP_SEGMENTS:
        return LayerGroup.MTP
    if last in _LM_HEAD_SEGMENTS or module_name in ("output", "model.output"):
        return LayerGroup.LM_HEAD
    if last in _EMBED_SEGMENTS or "embed_tokens" in seg_set:
        return LayerGroup.EMBED
    if _NORM_RE.search(last):
        return LayerGroup.NORM
    if last in _ROUTER_SEGMENTS and "experts" not in seg_set:
        return LayerGroup.ROUTER
    if "experts" in seg_set:
        return LayerGroup.EXPERTS
    if seg_set & _ATTENTION_SEGMENTS:
        return LayerGroup.ATTENTION
    if seg_set & _MLP_SEGMENTS:
        return LayerGroup.MLP
    return LayerGroup.OTHER


def _is_mtp_layer(module_name: str, num_hidden_layers: int | None) -> bool:
    if num_hidden_layers is None:
        return False
    match = _LAYER_INDEX_RE.search("." + module_name + ".")
    return match is not None and int(match.group(1)) >= num_hidden_layers
