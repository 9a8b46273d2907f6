"""``ptqv plan``: a recipe applied to the model's real module names before anything runs.

Input: the model directory, a ``Recipe`` (``--qformat`` preset, ``--scheme`` preset with
``--ignore``, or a recipe file), optionally the deploy GPU. Output: the intended layer table
(checkpoint names, taxonomy group, intended precision or the source dtype when left alone), the
per-group coverage, findings, and the verdict. ``ptqv gate --plan`` compares an export with the
same layer table, so the names here are checkpoint names.
"""

from __future__ import annotations

from collections import defaultdict
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ptq_validators.checkpoint import Checkpoint, Documents
from ptq_validators.io.source import ByteSource
from ptq_validators.preflight import model as model_facts
from ptq_validators.preflight.findings import Finding, verdict
from ptq_validators.preflight.gpus import GpuSpec
from ptq_validators.preflight.inventory import Inventory, Layer, build_inventory
from ptq_validators.preflight.recommend import serving_finding
from ptq_validators.recipes import CompressedTensorsRecipe, Recipe
from ptq_validators.recipes.compressed_tensors import ct_match
from ptq_validators.recipes.modelopt import default_disabled_entries
from ptq_validators.recipes.recipe_files import LlmcFileRecipe, ModelOptFileRecipe
from ptq_validators.taxonomy import LayerGroup, classify

_TORCH_DTYPE_LABEL = {"bfloat16": "BF16", "float16": "FP16", "float32": "FP32"}
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
    source_label = _TORCH_DTYPE_LABEL.get(str(facts["dtype"]), "BF16")
    num_layers = facts["num_hidden_layers"]
    rows, intents = [], []
    for layer in inventory.layers:
        intent = recipe.intent(layer.runtime, module_class=layer.module_class, fused_param=layer.fused_param)
        intents.append(intent)
        rows.append(
            {
                "name": layer.name,
                "group": classify(layer.name, num_hidden_layers=num_layers).value,
                "precision": intent.precision.value if intent.precision else source_label,
                "group_size": intent.group_size if intent.precision else None,
            }
        )
    findings = _findings(recipe, recipe_spec, inventory, rows, intents, facts, deploy_gpu)
    return {
        "schema_version": 1,
        "kind": "ptqv-plan",
        "model": source.root,
        "recipe": recipe_spec,
        "inventory": {
            "source": inventory.source,
            "layers": len(rows),
            "params": inventory.params,
            "notes": inventory.notes,
        },
        "layers": rows,
        "groups": _groups(rows, intents, source_label),
        "warnings": [f.to_json() for f in findings],
        "verdict": verdict(findings),
    }


def _header_shapes(model: Documents) -> dict[str, tuple[int, ...]]:
    if not any(name.endswith(".safetensors") for name in model.files):
        return {}
    return {name: info.shape for name, info in Checkpoint.open(model.source).tensors.items()}


def _groups(rows: list[dict[str, Any]], intents: list, source_label: str) -> list[dict[str, Any]]:
    by_group: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_group[row["group"]].append(index)
    out = []
    for group in [g.value for g in LayerGroup if g.value in by_group]:
        members = by_group[group]
        quantized = sorted({rows[i]["precision"] for i in members if intents[i].precision})
        out.append(
            {
                "group": group,
                "total": len(members),
                "matched": sum(1 for i in members if intents[i].precision),
                "precision": "+".join(quantized) if quantized else source_label,
            }
        )
    return out


