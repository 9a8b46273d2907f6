"""The post-PTQ gate: opens the source and the export through their byte sources, runs the
checks in order, and returns a ``GateReport`` (rendered by ``report``). Documents and scales are
read by ``gate_documents``, headers by ``checkpoint``; checks are pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ptq_validators.canary.gate_rows import canary_row, deploy_row
from ptq_validators.checkpoint import Checkpoint, Documents
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
from ptq_validators.checks import (
    recipe as recipe_check,
)
from ptq_validators.checks.base import CheckResult, verdict
from ptq_validators.deep import Progress, scan_deep
from ptq_validators.envelope import envelope
from ptq_validators.errors import UsageError
from ptq_validators.formats.roles import SCALAR_SCALE_ROLES
from ptq_validators.gate_documents import SIDECAR_FILES, MetadataPair, read_metadata, read_scalar_scales
from ptq_validators.io.source import ByteSource
from ptq_validators.layer_json import encode_layers
from ptq_validators.layers import LayerTable, build_layer_table
from ptq_validators.model_config import tied_embeddings
from ptq_validators.plan_file import check_plan
from ptq_validators.recipes import Recipe, llmc_scheme, modelopt_qformat
from ptq_validators.source_summary import summarize
from ptq_validators.verdict import failure_class
from ptq_validators.verdict import summary as gate_summary


@dataclass
class GateOptions:
    """What the user asked the gate to hold the export to, beyond its own metadata."""

    qformat: str | None = None
    scheme: str | None = None
    ignore: list[str] = field(default_factory=list)
    plan: str | None = None
    allow_quantized_vision: bool = False
    allow_extra_quantization: bool = False
    deep: bool = False
    deploy: str | None = None  # ENGINE[@VERSION] to check serving compatibility against
    deploy_tp: int = 1  # tensor-parallel size it will be served with
    deploy_gpu: int | None = None  # compute capability x 10 of the serving GPU (e.g. 90)
    canary: str | None = None  # a `ptqv canary --out` record to attach

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
    serving: dict[str, Any] | None = None  # the canary's compatibility inventory, with --canary

    @property
    def verdict(self) -> str:
        return verdict(self.checks)

    def to_json(self, *, encoded_layers: bool = False) -> dict[str, Any]:
        """The report document; with ``encoded_layers`` its ``layers`` are ``Encoded`` text for
        ``render_json`` (the same bytes, written from per-layout templates)."""
        return envelope(
            "gate",
            verdict=self.verdict,
            source=self.source,
            output=self.output,
            declared=self.table.declaration.summary,
            recipe=self.recipe,
            failure_class=failure_class(self.checks),
            summary=gate_summary(self.table, self.size, self.recipe, self.metadata_diffs),
            checks=[check.to_json() for check in self.checks],
            size=self.size,
            precision_counts=self.table.precision_counts(),
            scheme_counts=self.table.scheme_counts(),
            group_counts=self.table.group_counts(),
            layers=encode_layers(self.table)
            if encoded_layers
            else [layer.to_json() for layer in self.table.layers],
            metadata_diffs=[diff.to_json() for diff in self.metadata_diffs],
            serving=self.serving,
        )


def run_gate(
    output: ByteSource, source: ByteSource, options: GateOptions, progress: Progress | None = None
) -> GateReport:
    """Open both checkpoints (headers, documents and small scales) through their byte sources and
    judge the export. ``progress`` receives (shards done, shards, shard name) during ``--deep``.
    The report names both by their sources' ``root``."""
    recipe = options.recipe()
    source_checkpoint = Checkpoint.open(source)
    summary = summarize(source_checkpoint)
    # From here on only the source's documents are read: let its tensor tables go (about a
    # third of the peak memory on a 671B pair) before the export's are built.
    source_documents = Documents(source, source_checkpoint.files)
    del source_checkpoint
    exported = Checkpoint.open(output)
    table = build_layer_table(exported, source_shapes=summary.shapes)
    recipe, ignore_note = _adopt_declared_ignore(recipe, options, table)
    config = exported.config
    values = read_scalar_scales(exported, table.grouping, SCALAR_SCALE_ROLES)

    # The reader checked that the tensors cover each data buffer exactly: bits = bytes x 8.
    sizes = size.size_summary(
        summary.weight_bytes, exported.weight_bytes, summary.parameters, exported.weight_bytes * 8
    )
    sizes["quantized"] = size.quantized_bits(table, summary.parameters)
    compression = recipe is not None or options.plan is not None or table.declaration.family != "dense"
    deep_findings, scanned = scan_deep(exported, table, progress) if options.deep else (None, 0)
    checks = [
        size.check_size(sizes, compression=compression),
        coverage.check_precision(table),
        coverage.check_coverage(table),
        recipe_check.check_recipe(
            table, recipe, allow_extra=options.allow_extra_quantization, note=ignore_note
        ),
        check_plan(table, options.plan),
        coverage.check_vision(table, allow=options.allow_quantized_vision),
        coverage.check_head_and_embeddings(table),
        moe.check_moe_completeness(table, config),
        fused.check_fused_groups(table, values),
        kv_cache.check_kv_cache(table),
        quant_config.check_quant_config_consistency(
            exported.json_document("hf_quant_config.json"), config, set(table.names)
        ),
        excludes.check_exclude_hygiene(table, config),
        special.check_special_modules(table, config),
        names.check_names(table, summary, tied=tied_embeddings(config)),
        alignment.check_alignment(table),
        numerics.check_scale_values(values),
        numerics.check_deep(deep_findings, scanned),
    ]
    drift_checks, diffs = _metadata_checks(read_metadata(source_documents, exported))
    checks += drift_checks
    checks.append(documents.check_files(source_documents.files, exported.files, SIDECAR_FILES))
    checks.append(integrity.check_integrity(exported.issues, len(exported.headers)))
    checks.append(safety.check_safety(exported.files, exported.pickle_files, config))
    checks.append(
        deploy_row(
            options.deploy, table, config, exported.json_document("hf_quant_config.json"),
            tensor_parallel=options.deploy_tp, gpu_capability=options.deploy_gpu,
        )
    )  # fmt: skip
    canary_check, serving = canary_row(options.canary)
    checks.append(canary_check)
    _name_leftovers(checks)
    return GateReport(
        source.root, output.root, checks, sizes, table, diffs, recipe.describe() if recipe else None, serving
    )


