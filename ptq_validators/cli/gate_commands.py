"""`ptqv gate`, `ptqv scan` and `ptqv demo`: the post-PTQ gate and the checkpoint inventory.

Heavy modules are imported inside the commands so that `ptqv --help` stays fast.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from ptq_validators.cli.epilogs import epilog
from ptq_validators.cli.options import ACCEPT_NEW_OPTION, CLUSTERS_OPTION
from ptq_validators.errors import CHECK_FAILED_EXIT, PASS_EXIT

GATE_EPILOG = epilog(
    "ptqv gate out/llama-nvfp4 --source llama-src --qformat nvfp4_mlp_only",
    "ptqv gate out/qwen-w4a16 --source qwen --scheme W4A16 --ignore lm_head",
    "ptqv gate out/ds-v3-nvfp4 --source ds-v3 --deep   # also NaN/Inf in scales",
    "ptqv gate /lustre/me/out --cluster dgx --source dgx:/lustre/me/src",
    note="OUTPUT and --source are directories (with --cluster, or as CLUSTER:PATH, on a cluster): "
    "download a Hub model first (hf download ORG/NAME --local-dir NAME). --qformat is case-insensitive.",
)
SCAN_EPILOG = epilog(
    "ptqv scan out/llama-nvfp4 --json",
    "ptqv scan llama-src            # an unquantized source: an inventory, exit 0",
    "ptqv scan /lustre/me/out --cluster dgx --json   # headers over SFTP",
)
DEMO_EPILOG = epilog("ptqv demo      # gate a bundled tiny NVFP4 export against its source")


@contextmanager
def _bulk_allocation() -> Iterator[None]:
    """Pause the cyclic garbage collector while headers are parsed.

    A 671B export yields about a million small acyclic objects (tensor entries, layers); the
    cyclic collector would rescan all of them on every pass, about 40% of the wall time.
    Reference counting still frees everything. The objects still alive at the end are frozen
    (left out of later scans) before the collector resumes: else its first pass would walk
    them all once more, about 0.06 s on a 671B report.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()


def _progress(done: int, total: int, shard: str) -> None:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""
    width = 30
    filled = width * done // total
    end = "\n" if done == total else ""
    sys.stderr.write(f"\rptqv --deep [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {shard}{end}")
    sys.stderr.flush()


def gate(
    output: str = typer.Argument(..., help="The exported (quantized) checkpoint directory."),
    source: str = typer.Option(..., "--source", help="The source checkpoint it was made from."),
    qformat: str | None = typer.Option(
        None, "--qformat", help="The ModelOpt --qformat used (e.g. nvfp4, fp8, nvfp4_mlp_only)."
    ),
    scheme: str | None = typer.Option(
        None, "--scheme", help="The llm-compressor preset scheme used (e.g. W4A16, NVFP4, FP8_DYNAMIC)."
    ),
    ignore: list[str] | None = typer.Option(
        None,
        "--ignore",
        help="With --scheme: an ignore entry of the recipe (repeatable; exact name, class or re:pattern).",
    ),
    plan: str | None = typer.Option(
        None, "--plan", help="A plan.json from `ptqv plan --out` to hold the export to."
    ),
    allow_quantized_vision: bool = typer.Option(
        False, "--allow-quantized-vision", help="Quantized vision towers/projectors warn instead of failing."
    ),
    allow_extra_quantization: bool = typer.Option(
        False,
        "--allow-extra-quantization",
        help="Layers the recipe leaves unquantized but the export stores quantized warn instead of failing.",
    ),
    deep: bool = typer.Option(
        False,
        "--deep",
        help="Also read block scales and sample weights for NaN/Inf (streams shard by shard).",
    ),
    deploy: str | None = typer.Option(
        None,
        "--deploy",
        help="Check what this engine's loader accepts: vllm[@VERSION] (sglang, trtllm: no data yet).",
    ),
    deploy_tp: int = typer.Option(1, "--deploy-tp", min=1, help="With --deploy: the tensor-parallel size."),
    deploy_gpu: str | None = typer.Option(
        None, "--deploy-gpu", help="With --deploy: the serving GPU's compute capability (e.g. 9.0, sm90)."
    ),
    canary: str | None = typer.Option(
        None, "--canary", help="A canary.json from `ptqv canary --out` to record in the report."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print the versioned JSON report instead of Markdown."
    ),
    limit: int = typer.Option(20, "--limit", min=1, help="Detail lines shown per check in Markdown."),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="OUTPUT is a path on this cluster (read over SFTP); SOURCE may be CLUSTER:PATH.",
    ),
    clusters: Path | None = CLUSTERS_OPTION,
    accept_new_host_key: bool = ACCEPT_NEW_OPTION,
) -> None:
    """Judge an exported checkpoint against its source: size, bits, coverage, metadata drift."""
    from ptq_validators.canary.gate_rows import parse_capability
    from ptq_validators.cli.arguments import gate_pair
    from ptq_validators.gate import GateOptions, run_gate
    from ptq_validators.presets import gate_qformat, gate_scheme, nonempty
    from ptq_validators.remote.sources import SourceOpener, is_remote
    from ptq_validators.report.markdown import render_gate

    options = GateOptions(
        qformat=None if qformat is None else gate_qformat(qformat),
        scheme=None if scheme is None else gate_scheme(scheme),
        ignore=[nonempty("--ignore", entry) for entry in ignore or []],
        plan=None if plan is None else nonempty("--plan", plan),
        allow_quantized_vision=allow_quantized_vision,
        allow_extra_quantization=allow_extra_quantization,
        deep=deep,
        deploy=deploy,
        deploy_tp=deploy_tp,
        deploy_gpu=parse_capability(deploy_gpu) if deploy_gpu else None,
        canary=canary,
    )
    options.recipe()  # usage errors before any source is opened (a remote one connects)
    if deploy:
        from ptq_validators.canary.compat import load_engine

        load_engine(deploy)
    if cluster is None and not is_remote(source):
        gate_pair(output, source)  # the mistakes people make with two local directories
    progress = _progress if sys.stderr.isatty() else None
    with _bulk_allocation(), SourceOpener(clusters, accept_new_host_key=accept_new_host_key) as opener:
        with opener.open(output, cluster) as exported, opener.open(source) as original:
            report = run_gate(exported, original, options, progress=progress)
        _write_report(report, opener, json_output, lambda: render_gate(report, limit=limit))
    raise typer.Exit(PASS_EXIT if report.verdict == "pass" else CHECK_FAILED_EXIT)


