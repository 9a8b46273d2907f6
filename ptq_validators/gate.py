"""The post-PTQ gate: reads the source and the export, runs the checks in order, and returns a
``GateReport`` (rendered by ``report``). Reading happens here; checks are pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ptq_validators import forked
from ptq_validators.checkpoint import (
    PROCESSOR_FILES,
    TOKENIZER_FILES,
    Checkpoint,
    Documents,
)
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
from ptq_validators.checks.base import CheckResult, verdict
from ptq_validators.deep import Progress, scan_deep
from ptq_validators.envelope import envelope
from ptq_validators.errors import UsageError
from ptq_validators.formats.roles import SCALAR_SCALE_ROLES
from ptq_validators.layers import LayerTable, build_layer_table, split_role
from ptq_validators.model_config import tied_embeddings
from ptq_validators.plan_file import check_plan
from ptq_validators.recipes import Recipe, llmc_scheme, modelopt_qformat
from ptq_validators.source_summary import start_summary
from ptq_validators.values import DECODABLE, decode

# Per-expert vectors of scalar scales (one per expert) are still small; larger scale tensors
# are block/group grids, read only by --deep.
MAX_SCALAR_BYTES = 4096
SIDECAR_FILES = (
    "config.json",
    "generation_config.json",
    *TOKENIZER_FILES,
    "chat_template.jinja",
    "chat_template.json",
    *PROCESSOR_FILES,
)


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
        return verdict(self.checks)

    def to_json(self) -> dict[str, Any]:
        return envelope(
            "gate",
            verdict=self.verdict,
            source=self.source,
            output=self.output,
            declared=self.table.declaration.summary,
            recipe=self.recipe,
            checks=[check.to_json() for check in self.checks],
            size=self.size,
            precision_counts=self.table.precision_counts(),
            group_counts=self.table.group_counts(),
            layers=[layer.to_json() for layer in self.table.layers],
            metadata_diffs=[diff.to_json() for diff in self.metadata_diffs],
        )


def run_gate(
    output_dir: str, source_dir: str, options: GateOptions, progress: Progress | None = None
) -> GateReport:
    """Open both checkpoints (headers, documents and small scales) and judge the export.
    ``progress`` receives (shards done, shards, shard name) during ``--deep``."""
    recipe = options.recipe()
    source = Documents.open(source_dir)
    pending_summary = start_summary(source)
    output = Checkpoint.open(output_dir)
    # Decoding the scalar scales needs only the export's tensor names: let a child do it while
    # the layer table is built (only worth a fork for exports as large as a large source).
    pending_values = forked.start(lambda: read_scalar_scales(output), data_bytes=output.weight_bytes)
    summary = pending_summary()
    table = build_layer_table(output, source_shapes=summary.shapes)
    config = output.config
    values = pending_values()

    # The reader checked that the tensors cover each data buffer exactly: bits = bytes x 8.
    sizes = size.size_summary(
        summary.weight_bytes, output.weight_bytes, summary.parameters, output.weight_bytes * 8
    )
    compression = recipe is not None or options.plan is not None or table.declaration.family != "dense"
    deep_findings, scanned = scan_deep(output, table, progress) if options.deep else (None, 0)
    checks = [
        size.check_size(sizes, compression=compression),
        coverage.check_precision(table),
        coverage.check_coverage(table),
        _recipe_check(table, recipe),
        check_plan(table, options.plan),
        coverage.check_vision(table, allow=options.allow_quantized_vision),
        coverage.check_head_and_embeddings(table),
        moe.check_moe_completeness(table, config),
        fused.check_fused_groups(table, values),
        kv_cache.check_kv_cache(table),
        quant_config.check_quant_config_consistency(
            output.json_document("hf_quant_config.json"), config, {layer.name for layer in table.layers}
        ),
        excludes.check_exclude_hygiene(table, config),
        special.check_special_modules(table, config),
        names.check_names(table, summary.tensor_names, summary.essential_names, tied=tied_embeddings(config)),
        alignment.check_alignment(table),
        numerics.check_scale_values(values),
        numerics.check_deep(deep_findings, scanned),
    ]
    drift_checks, diffs = _metadata_checks(source, output)
    checks += drift_checks
    checks.append(documents.check_files(source.files, output.files, SIDECAR_FILES))
    checks.append(integrity.check_integrity(output.issues, len(output.headers)))
    checks.append(safety.check_safety(output.files, output.pickle_files, config))
    return GateReport(
        source_dir, output_dir, checks, sizes, table, diffs, recipe.describe() if recipe else None
    )


def read_scalar_scales(checkpoint: Checkpoint) -> dict[str, list[float]]:
    """Decode the small scale tensors (global, input, KV, per-tensor weight scales): a few
    bytes each, read with one open per shard. Weight bytes are never read here."""
    names = []
    for name, info in checkpoint.tensors.items():
        if info.end - info.begin > MAX_SCALAR_BYTES or info.dtype not in DECODABLE:
            continue
        role = split_role(name, info)[1]
        if role in SCALAR_SCALE_ROLES and (role != "weight_scale" or info.numel == 1):
            names.append(name)
    data = checkpoint.read_tensors(names)
    return {name: decode(checkpoint.tensors[name].dtype, raw) for name, raw in data.items()}


def _recipe_check(table: LayerTable, recipe: Recipe | None) -> CheckResult:
    title = "Recipe coverage"
    if recipe is None:
        return coverage.skipped("recipe", title, "no --qformat or --scheme given")
    intents = {
        layer.name: recipe.intent(
            layer.name,
            fused_param=layer.fused,
            module_class=layer.module_class,
        )
        for layer in table.layers
    }
    return coverage.check_expectation(
        table, intents, check_id="recipe", title=f"{title} ({recipe.name})", strict=False
    )


def _metadata_checks(source: Documents, output: Documents) -> tuple[list[CheckResult], list[md.MetadataDiff]]:
    """Config, tokenizer, chat template and generation-config drift."""
    config_diffs = md.diff_documents("config.json", source.config, output.config, md.classify_config)

    tokenizer_diffs: list[md.MetadataDiff] = []
    src_tok, out_tok = source.json_document("tokenizer.json"), output.json_document("tokenizer.json")
    if src_tok is not None and out_tok is not None:
        tokenizer_diffs += md.diff_vocabulary("tokenizer.json", src_tok, out_tok)
    for name in ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        src_doc, out_doc = source.json_document(name), output.json_document(name)
        if src_doc is not None and out_doc is not None:
            classify = md.classify_tokenizer if name == "tokenizer_config.json" else md.classify_strict
            # The chat template is compared once, wherever it lives (below).
            src_doc = {k: v for k, v in src_doc.items() if k != "chat_template"}
            out_doc = {k: v for k, v in out_doc.items() if k != "chat_template"}
            tokenizer_diffs += md.diff_documents(name, src_doc, out_doc, classify, depth=1)
    for name in ("tokenizer.model", "vocab.json", "merges.txt"):
        src_digest, out_digest = source.file_digest(name), output.file_digest(name)
        if src_digest and out_digest and src_digest != out_digest:
            tokenizer_diffs.append(
                md.MetadataDiff(name, "sha256", src_digest[:16], out_digest[:16], md.BLOCKING)
            )

    template_diffs: list[md.MetadataDiff] = []
    src_template, src_where = source.chat_template()
    out_template, out_where = output.chat_template()
    if src_template is not None and src_template != out_template:
        shown = "absent" if out_template is None else f"{len(out_template)} chars in {out_where}"
        template_diffs.append(
            md.MetadataDiff(
                out_where or "chat_template",
                "chat_template",
                f"{len(src_template)} chars in {src_where}",
                shown,
                md.BLOCKING,
            )
        )

    src_gen = source.json_document("generation_config.json")
    out_gen = output.json_document("generation_config.json") or {}
    gen_diffs = (
        md.diff_documents("generation_config.json", src_gen, out_gen, md.classify_generation, depth=1)
        if src_gen is not None
        else []
    )

    has_tokenizer = any(source.has(name) for name in TOKENIZER_FILES)
    checks = [
        documents.check_drift("config", "Model config drift", config_diffs, compared=True),
        documents.check_drift(
            "tokenizer", "Tokenizer and special tokens", tokenizer_diffs, compared=has_tokenizer
        ),
        documents.check_drift(
            "chat_template", "Chat template", template_diffs, compared=src_template is not None
        ),
        documents.check_drift(
            "generation_config", "Generation config", gen_diffs, compared=src_gen is not None
        ),
    ]
    return checks, config_diffs + tokenizer_diffs + template_diffs + gen_diffs
