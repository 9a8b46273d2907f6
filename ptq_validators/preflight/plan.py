"""``ptqv plan``: a recipe applied to the model's real module names before anything runs.

Input: the model directory, a ``Recipe`` (``--qformat`` preset, ``--scheme`` preset with
``--ignore``, or a recipe file), optionally the deploy GPU. Output: the intended layer table
(checkpoint names, taxonomy group, intended precision or the source dtype when left alone), the
per-group coverage, findings, and the verdict. ``ptqv gate --plan`` compares an export with the
same layer table, so the names here are checkpoint names.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ptq_validators.checkpoint import Checkpoint, Documents
from ptq_validators.checks.base import Finding, verdict
from ptq_validators.envelope import envelope
from ptq_validators.formats.ct_rules import matches as ct_matches
from ptq_validators.io.source import ByteSource
from ptq_validators.layers import LayerRow
from ptq_validators.precision import Precision
from ptq_validators.preflight import model as model_facts
from ptq_validators.preflight.gpus import GpuSpec
from ptq_validators.preflight.inventory import Inventory, build_inventory
from ptq_validators.preflight.recommend import serving_finding
from ptq_validators.recipes import CompressedTensorsRecipe, Intent, Recipe
from ptq_validators.recipes.modelopt import default_disabled_entries
from ptq_validators.recipes.recipe_files import LlmcFileRecipe, ModelOptFileRecipe
from ptq_validators.taxonomy import LayerGroup

_TORCH_DTYPE_LABEL = {"bfloat16": Precision.BF16, "float16": Precision.FP16, "float32": Precision.FP32}
# Words in an enabling pattern that say which group it aims at (for the zero-coverage block).
_GROUP_WORDS = {
    LayerGroup.EXPERTS: ("expert", "block_sparse_moe"),
    LayerGroup.MLP: ("mlp", "gate_proj", "up_proj", "down_proj", "feed_forward", "ffn"),
    LayerGroup.ATTENTION: ("attn", "q_proj", "k_proj", "v_proj", "o_proj", "qkv", "attention"),
}
# Rules meaning "nothing selected this weight" (as opposed to an explicit exclusion).
_NOT_SELECTED = frozenset({"no entry enables it", "no target matches", "disabled by '*'"})
_WARN_IF_QUANTIZED = {
    LayerGroup.VISION: (
        "vision-tower-quantized",
        "the vision tower",
        "ignore/disable it: "
        "ModelOpt '*visual*' / '*vision_tower*' / '*vision_model*' entries after "
        "the enables; llm-compressor 're:.*visual.*' / 're:.*vision_tower.*' "
        "(re: is anchored at the start of the full name)",
    ),
    LayerGroup.PROJECTOR: (
        "projector-quantized",
        "the multimodal projector",
        "exclude '*multi_modal_projector*' / '*merger*'",
    ),
    LayerGroup.ROUTER: (
        "router-quantized",
        "MoE routers",
        "exclude '*mlp.gate.*' / '*router*' (llm-compressor 're:.*mlp.gate$')",
    ),
    LayerGroup.MTP: ("mtp-quantized", "multi-token-prediction layers", "exclude the MTP layers"),
    LayerGroup.LM_HEAD: (
        "lm-head-quantized",
        "lm_head",
        "exclude lm_head unless the serving runtime supports a quantized lm_head",
    ),
}


def plan_model(
    source: ByteSource,
    recipe: Recipe,
    recipe_spec: dict[str, Any],
    *,
    trust_remote_code: bool = False,
    deploy_gpu: GpuSpec | None = None,
) -> dict[str, Any]:
    """The plan (JSON-ready; ``--out`` writes exactly this document). Config and headers are
    read through ``source``; the meta-device build reads ``source.root`` as a local directory."""
    model = Documents.open(source)
    config = model.config
    facts = model_facts.describe(config)
    inventory = build_inventory(
        Path(source.root), config, _header_shapes(model), trust_remote_code=trust_remote_code
    )
    source_label = _TORCH_DTYPE_LABEL.get(str(facts["dtype"]), Precision.BF16)
    rows, intents = [], []
    for layer in inventory.layers:
        name, module_class, fused = _seen_by(recipe, inventory, layer)
        intent = recipe.intent(name, module_class=module_class, fused_param=fused)
        intents.append(intent)
        rows.append(
            replace(
                layer,
                precision=intent.precision or source_label,
                group_size=intent.group_size if intent.precision else None,
                declared=intent.precision,
                declared_group_size=intent.group_size if intent.precision else None,
                declared_by=intent.rule,
                activation=_activation_label(intent),
                declared_activation=_activation_label(intent),
            )
        )
    findings = _findings(recipe, recipe_spec, inventory, rows, intents, facts, deploy_gpu)
    return envelope(
        "plan",
        model=source.root,
        recipe=recipe_spec,
        inventory={
            "source": inventory.source,
            "layers": len(rows),
            "params": inventory.params,
            "notes": inventory.notes,
        },
        layers=[row.to_json() for row in rows],
        groups=_groups(rows, intents, source_label),
        findings=[f.to_json() for f in findings],
        verdict=verdict(findings),
    )


def _header_shapes(model: Documents) -> dict[str, tuple[int, ...]]:
    if not any(name.endswith(".safetensors") for name in model.files):
        return {}
    return {name: info.shape for name, info in Checkpoint.open(model.source).tensors.items()}


def _activation_label(intent: Intent) -> str | None:
    """The intended activation side of a row: none for a layer left unquantized."""
    if intent.precision is None:
        return "none"
    return intent.activation.label if intent.activation else None


def _groups(rows: list[LayerRow], intents: list, source_label: Precision) -> list[dict[str, Any]]:
    by_group: dict[LayerGroup, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_group[row.group].append(index)
    out = []
    for group in [g for g in LayerGroup if g in by_group]:
        members = by_group[group]
        quantized = sorted({rows[i].precision.value for i in members if intents[i].precision})
        out.append(
            {
                "group": group.value,
                "total": len(members),
                "matched": sum(1 for i in members if intents[i].precision),
                "precision": "+".join(quantized) if quantized else source_label.value,
            }
        )
    return out


def _findings(
    recipe: Recipe,
    recipe_spec: dict[str, Any],
    inventory: Inventory,
    rows: list[LayerRow],
    intents: list,
    facts: dict[str, Any],
    deploy_gpu: GpuSpec | None,
) -> list[Finding]:
    findings: list[Finding] = []
    quantized = [i for i, intent in enumerate(intents) if intent.precision]
    if not quantized:
        findings.append(
            Finding(
                "nothing-quantized", "fail", f"the recipe quantizes none of the {len(rows)} linear layers"
            )
        )
    findings += _pattern_findings(recipe, recipe_spec, inventory, rows)
    findings += _coverage_findings(recipe, rows, intents)
    for group, (fid, what, fix) in _WARN_IF_QUANTIZED.items():
        hits = [rows[i].name for i in quantized if rows[i].group is group]
        if hits:
            findings.append(
                Finding(
                    fid, "warn", f"{len(hits)} layer(s) of {what} would be quantized (e.g. {hits[0]}): {fix}"
                )
            )
    unreached = [
        layer.name
        for layer, intent in zip(inventory.layers, intents, strict=False)
        if layer.fused
        and not recipe.linearizes_fused_experts
        and intent.precision is None
        and (intent.rule in _NOT_SELECTED or intent.rule.startswith("fused parameter"))
    ]
    if unreached and quantized:
        findings.append(
            Finding(
                "fused-experts-unreached",
                "warn",
                f"{len(unreached)} expert weights live in fused 3-D parameters (e.g. {unreached[0]}) "
                "that are not nn.Linear and no recipe entry selects them: they stay in high "
                "precision (ModelOpt names their quantizers '<experts>.gate_up_proj_weight_quantizer')",
            )
        )
    findings += _divisibility_findings(inventory.layers, intents)
    source = facts["source_quantization"]
    if source and str(source["quant_method"]).lower() == "fp8" and len(quantized) < len(rows):
        findings.append(
            Finding(
                "fp8-source-layers-become-bf16",
                "warn",
                f"the source is FP8; the {len(rows) - len(quantized)} layer(s) this recipe leaves "
                "out are written as BF16, not FP8 (twice the size of the source layer)",
            )
        )
    if deploy_gpu is not None:
        for precision in sorted({rows[i].precision.value for i in quantized}):
            finding = serving_finding(precision, deploy_gpu)
            if finding:
                findings.append(finding)
    findings += [Finding("inventory-note", "info", note) for note in inventory.notes]
    return findings


def _user_patterns(recipe: Recipe, recipe_spec: dict[str, Any]) -> list[tuple[str, bool]]:
    """(pattern, weight-quantizer pattern?) the user wrote: a recipe file's entries or --ignore."""
    if "recipe" in recipe_spec:
        # only recipe files have patterns() (presets are data, not user-written patterns)
        patterns = recipe.patterns()  # type: ignore[attr-defined]
        # Default-disabled entries are appended by ModelOpt itself, not written by the user.
        return [
            (p, not p.endswith(("input_quantizer", "output_quantizer", "bmm_quantizer")))
            for p in dict.fromkeys(patterns)
            if not _is_default_disabled(recipe, p)
        ]
    return [(p, True) for p in recipe_spec.get("ignore", [])]