def _write_report(report: Any, opener: Any, json_output: bool, markdown: Callable[[], str]) -> None:
    """Print a gate or scan report: JSON streamed (the 46k-row text of a 671B report is never
    whole in memory), with the SFTP ``transfer`` block when a cluster was read; else Markdown."""
    if not json_output:
        sys.stdout.write(markdown())
        return
    from ptq_validators.envelope import write_json

    data = report.to_json(encoded_layers=True)
    transfer = opener.transfer()
    if transfer:
        data["transfer"] = transfer
    write_json(data, sys.stdout)


def scan(
    checkpoint: str = typer.Argument(..., help="A checkpoint directory (quantized or not)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of Markdown."),
    limit: int = typer.Option(20, "--limit", min=1, help="Detail lines shown per check in Markdown."),
    cluster: str | None = typer.Option(
        None, "--cluster", help="CHECKPOINT is a path on this cluster (SFTP)."
    ),
    clusters: Path | None = CLUSTERS_OPTION,
    accept_new_host_key: bool = ACCEPT_NEW_OPTION,
) -> None:
    """Inventory of one checkpoint: format, declared config, precision counts, bits per weight."""
    from ptq_validators.cli.arguments import checkpoint_directory
    from ptq_validators.remote.sources import SourceOpener
    from ptq_validators.report.markdown import render_scan
    from ptq_validators.scan import run_scan

    if cluster is None:
        checkpoint_directory(checkpoint, "CHECKPOINT")
    with _bulk_allocation(), SourceOpener(clusters, accept_new_host_key=accept_new_host_key) as opener:
        with opener.open(checkpoint, cluster) as source:
            report = run_scan(source)
        _write_report(report, opener, json_output, lambda: render_scan(report, limit=limit))
    failed = any(check.status == "fail" for check in report.checks)
    raise typer.Exit(CHECK_FAILED_EXIT if failed else PASS_EXIT)


def demo(
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of Markdown."),
) -> None:
    """Run the whole gate on a bundled tiny source / NVFP4 export pair (made by ModelOpt)."""
    from ptq_validators.gate import GateOptions, run_gate
    from ptq_validators.io.source import LocalSource
    from ptq_validators.report import render_json
    from ptq_validators.report.markdown import render_gate
    from ptq_validators.resources import data_dir

    example = data_dir("examples") / "tiny-llama"
    report = run_gate(
        LocalSource(example / "nvfp4"), LocalSource(example / "source"), GateOptions(qformat="nvfp4")
    )
    print(f"ptqv demo: gating {example / 'nvfp4'} against {example / 'source'}", file=sys.stderr)
    sys.stdout.write(render_json(report.to_json(encoded_layers=True)) if json_output else render_gate(report))
    raise typer.Exit(PASS_EXIT if report.verdict == "pass" else CHECK_FAILED_EXIT)


def register(app: typer.Typer) -> None:
    """Add the gate commands to ``app``."""
    app.command("gate", epilog=GATE_EPILOG)(gate)
    app.command("scan", epilog=SCAN_EPILOG)(scan)
    app.command("demo", epilog=DEMO_EPILOG)(demo)
