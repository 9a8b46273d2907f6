"""Recipe *files*: a ModelOpt PTQ recipe YAML or an llm-compressor recipe YAML → a ``Recipe``.

* ModelOpt (``metadata`` + ``quantize.quant_cfg``, ``modelopt_recipes`` schema): entries keep
  their order and ModelOpt's last-match-wins fnmatch semantics; each entry's ``cfg`` decides its
  precision, so one file may mix formats. ``$import`` snippets are not resolved (inline them).
* llm-compressor (``*_stage`` → ``*_modifiers`` → ``Modifier: {...}``): the quantization
  modifiers' ``targets`` / ``ignore`` / ``scheme`` / ``config_groups``, with compressed-tensors'
  matching, priority and args → precision rules (``formats/ct_rules``).
Parsed with ``yaml.safe_load`` only. Bad files raise ``InputError`` naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ptq_validators.errors import InputError
from ptq_validators.formats.ct_rules import activation_of, weight_precision, winning_target
from ptq_validators.precision import Precision, int_precision
from ptq_validators.recipes.base import Intent, Recipe
from ptq_validators.recipes.compressed_tensors import CompressedTensorsRecipe, ignored_intent, llmc_scheme
from ptq_validators.recipes.modelopt import (
    ModelOptRecipe,
    QuantCfgEntry,
    default_disabled_entries,
)

_QUANT_MODIFIERS = ("QuantizationModifier", "GPTQModifier")


def load_recipe_file(path: Path) -> Recipe:
    """The recipe in ``path``, recognised by its shape (ModelOpt or llm-compressor)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})", hint="pass a recipe YAML file") from None
    except yaml.YAMLError as exc:
        raise InputError(
            f"{path}: invalid YAML ({str(exc).splitlines()[0]})", hint="fix the YAML syntax"
        ) from None
    if isinstance(data, dict) and "quantize" in data and "metadata" in data:
        return _modelopt_recipe(path, data)
    if isinstance(data, dict) and any(str(k).endswith("_stage") for k in data):
        return _llmc_recipe(path, data)
    raise InputError(
        f"{path}: not a ModelOpt recipe (metadata + quantize.quant_cfg) nor an "
        "llm-compressor recipe (*_stage → *_modifiers)",
        hint="pass a PTQ recipe file, or use --qformat / --scheme",
    )


# --- ModelOpt ------------------------------------------------------------------------------


class ModelOptFileRecipe(ModelOptRecipe):
    """A ModelOpt ``quant_cfg`` list whose entries may carry different formats."""

    def __init__(self, name: str, entries: list[QuantCfgEntry]) -> None:
        enabled = [e for e in entries if e.enable and e.precision is not None]
        last = enabled[-1] if enabled else None
        super().__init__(
            name,
            entries,
            precision=(last.precision if last else None) or Precision.UNKNOWN,
            group_size=last.group_size if last else None,
            quant_algo=None,
            entries_carry_precision=True,
        )

    def patterns(self) -> list[str]:
        return [e.pattern for e in self.entries]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "modelopt-recipe",
            "name": self.name,
            "entries": [
                {
                    "quantizer_name": e.pattern,
                    "enable": e.enable,
                    "parent_class": e.parent_class,
                    "precision": e.precision.value if e.precision else None,
                    "group_size": e.group_size,
                }
                for e in self.entries
            ],
        }


def _modelopt_recipe(path: Path, data: dict[str, Any]) -> ModelOptFileRecipe:
    recipe_type = (data.get("metadata") or {}).get("recipe_type")
    if recipe_type != "ptq":
        raise InputError(
            f"{path}: metadata.recipe_type is {recipe_type!r}; only 'ptq' recipes can be planned",
            hint="plan the PTQ recipe (AutoQuantize searches formats at run time)",
        )
    quant_cfg = (data.get("quantize") or {}).get("quant_cfg")
    if not isinstance(quant_cfg, list):
        raise InputError(
            f"{path}: quantize.quant_cfg must be a list of entries",
            hint="see modelopt_recipes/general/ptq/*.yaml for the shape",
        )
    entries = []
    inherited: dict[str, tuple[Precision | None, int | None]] = {}
    for index, item in enumerate(quant_cfg):
        if not isinstance(item, dict) or "$import" in item or "quantizer_name" not in item:
            raise InputError(
                f"{path}: quant_cfg[{index}] is not a {{quantizer_name, cfg|enable}} "
                "entry"
                + (" ($import is not resolved)" if isinstance(item, dict) and "$import" in item else ""),
                hint="inline imported snippets as plain entries",
            )
        pattern = str(item["quantizer_name"])
        parent = item.get("parent_class")
        if "cfg" in item:
            inherited[pattern] = _modelopt_precision(path, index, item["cfg"])
        # An enable-only entry keeps the quantizer's attributes: take the last cfg seen for
        # the same pattern (the common "re-enable" form).
        precision, group = inherited.get(pattern, (None, None))
        entries.append(
            QuantCfgEntry(
                pattern,
                bool(item.get("enable", True)),
                parent.removeprefix("nn.") if parent else None,
                precision,
                group,
            )
        )
    return ModelOptFileRecipe(path.name, entries + default_disabled_entries())


