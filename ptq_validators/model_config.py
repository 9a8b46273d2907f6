"""Facts read from a model's parsed ``config.json``: the language model's part of a multimodal
config, layer count, experts, top-k, MTP layers, vision tower and embedding tying.

One rule everywhere: the language model's config (``text_config`` / ``llm_config`` /
``language_config``, else the top level) is asked first, then the top level, so pre-flight, the
layer table and every check read the same number from the same key. The one exception is
tying, which the top level decides (below). Pure functions of a dict:
reading the file is the caller's business.
"""

from __future__ import annotations

from typing import Any

TEXT_CONFIG_KEYS = ("text_config", "llm_config", "language_config")
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
TOP_K_KEYS = ("num_experts_per_tok", "experts_per_token", "moe_top_k", "top_k")
MTP_KEYS = ("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_layers")


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a (possibly multimodal) config; the config itself if flat."""
    for key in TEXT_CONFIG_KEYS:
        if isinstance(config.get(key), dict):
            return config[key]
    return config


def vision_config(config: dict[str, Any]) -> dict[str, Any] | None:
    vision = config.get("vision_config")
    return vision if isinstance(vision, dict) else None


def _blocks(config: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    text = text_config(config)
    return (text,) if text is config else (text, config)


def _positive_int(config: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for block in _blocks(config):
        for key in keys:
            value = block.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def num_hidden_layers(config: dict[str, Any]) -> int | None:
    """Decoder layers of the language model (MTP layers are stored past this index)."""
    return _positive_int(config, ("num_hidden_layers",))


def expert_count(config: dict[str, Any]) -> int | None:
    """Routed experts per MoE layer; None for a dense model."""
    return _positive_int(config, EXPERT_KEYS)


def experts_per_token(config: dict[str, Any]) -> int | None:
    """Experts each token is routed to (top-k); None for a dense model."""
    return _positive_int(config, TOP_K_KEYS)


def mtp_layers(config: dict[str, Any]) -> int | None:
    """Multi-token-prediction (draft) layers the config declares."""
    return _positive_int(config, MTP_KEYS)


def tie_setting(config: dict[str, Any]) -> bool | None:
    """``tie_word_embeddings`` as written; None when no block sets it. The top level first:
    transformers (5.x ``get_expanded_tied_weights_keys``) ties the output embedding of the model
    it builds from that model's own config, the composite one for a VLM."""
    for block in reversed(_blocks(config)):
        value = block.get("tie_word_embeddings")
        if isinstance(value, bool):
            return value
    return None


def tied_embeddings(config: dict[str, Any]) -> bool:
    """True when ``lm_head`` shares the input embedding's weight (no ``lm_head`` is stored)."""
    return tie_setting(config) is True