def _name_leftovers(checks: list[CheckResult]) -> None:
    """A size FAIL names the leftover tensors the names check found (they are the bytes)."""
    by_id = {check.id: check for check in checks}
    sized, named = by_id["size"], by_id["names"]
    leftovers = [d.partition(":")[0] for d in named.details if "outside the format's vocabulary" in d]
    if sized.status == "fail" and leftovers:
        shown = ", ".join(leftovers[:5]) + (f" and {len(leftovers) - 5} more" if len(leftovers) > 5 else "")
        sized.details.append(f"leftover tensors found by the names check: {shown}")


def _adopt_declared_ignore(
    recipe: Recipe | None, options: GateOptions, table: LayerTable
) -> tuple[Recipe | None, str | None]:
    """``--scheme`` without ``--ignore``: the ignore list the export declares is the one the
    recipe ran with (llm-compressor itself ignores nothing by default, so judging with an empty
    list would call every router and lm_head a miss). Returns the recipe and the row's note."""
    if recipe is None or not options.scheme or options.ignore:
        return recipe, None
    if table.declaration.family != "compressed-tensors":
        return recipe, None
    declared = table.declaration.exclusion_patterns()
    note = (
        f"ignore list taken from the export's declaration: {declared}"
        if declared
        else "the export declares no ignore list"
    )
    note += " (llm-compressor's own default ignores nothing)" if declared else ""
    return llmc_scheme(options.scheme, ignore=declared), note


def _first_difference(source: str, output: str) -> tuple[str, str]:
    """The first line where two templates differ, as ``line N: <text>`` on each side."""
    src_lines, out_lines = source.splitlines(), output.splitlines()
    for number, (was, now) in enumerate(zip(src_lines, out_lines, strict=False), start=1):
        if was != now:
            return f"line {number}: {was}", f"line {number}: {now}"
    number = min(len(src_lines), len(out_lines)) + 1
    if len(src_lines) == len(out_lines):  # only line endings or a trailing newline differ
        return f"{len(source)} chars", f"{len(output)} chars (whitespace differs)"
    return _line(src_lines, number), _line(out_lines, number)


def _line(lines: list[str], number: int) -> str:
    return f"line {number}: {lines[number - 1]}" if len(lines) >= number else f"ends after line {number - 1}"


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
        if out_template.text is None:
            was, now = f"{len(src_template.text)} chars in {src_template.file}", "absent"
        else:
            was, now = _first_difference(src_template.text, out_template.text)
        template_diffs.append(
            md.MetadataDiff(out_template.file or "chat_template", "chat_template", was, now, md.BLOCKING)
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