def _is_default_disabled(recipe: Recipe, pattern: str) -> bool:
    return isinstance(recipe, ModelOptFileRecipe) and pattern in {
        e.pattern for e in default_disabled_entries()
    }


def _seen_by(recipe: Recipe, inventory: Inventory, layer: LayerRow) -> tuple[str, str | None, bool]:
    """(name, module class, fused parameter?) of ``layer`` as the recipe's tool sees it: the
    built model's module or parameter, or, where the tool linearises fused experts first, the
    per-expert ``Linear`` (named like the checkpoint's weight)."""
    if layer.fused and recipe.linearizes_fused_experts:
        return layer.name, "Linear", False
    return inventory.runtime[layer.name], layer.module_class, layer.fused


def _matches(recipe: Recipe, pattern: str, seen: tuple[str, str | None, bool]) -> bool:
    """Does ``pattern`` select a layer (``seen`` by ``_seen_by``) under the recipe's own tool
    semantics?"""
    name, module_class, fused = seen
    if isinstance(recipe, (CompressedTensorsRecipe, LlmcFileRecipe)):
        return ct_matches(pattern, name, module_class or "Linear")
    return fnmatchcase(f"{name}{'_' if fused else '.'}weight_quantizer", pattern)


def _pattern_findings(
    recipe: Recipe, recipe_spec: dict[str, Any], inventory: Inventory, rows: list[LayerRow]
) -> list[Finding]:
    findings = []
    layers, runtime = inventory.layers, inventory.runtime
    seen = [_seen_by(recipe, inventory, layer) for layer in layers]
    for pattern, weight_pattern in _user_patterns(recipe, recipe_spec):
        hits = [i for i, layer in enumerate(layers) if _matches(recipe, pattern, seen[i])]
        if not hits and weight_pattern:
            findings.append(
                Finding(
                    "zero-match-pattern",
                    "warn",
                    f"{pattern!r} matches none of the {len(layers)} layers: "
                    "check the spelling against the module names",
                )
            )
        gate_hits = [
            rows[i].name
            for i in hits
            if rows[i].name.rsplit(".", 1)[-1] in ("gate_proj", "gate_up_proj")
            or runtime[layers[i].name].endswith("gate_up_proj")
        ]
        if gate_hits and "gate" in pattern and "gate_proj" not in pattern and "gate_up" not in pattern:
            findings.append(
                Finding(
                    "over-broad-pattern",
                    "warn",
                    f"{pattern!r} also hits gate_proj / gate_up_proj ({len(gate_hits)} MLP layers, "
                    f"e.g. {gate_hits[0]}): for routers write '*mlp.gate.*' or '*router*' "
                    "(llm-compressor 're:.*mlp.gate$')",
                )
            )
    return findings


