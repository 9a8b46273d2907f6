"""The post-PTQ gate: opens the source and the export through their byte sources, runs the
checks in order, and returns a ``GateReport`` (rendered by ``report``). Documents and scales are
read by ``gate_documents``, headers by ``checkpoint``; checks are pure functions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.checks import (
    alignment,
    coverage,
    documents,
    excludes,
    fused,
    integrity,
    kv_cache,
    moe,
    names,
    numerics,
    quant_config,
    safety,
    size,
    special,
)
from ptq_validators.checks import metadata as md
from ptq_validators.checks.base import FAIL, CheckResult
from ptq_validators.deep import Progress, scan_deep
from ptq_validators.errors import InputError, UsageError
from ptq_validators.gate_documents import SIDECAR_FILES, MetadataPair, read_metadata, read_scalar_scales
from ptq_validators.io.source import ByteSource
from ptq_validators.layers import LayerTable, build_layer_table
from ptq_validators.precision import Precision
from ptq_validators.recipes import Intent, Recipe, llmc_scheme, modelopt_qformat
from ptq_validators.source_summary import summarize

SCHEMA_VERSION = 1
# ModelOpt splits fused 3-D expert parameters into per-expert linears on export.
_FUSED_SPLITS = {
    "gate_up_proj": ("gate_proj", "up_proj"),
    "down_proj": ("down_proj",),
    "up_proj": ("up_proj",),
}


@dataclass
class GateOptions:
    """What the user asked the gate to hold the export to, beyond its own metadata."""

    qformat: str | None = None
    scheme: str | None = None
    ignore: list[str] = field(default_factory=list)
    plan: str | None = None
    allow_quantized_vision: bool = False
    deep: bool = False

    def recipe(self) -> Recipe | None:
        if self.qformat and self.scheme:
            raise UsageError("--qformat and --scheme are exclusive", hint="pass only one of them")
        if self.ignore and not self.scheme:
            raise UsageError(
                "--ignore applies to --scheme only", hint="ModelOpt qformats carry their own exclusions"
            )
        if self.qformat:
            return modelopt_qformat(self.qformat)
        if self.scheme:
            return llmc_scheme(self.scheme, ignore=self.ignore)
        return None


@dataclass
class GateReport:
    """Everything the gate found. ``verdict`` is ``fail`` when any check failed."""

    source: str
    output: str
    checks: list[CheckResult]
    size: dict[str, Any]
    table: LayerTable
    metadata_diffs: list[md.MetadataDiff]
    recipe: dict[str, Any] | None

    @property
    def verdict(self) -> str:
        return "fail" if any(check.status == FAIL for check in self.checks) else "pass"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "ptqv-gate",
            "verdict": self.verdict,
            "source": self.source,
            "output": self.output,
            "declared": self.table.declaration.summary,
            "recipe": self.recipe,
            "checks": [check.to_json() for check in self.checks],
            "size": self.size,
            "precision_counts": self.table.precision_counts(),
            "group_counts": self.table.group_counts(),
            "layers": [layer.to_json() for layer in self.table.layers],
            "metadata_diffs": [diff.to_json() for diff in self.metadata_diffs],
        }


def run_gate(
    output: ByteSource, source: ByteSource, options: GateOptions, progress: Progress | None = None
) -> GateReport:
    """Open both checkpoints (headers, documents and small scales) through their byte sources and
    judge the export. ``progress`` receives (shards done, shards, shard name) during ``--deep``.
    The report names both by their sources' ``root``."""
    recipe = options.recipe()
    source_checkpoint = Checkpoint.open(source)
    summary = summarize(source_checkpoint)
    exported = Checkpoint.open(output)
    table = build_layer_table(exported, source_shapes=summary.shapes)
    config = exported.config
    values = read_scalar_scales(exported, numerics.SCALAR_ROLES)

    # The reader checked that the tensors cover each data buffer exactly: bits = bytes x 8.
    sizes = size.size_summary(
        summary.weight_bytes, exported.weight_bytes, summary.parameters, exported.weight_bytes * 8
    )
    compression = recipe is not None or options.plan is not None or table.declaration.family != "dense"
    deep_findings, scanned = scan_deep(exported, table, progress) if options.deep else (None, 0)
    checks = [
        size.check_size(sizes, compression=compression),
        coverage.check_precision(table),
        coverage.check_coverage(table),
        _recipe_check(table, recipe),
        _plan_check(table, options.plan),
        coverage.check_vision(table, allow=options.allow_quantized_vision),
        coverage.check_head_and_embeddings(table),
        moe.check_moe_completeness(table, config),
        fused.check_fused_groups(table, values),
        kv_cache.check_kv_cache(table),
        quant_config.check_quant_config_consistency(
            exported.json_document("hf_quant_config.json"), config, {layer.name for layer in table.layers}
        ),
        excludes.check_exclude_hygiene(table, config),
        special.check_special_modules(table, config),
        names.check_names(
            table, summary.tensor_names, summary.essential_names, tied=excludes.tied_embeddings(config)
        ),
        alignment.check_alignment(table),
        numerics.check_scale_values(values),
        numerics.check_deep(deep_findings, scanned),
    ]
    drift_checks, diffs = _metadata_checks(read_metadata(source_checkpoint, exported))
    checks += drift_checks
    checks.append(documents.check_files(source_checkpoint.files, exported.files, SIDECAR_FILES))
    checks.append(integrity.check_integrity(exported.issues, len(exported.headers)))
    checks.append(safety.check_safety(exported.files, exported.pickle_files, config))
    return GateReport(
        source.root, output.root, checks, sizes, table, diffs, recipe.describe() if recipe else None
    )