def _findings(
    recipe: Recipe,
    recipe_spec: dict[str, Any],
    inventory: Inventory,
    rows: list[dict[str, Any]],
    intents: list,
    facts: dict[str, Any],
    deploy_gpu: GpuSpec | None,
) -> list[Finding]:
    findings: list[Finding] = []
    quantized = [i for i, intent in enumerate(intents) if intent.precision]
    if not quantized:
        findings.append(
            Finding(
                "nothing-quantized", "block", f"the recipe quantizes none of the {len(rows)} linear layers"
            )
        )
    findings += _pattern_findings(recipe, recipe_spec, inventory.layers, rows)
    findings += _coverage_findings(recipe, rows, intents)
    for group, (fid, what, fix) in _WARN_IF_QUANTIZED.items():
        hits = [rows[i]["name"] for i in quantized if rows[i]["group"] == group.value]
        if hits:
            findings.append(
                Finding(
                    fid, "warn", f"{len(hits)} layer(s) of {what} would be quantized (e.g. {hits[0]}): {fix}"
                )
            )
    unreached = [
        layer.name
        for layer, intent in zip(inventory.layers, intents, strict=False)
        if layer.fused_param
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
                "precision (ModelOpt names their quantizers '<experts>.gate_up_proj_weight_quantizer';"
                " llm-compressor must linearise the experts first)",
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
        for precision in sorted({rows[i]["precision"] for i in quantized}):
            finding = serving_finding(precision, deploy_gpu)
            if finding:
                findings.append(finding)
    findings += [Finding("inventory-note", "info", note) for note in inventory.notes]
    return findings


def _user_patterns(recipe: Recipe, recipe_spec: dict[str, Any]) -> list[tuple[str, bool]]:
    """(pattern, weight-quantizer pattern?) the user wrote: a recipe file's entries or --ignore."""
    if "recipe" in recipe_spec:
        patterns = recipe.patterns()  # type: ignore[attr-defined]  (file recipes only)
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


def _matches(recipe: Recipe, pattern: str, layer: Layer) -> bool:
    """Does ``pattern`` select ``layer`` under the recipe's own tool semantics?"""
    if isinstance(recipe, (CompressedTensorsRecipe, LlmcFileRecipe)):
        return ct_match(pattern, layer.runtime, layer.module_class or "Linear")
    quantizer = f"{layer.runtime}{'_' if layer.fused_param else '.'}weight_quantizer"
    return fnmatchcase(quantizer, pattern)


def _pattern_findings(
    recipe: Recipe, recipe_spec: dict[str, Any], layers: list[Layer], rows: list[dict[str, Any]]
) -> list[Finding]:
    findings = []
    for pattern, weight_pattern in _user_patterns(recipe, recipe_spec):
        hits = [i for i, layer in enumerate(layers) if _matches(recipe, pattern, layer)]
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
            rows[i]["name"]
            for i in hits
            if rows[i]["name"].rsplit(".", 1)[-1] in ("gate_proj", "gate_up_proj")
            or layers[i].runtime.endswith("gate_up_proj")
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


def _coverage_findings(recipe: Recipe, rows: list[dict[str, Any]], intents: list) -> list[Finding]:
    """Block when a group the recipe's enabling patterns aim at ends up with no coverage."""
    describe = recipe.describe()
    enabling = [e["quantizer_name"] for e in describe.get("entries", []) if e["enable"]]
    enabling += describe.get("targets", []) + [
        t for g in describe.get("groups", []) for t in g.get("targets", [])
    ]
    findings = []
    for group, words in _GROUP_WORDS.items():
        members = [i for i, row in enumerate(rows) if row["group"] == group.value]
        aimed = [p for p in enabling if any(w in p for w in words)]
        if members and aimed and not any(intents[i].precision for i in members):
            findings.append(
                Finding(
                    "targeted-group-uncovered",
                    "block",
                    f"the recipe aims at {group.value} ({', '.join(repr(p) for p in aimed[:3])}) but "
                    f"none of its {len(members)} layers is quantized (e.g. {rows[members[0]]['name']}: "
                    f"{intents[members[0]].rule})",
                )
            )
    return findings


def _divisibility_findings(layers: list[Layer], intents: list) -> list[Finding]:
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
            "block",
            f"{len(bad)} targeted layer(s) have a dimension not divisible by the "
            f"{precision.value} group size {size} (e.g. {name} {list(shape)}): the export "
            "fails or the runtime rejects them; exclude them",
        )
    ]
