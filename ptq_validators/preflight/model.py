"""What a model's ``config.json`` says: architecture, kind (dense, MoE, VLM, hybrid, MTP), and
whether the source is already quantized. Pure functions of the parsed config; the only other
input is the installed transformers' registry, read as source text (never imported).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ptq_validators import model_config as mc
from ptq_validators.errors import InputError

# ("llama", "LlamaConfig") tuples and "mimi_encoder": "MimiEncoderConfig" dict entries.
_CONFIG_ENTRY_RE = re.compile(r'"([\w\-.]+)"\s*[,:]\s*"(\w+Config)"')
_AUTO_FILES = ("models/auto/configuration_auto.py", "models/auto/auto_mappings.py")


def read_config(model_dir: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of ``model_dir``; an ``InputError`` naming the fix otherwise."""
    if not model_dir.is_dir():
        raise InputError(
            f"{model_dir}: no such model directory",
            hint="pass a local Hugging Face model directory (with config.json)",
        )
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path}: missing",
            hint="a Hugging Face model directory has a config.json; download it with the weights",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})", hint="re-download config.json") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: not a JSON object", hint="re-download config.json")
    return config


def describe(config: dict[str, Any]) -> dict[str, Any]:
    """The facts a PTQ run depends on, as a JSON-ready dict."""
    text = mc.text_config(config)
    experts = mc.expert_count(config)
    vision = mc.vision_config(config)
    mtp_layers = mc.mtp_layers(config)
    hybrid = _hybrid_layers(text)
    kinds = ["moe" if experts else "dense"]
    kinds += ["vlm"] if vision else []
    kinds += ["hybrid"] if hybrid else []
    kinds += ["mtp"] if mtp_layers else []
    quant = config.get("quantization_config") or text.get("quantization_config")
    return {
        "model_type": config.get("model_type"),
        "text_model_type": text.get("model_type") if text is not config else None,
        "architectures": config.get("architectures") or [],
        "transformers_version": config.get("transformers_version"),
        "auto_map": config.get("auto_map") or text.get("auto_map") or None,
        "dtype": config.get("dtype")
        or config.get("torch_dtype")
        or text.get("dtype")
        or text.get("torch_dtype"),
        "kind": kinds,
        "num_hidden_layers": mc.num_hidden_layers(config),
        "hidden_size": text.get("hidden_size"),
        "moe": {
            "experts": experts,
            "top_k": mc.experts_per_token(config),
            "shared_experts": text.get("n_shared_experts"),
        }
        if experts
        else None,
        "vision": {
            "model_type": vision.get("model_type"),
            "layers": vision.get("num_hidden_layers") or vision.get("depth"),
            "hidden_size": vision.get("hidden_size"),
            "intermediate_size": vision.get("intermediate_size"),
        }
        if vision
        else None,
        "hybrid": hybrid,
        "mtp_layers": mtp_layers,
        "source_quantization": _source_quantization(quant) if isinstance(quant, dict) else None,
    }


def _hybrid_layers(text: dict[str, Any]) -> dict[str, Any] | None:
    """Layer mix of hybrid models: Nemotron-H's pattern or a ``layer_types`` list."""
    pattern = text.get("hybrid_override_pattern")
    if isinstance(pattern, str) and "M" in pattern:
        # Nemotron-H: M = Mamba-2 mixer, * = attention, - = MLP, E = MoE.
        return {
            "mamba": pattern.count("M"),
            "attention": pattern.count("*"),
            "mlp": pattern.count("-"),
            "moe": pattern.count("E"),
        }
    types = text.get("layer_types")
    if isinstance(types, list) and any(t in ("mamba", "linear_attention") for t in types):
        return {t: types.count(t) for t in sorted(set(types))}
    return None


def _source_quantization(quant: dict[str, Any]) -> dict[str, Any]:
    method = quant.get("quant_method") or quant.get("quant_algo")
    return {
        "quant_method": method,
        "fmt": quant.get("fmt"),
        "weight_block_size": quant.get("weight_block_size"),
        "modules_to_not_convert": quant.get("modules_to_not_convert") or quant.get("ignored_layers"),
    }


# --- the installed transformers ----------------------------------------------------------


def transformers_version() -> str | None:
    """The installed transformers version (package metadata), or None."""
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def known_model_types() -> frozenset[str] | None:
    """``model_type`` values the installed transformers has built-in configs for.

    Read from the text of the auto-config mapping (``configuration_auto.py``, and
    ``auto_mappings.py`` where 5.x moved the table) plus the ``models/<type>/`` folders, so that
    transformers (and torch) are never imported on this path; None when it is not installed.
    """
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    known = {p.name for p in (root / "models").iterdir() if (p / "__init__.py").is_file()}
    for name in _AUTO_FILES:
        try:
            source = (root / name).read_text(encoding="utf-8")
        except OSError:
            continue
        known.update(match.group(1) for match in _CONFIG_ENTRY_RE.finditer(source))
    return frozenset(known)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"4.43.0.dev0"`` → ``(4, 43, 0)``: the leading numeric release parts."""
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)