def _recipe_check(table: LayerTable, recipe: Recipe | None) -> CheckResult:
    title = "Recipe coverage"
    if recipe is None:
        return coverage.skipped("recipe", title, "no --qformat or --scheme given")
    intents = {
        layer.name: recipe.intent(
            layer.name,
            fused_param=layer.fused,
            module_class="Embedding" if layer.group.value == "embed" else "Linear",
        )
        for layer in table.layers
    }
    return coverage.check_expectation(
        table, intents, check_id="recipe", title=f"{title} ({recipe.name})", strict=False
    )


def _plan_check(table: LayerTable, plan_path: str | None) -> CheckResult:
    title = "Plan vs export"
    if plan_path is None:
        return coverage.skipped("plan", title, "no --plan given")
    intents = _expand_fused(load_plan(plan_path), {layer.name for layer in table.layers})
    return coverage.check_expectation(table, intents, check_id="plan", title=title, strict=True)


def load_plan(path: str) -> dict[str, Intent]:
    """Read a ``ptqv plan --out`` file into intents per layer name."""
    try:
        with open(path, encoding="utf-8") as handle:
            plan = json.load(handle)
    except OSError as exc:
        raise InputError(
            f"{path}: cannot read plan: {exc.strerror}", hint="pass the file written by `ptqv plan --out`"
        ) from None
    except ValueError as exc:
        raise InputError(
            f"{path}: invalid JSON: {exc}", hint="pass the file written by `ptqv plan --out`"
        ) from None
    if not (
        isinstance(plan, dict) and plan.get("kind") == "ptqv-plan" and isinstance(plan.get("layers"), list)
    ):
        raise InputError(
            f"{path}: not a ptqv plan (expected kind 'ptqv-plan' with 'layers')",
            hint="pass the file written by `ptqv plan --out`",
        )
    if plan.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path}: plan schema_version {plan.get('schema_version')!r} is not {SCHEMA_VERSION}",
            hint="re-create the plan with this version of ptqv",
        )
    intents: dict[str, Intent] = {}
    for row in plan["layers"]:
        try:
            precision = Precision(row["precision"])
            name = str(row["name"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{path}: invalid layer row {row!r}", hint="re-create the plan with `ptqv plan --out`"
            ) from None
        intended = precision if precision.is_quantized else None
        intents[name] = Intent(intended, row.get("group_size") if intended else None, "plan")
    return intents


def _expand_fused(intents: dict[str, Intent], found: set[str]) -> dict[str, Intent]:
    """Map a plan's fused expert parameters onto the per-expert linears ModelOpt exports."""
    expanded: dict[str, Intent] = {}
    for name, intent in intents.items():
        prefix, _, param = name.rpartition(".")
        splits = _FUSED_SPLITS.get(param) if name not in found else None
        members = [
            f
            for f in found
            if splits
            and f.startswith(prefix + ".")
            and f[len(prefix) + 1 :].partition(".")[0].isdigit()
            and f.rpartition(".")[2] in splits
            and f.count(".") == name.count(".") + 1
        ]
        for member in members or [name]:
            expanded[member] = intent
    return expanded


def _metadata_checks(pair: MetadataPair) -> tuple[list[CheckResult], list[md.MetadataDiff]]:
    """Config, tokenizer, chat template and generation-config drift."""
    config_diffs = md.diff_documents("config.json", *pair.config, md.classify_config)

    tokenizer_diffs: list[md.MetadataDiff] = []
    if pair.vocabularies is not None:
        tokenizer_diffs += md.diff_vocabulary("tokenizer.json", *pair.vocabularies)
    for name, src_doc, out_doc in pair.tokenizer_documents:
        classify = md.classify_tokenizer if name == "tokenizer_config.json" else md.classify_strict
        tokenizer_diffs += md.diff_documents(name, src_doc, out_doc, classify, depth=1)
    for name, src_digest, out_digest in pair.digests:
        if src_digest != out_digest:
            tokenizer_diffs.append(
                md.MetadataDiff(name, "sha256", src_digest[:16], out_digest[:16], md.BLOCKING)
            )

    template_diffs: list[md.MetadataDiff] = []
    src_template, out_template = pair.templates
    if src_template.text is not None and src_template.text != out_template.text:
        shown = (
            "absent"
            if out_template.text is None
            else f"{len(out_template.text)} chars in {out_template.file}"
        )
        template_diffs.append(
            md.MetadataDiff(
                out_template.file or "chat_template",
                "chat_template",
                f"{len(src_template.text)} chars in {src_template.file}",
                shown,
                md.BLOCKING,
            )
        )

    src_gen, out_gen = pair.generation
    gen_diffs = (
        md.diff_documents("generation_config.json", src_gen, out_gen, md.classify_generation, depth=1)
        if src_gen is not None
        else []
    )

    checks = [
        documents.check_drift("config", "Model config drift", config_diffs, compared=True),
        documents.check_drift(
            "tokenizer", "Tokenizer and special tokens", tokenizer_diffs, compared=pair.source_has_tokenizer
        ),
        documents.check_drift(
            "chat_template", "Chat template", template_diffs, compared=src_template.text is not None
        ),
        documents.check_drift(
            "generation_config", "Generation config", gen_diffs, compared=src_gen is not None
        ),
    ]
    return checks, config_diffs + tokenizer_diffs + template_diffs + gen_diffs