def _modelopt_precision(path: Path, index: int, cfg: Any) -> tuple[Precision | None, int | None]:
    cfg = cfg[0] if isinstance(cfg, list) and cfg else cfg  # sequential (W4A8): first stage
    if not isinstance(cfg, dict):
        raise InputError(
            f"{path}: quant_cfg[{index}].cfg must be a mapping",
            hint="e.g. cfg: {num_bits: [4, 3], axis: null}",
        )
    bits = cfg.get("num_bits")
    blocks = cfg.get("block_sizes") or {}
    block = blocks.get(-1) or blocks.get("-1")
    scale_bits = tuple(blocks.get("scale_bits") or ()) or None
    if isinstance(bits, (list, tuple)):
        bits = tuple(bits)
    if bits == (4, 3):
        if block and scale_bits == (8, 0):
            return Precision.MXFP8, block
        if block:
            return Precision.FP8_BLOCK, block
        return (Precision.FP8_PER_CHANNEL if cfg.get("axis") == 0 else Precision.FP8), None
    if bits == (2, 1):
        return (Precision.MXFP4 if scale_bits == (8, 0) else Precision.NVFP4), block
    if isinstance(bits, int):
        return int_precision(bits), block
    return Precision.UNKNOWN, block


# --- llm-compressor --------------------------------------------------------------------------


class LlmcFileRecipe(Recipe):
    """One or more compressed-tensors groups with a shared ignore list."""

    linearizes_fused_experts = True

    def __init__(self, name: str, groups: list[CompressedTensorsRecipe], ignore: list[str]) -> None:
        self.name = name
        self.groups = groups
        self.ignore = ignore
        self.precision = groups[0].precision
        self.group_size = groups[0].group_size
        # target → group: a later group listing the same target replaces it.
        self.schemes = {target: group for group in groups for target in group.targets}

    def intent(
        self, module_name: str, *, module_class: str | None = None, fused_param: bool = False
    ) -> Intent:
        cls = module_class or "Linear"
        target = winning_target(self.schemes, module_name, cls)
        return ignored_intent(self.ignore, module_name, cls) or (
            self.schemes[target].intent(module_name, module_class=cls, fused_param=fused_param)
            if target is not None
            else Intent(None, None, "no target matches")
        )

    def patterns(self) -> list[str]:
        return [t for g in self.groups for t in g.targets] + self.ignore

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "llmc-recipe",
            "name": self.name,
            "ignore": self.ignore,
            "groups": [g.describe() for g in self.groups],
        }


def _llmc_recipe(path: Path, data: dict[str, Any]) -> LlmcFileRecipe:
    groups: list[CompressedTensorsRecipe] = []
    ignore: list[str] = []
    for stage_name, stage in data.items():
        if not str(stage_name).endswith("_stage") or not isinstance(stage, dict):
            continue
        for modifiers_name, modifiers in stage.items():
            if not str(modifiers_name).endswith("_modifiers") or not isinstance(modifiers, dict):
                continue
            for modifier, args in modifiers.items():
                if modifier in _QUANT_MODIFIERS and isinstance(args, dict):
                    ignore += [str(p) for p in args.get("ignore") or []]
                    groups += _llmc_groups(path, args)
    if not groups:
        raise InputError(
            f"{path}: no QuantizationModifier/GPTQModifier with a scheme or config_groups",
            hint="add the quantization modifier the recipe runs",
        )
    return LlmcFileRecipe(path.name, groups, ignore)


def _llmc_groups(path: Path, args: dict[str, Any]) -> list[CompressedTensorsRecipe]:
    raw = args.get("targets") or ["Linear"]
    targets = [raw] if isinstance(raw, str) else [str(t) for t in raw]
    scheme = args.get("scheme")
    if isinstance(scheme, str):
        return [llmc_scheme(scheme, targets=targets)]
    if isinstance(scheme, dict):
        return [
            llmc_scheme(name, targets=[str(t) for t in group_targets])
            for name, group_targets in scheme.items()
        ]
    groups = []
    for name, group in (args.get("config_groups") or {}).items():
        weights = (group or {}).get("weights") or {}
        if not isinstance(weights.get("num_bits"), int):
            raise InputError(
                f"{path}: config_groups.{name}.weights has no num_bits",
                hint="give weights: {num_bits, type, strategy}",
            )
        precision, group_size = weight_precision(weights)
        groups.append(
            CompressedTensorsRecipe(
                str(name),
                precision=precision,
                group_size=group_size,
                targets=[str(t) for t in group.get("targets") or targets],
                ignore=[],
                fmt=None,
                activation=activation_of((group or {}).get("input_activations")),
            )
        )
    return groups