def _coverage_findings(recipe: Recipe, rows: list[LayerRow], intents: list) -> list[Finding]:
    """Block when a group the recipe's enabling patterns aim at ends up with no coverage."""
    describe = recipe.describe()
    enabling = [e["quantizer_name"] for e in describe.get("entries", []) if e["enable"]]
    enabling += describe.get("targets", []) + [
        t for g in describe.get("groups", []) for t in g.get("targets", [])
    ]
    findings = []
    for group, words in _GROUP_WORDS.items():
        members = [i for i, row in enumerate(rows) if row.group is group]
        aimed = [p for p in enabling if any(w in p for w in words)]
        if members and aimed and not any(intents[i].precision for i in members):
            findings.append(
                Finding(
                    "targeted-group-uncovered",
                    "fail",
                    f"the recipe aims at {group.value} ({', '.join(repr(p) for p in aimed[:3])}) but "
                    f"none of its {len(members)} layers is quantized (e.g. {rows[members[0]].name}: "
                    f"{intents[members[0]].rule})",
                )
            )
    return findings


def _divisibility_findings(layers: list[LayerRow], intents: list) -> list[Finding]:
    bad = []
    for layer, intent in zip(layers, intents, strict=False):
        size = intent.group_size
        if not intent.precision or not size:
            continue
        # The contraction (input) dimension is the last one of a [out, in] weight; a fused
        # 3-D parameter's layout varies by family, so both of its trailing dimensions count.
        dims = layer.shape[-2:] if len(layer.shape) == 3 else layer.shape[-1:]
        if any(d % size for d in dims):
            bad.append((layer.name, layer.shape, size, intent.precision))
    if not bad:
        return []
    name, shape, size, precision = bad[0]
    return [
        Finding(
            "not-divisible",
            "fail",
            f"{len(bad)} targeted layer(s) have a dimension not divisible by the "
            f"{precision.value} group size {size} (e.g. {name} {list(shape)}): the export "
            "fails or the runtime rejects them; exclude them",
        )
    ]
