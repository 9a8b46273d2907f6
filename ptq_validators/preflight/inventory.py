"""The module inventory a recipe is applied to: every linear-like weight of the model.

Preferred source: the model built on the meta device with the installed transformers (no
weights, no remote code unless asked), which gives module classes and the names the quantizers
really see (transformers 5 fuses MoE experts into 3-D parameters and nests VLM language models
under ``model.language_model``). Each weight is reported under its checkpoint name (what an
export writes and what ``ptqv gate`` reads), mapped through transformers' own save-time
conversion. Fallback: the safetensors header names (2-D ``*.weight`` and 3-D expert tensors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptq_validators.errors import InputError
from ptq_validators.layers import LayerRow
from ptq_validators.model_config import num_hidden_layers
from ptq_validators.precision import Precision
from ptq_validators.taxonomy import LayerGroup, classify

_SKIP_GROUPS = frozenset({LayerGroup.NORM, LayerGroup.EMBED})


@dataclass
class Inventory:
    """The linear-like weights as layer-table rows (``layers.LayerRow``: checkpoint name, group,
    module class, stored shape, ``fused`` for a 3-D fused expert parameter that is not an
    ``nn.Linear``; precision UNKNOWN until a recipe is applied), and per row the module or
    fused-parameter path in the built model that recipe patterns are matched against."""

    source: str  # "meta-device" or "headers"
    layers: list[LayerRow]
    runtime: dict[str, str]
    params: int | None
    notes: list[str]


def build_inventory(
    model_dir: Path, config: dict[str, Any], header_shapes: dict[str, tuple], *, trust_remote_code: bool
) -> Inventory:
    """The inventory from the meta device when torch and transformers are installed, else from
    ``header_shapes`` (tensor name → shape; empty without weights: then an ``InputError``)."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        if not header_shapes:
            raise InputError(
                f"{model_dir}: no safetensors weights and no torch/transformers to "
                "build the model on the meta device",
                hint="pip install 'ptq-validators[meta]' or add the weights",
            ) from None
        return _from_headers(
            header_shapes,
            ["torch/transformers not installed: module names from the safetensors headers (no classes)"],
            num_hidden_layers(config),
        )
    return _from_meta(model_dir, config, header_shapes, trust_remote_code)


def _row(
    name: str, module_class: str | None, shape: tuple[int, ...], fused: bool, depth: int | None
) -> LayerRow:
    group = classify(name, num_hidden_layers=depth)
    return LayerRow(name, group, Precision.UNKNOWN, fused=fused, shape=shape, module_class=module_class)


def _from_headers(header_shapes: dict[str, tuple], notes: list[str], depth: int | None) -> Inventory:
    layers, runtime = [], {}
    for tensor, shape in header_shapes.items():
        fused = len(shape) == 3 and ".experts." in f".{tensor}."
        if tensor.endswith(".weight") and len(shape) == 2:
            name = tensor[: -len(".weight")]
        elif fused:
            name = tensor
        else:
            continue
        if classify(name) not in _SKIP_GROUPS:
            layers.append(_row(name, None, tuple(shape), fused, depth))
            runtime[name] = name
    return Inventory("headers", layers, runtime, None, notes)


def _from_meta(
    model_dir: Path, config: dict[str, Any], header_shapes: dict[str, tuple], trust_remote_code: bool
) -> Inventory:
    import torch

    model = _build_on_meta(model_dir, config, trust_remote_code)
    state = {name: param for name, param in model.named_parameters()}
    params = sum(p.numel() for p in state.values())
    to_runtime, checkpoint_state = _checkpoint_names(model, state)
    depth = num_hidden_layers(config)
    layers, runtime = [], {}
    for key, tensor in checkpoint_state.items():
        runtime_key = to_runtime(key)
        owner, _, leaf = runtime_key.rpartition(".")
        param = state.get(runtime_key)
        if param is None:
            continue
        module = model.get_submodule(owner) if owner else model
        if param.dim() == 3 and leaf != "weight":
            # A fused expert parameter: the checkpoint stores it per expert (2-D) or fused.
            name = key.removesuffix(".weight")
            layers.append(_row(name, type(module).__name__, tuple(tensor.shape), True, depth))
            runtime[name] = runtime_key
        elif (
            leaf == "weight"
            and param.dim() == 2
            and not isinstance(module, torch.nn.Embedding)
            and classify(key) not in _SKIP_GROUPS
        ):
            name = key[: -len(".weight")]
            layers.append(_row(name, type(module).__name__, tuple(tensor.shape), False, depth))
            runtime[name] = owner
    notes = []
    missing = {k: s for k, s in header_shapes.items() if k not in checkpoint_state}
    headers = _from_headers(missing, [], depth)
    extra = headers.layers
    if extra:
        # e.g. DeepSeek's MTP layer, stored past num_hidden_layers and never built.
        notes.append(
            f"{len(extra)} weights in the checkpoint are not part of the built model "
            f"(e.g. {extra[0].name}); they are listed from the headers"
        )
        layers += extra
        runtime.update(headers.runtime)
    return Inventory("meta-device", layers, runtime, params, notes)


def _build_on_meta(model_dir: Path, config: dict[str, Any], trust_remote_code: bool):
    import torch
    import transformers

    # transformers logs config-validation chatter (e.g. Llama 4's rope_parameters) on load.
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        hf_config = transformers.AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        architecture = (config.get("architectures") or [None])[0]
        model_class = getattr(transformers, architecture, None) if architecture else None
        with torch.device("meta"):
            if model_class is not None and not (trust_remote_code and config.get("auto_map")):
                return model_class(hf_config)
            autos = (
                transformers.AutoModelForCausalLM,
                transformers.AutoModelForImageTextToText,
                transformers.AutoModel,
            )
            for auto in autos:
                try:
                    return auto.from_config(hf_config, trust_remote_code=trust_remote_code)
                except ValueError:
                    continue
    except (ValueError, KeyError, OSError, ImportError, AttributeError, TypeError) as exc:
        raise InputError(
            f"{model_dir}: cannot build the model on the meta device "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            hint="install a transformers that knows this model_type, or pass "
            "--trust-remote-code if you trust the model's own code",
        ) from None
    finally:
        logger.setLevel(level)
    raise InputError(
        f"{model_dir}: no transformers auto class builds this config",
        hint="check config.json architectures / model_type",
    )


def _checkpoint_names(model, state):
    """(checkpoint key → runtime key, checkpoint state dict) via transformers' conversions.

    Uses the same conversion transformers applies in ``save_pretrained`` (fused experts split
    per expert, VLM prefixes restored), and the load-time renaming to map each checkpoint key
    back to the parameter it becomes. These are transformers internals of the pinned version;
    when they are unavailable the runtime names are used as checkpoint names.
    """
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import (
            WeightConverter,
            WeightRenaming,
            rename_source_key,
            revert_weight_conversion,
        )
    except ImportError:
        return (lambda key: key), state
    checkpoint_state = revert_weight_conversion(model, dict(state))
    transforms = get_model_conversion_mapping(model, add_legacy=False)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]

    def to_runtime(key: str) -> str:
        runtime, _ = rename_source_key(key, renamings, converters, model.base_model_prefix, state)
        return runtime if runtime in state else key

    return to_runtime, checkpoint_state
