"""Metadata drift between the source checkpoint and the export (config, tokenizer, chat
template, special tokens, generation config, sidecar files).

Pure functions over parsed documents: each returns ``MetadataDiff`` rows classified
``expected`` (the export is meant to change it), ``warning`` or ``blocking`` (serving would
behave differently: context length, rope, vocabulary, template, sampling defaults, eos ids).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXPECTED, WARNING, BLOCKING = "expected", "warning", "blocking"

CONFIG_EXPECTED = frozenset(
    {
        "quantization_config",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "_name_or_path",
        "_commit_hash",
        "use_cache",
    }
)
CONFIG_BLOCKING = frozenset(
    {
        "architectures",
        "model_type",
        "max_position_embeddings",
        "rope_scaling",
        "rope_theta",
        "rope_parameters",
        "rope_type",
        "partial_rotary_factor",
        "vocab_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "hidden_size",
        "intermediate_size",
        "moe_intermediate_size",
        "head_dim",
        "tie_word_embeddings",
        "sliding_window",
        "layer_types",
        "num_experts",
        "num_local_experts",
        "n_routed_experts",
        "n_shared_experts",
        "num_experts_per_tok",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "hidden_act",
        "rms_norm_eps",
        "attention_bias",
        "mlp_bias",
        "text_config",
        "vision_config",
        "audio_config",
        "image_token_id",
        "image_token_index",
        "video_token_id",
        "num_nextn_predict_layers",
        "mtp_num_hidden_layers",
        "first_k_dense_replace",
        "kv_lora_rank",
        "q_lora_rank",
    }
)
TOKENIZER_BLOCKING = frozenset(
    {
        "model",
        "added_tokens",
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
        "bos_token",
        "eos_token",
        "pad_token",
        "unk_token",
        "sep_token",
        "cls_token",
        "mask_token",
        "additional_special_tokens",
        "added_tokens_decoder",
        "extra_special_tokens",
        "chat_template",
    }
)
GENERATION_BLOCKING = frozenset(
    {
        "do_sample",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "typical_p",
        "repetition_penalty",
        "num_beams",
        "eos_token_id",
        "bos_token_id",
        "pad_token_id",
        "max_new_tokens",
        "max_length",
        "presence_penalty",
        "frequency_penalty",
        "no_repeat_ngram_size",
    }
)
GENERATION_EXPECTED = frozenset({"transformers_version", "_from_model_config"})
_MAX_VALUE_CHARS = 120


@dataclass(frozen=True)
class MetadataDiff:
    """One differing key. ``source``/``output`` are the values (summarised when large)."""

    file: str
    key: str
    source: Any
    output: Any
    classification: str

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "key": self.key,
            "source": self.source,
            "output": self.output,
            "classification": self.classification,
        }


Classifier = Callable[[str], str]


def diff_documents(
    file: str,
    source: dict[str, Any],
    output: dict[str, Any],
    classify: Classifier,
    *,
    depth: int = 2,
    prefix: str = "",
) -> list[MetadataDiff]:
    """Key-by-key differences, descending ``depth`` levels into nested objects; ``classify``
    receives the key path (``text_config.rope_theta``) and returns the classification."""
    diffs: list[MetadataDiff] = []
    for key in sorted(set(source) | set(output)):
        path = f"{prefix}{key}"
        src, out = source.get(key, _MISSING), output.get(key, _MISSING)
        if src == out:
            continue
        if depth > 1 and isinstance(src, dict) and isinstance(out, dict):
            diffs.extend(diff_documents(file, src, out, classify, depth=depth - 1, prefix=f"{path}."))
            continue
        diffs.append(MetadataDiff(file, path, _show(src), _show(out), classify(path)))
    return diffs


def classify_config(path: str) -> str:
    parts = path.split(".")
    if parts[-1] in CONFIG_EXPECTED or parts[0] == "quantization_config":
        return EXPECTED
    if parts[-1] in CONFIG_BLOCKING or parts[0] in CONFIG_BLOCKING:
        return BLOCKING
    return WARNING


def classify_tokenizer(path: str) -> str:
    return BLOCKING if path.split(".")[0] in TOKENIZER_BLOCKING else WARNING


def classify_generation(path: str) -> str:
    key = path.split(".")[0]
    if key in GENERATION_EXPECTED:
        return EXPECTED
    return BLOCKING if key in GENERATION_BLOCKING else WARNING


def classify_strict(path: str) -> str:
    return BLOCKING


def diff_vocabulary(file: str, source: dict[str, Any], output: dict[str, Any]) -> list[MetadataDiff]:
    """tokenizer.json: vocabulary and merges summarised as counts, other keys by value."""
    diffs: list[MetadataDiff] = []
    src_model, out_model = source.get("model") or {}, output.get("model") or {}
    for key in ("vocab", "merges"):
        src, out = src_model.get(key), out_model.get(key)
        if src != out:
            diffs.append(
                MetadataDiff(
                    file, f"model.{key}", _summarise_collection(src), _summarise_change(src, out), BLOCKING
                )
            )
    rest_src = {k: v for k, v in source.items() if k != "model"}
    rest_out = {k: v for k, v in output.items() if k != "model"}
    rest_src["model"] = {k: v for k, v in src_model.items() if k not in ("vocab", "merges")}
    rest_out["model"] = {k: v for k, v in out_model.items() if k not in ("vocab", "merges")}
    diffs.extend(diff_documents(file, rest_src, rest_out, classify_tokenizer, depth=1))
    return diffs


def _summarise_collection(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return f"{len(value)} entries"
    return _show(value)


def _summarise_change(src: Any, out: Any) -> Any:
    if isinstance(src, dict) and isinstance(out, dict):
        added = len(out.keys() - src.keys())
        removed = len(src.keys() - out.keys())
        changed = sum(1 for k in src.keys() & out.keys() if src[k] != out[k])
        return f"{len(out)} entries ({added} added, {removed} removed, {changed} changed)"
    if isinstance(src, list) and isinstance(out, list):
        differing = sum(1 for a, b in zip(src, out, strict=False) if a != b) + abs(len(src) - len(out))
        return f"{len(out)} entries ({differing} differ)"
    return _summarise_collection(out)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _show(value: Any) -> Any:
    """JSON-safe, length-capped rendering of a value for reports."""
    if value is _MISSING:
        return None
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) <= _MAX_VALUE_CHARS:
        return value
    return text[: _MAX_VALUE_CHARS - 1] + "…"
