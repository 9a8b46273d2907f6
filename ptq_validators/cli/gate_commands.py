"""`ptqv gate`, `ptqv scan` and `ptqv demo`: the post-PTQ gate and the checkpoint inventory.

Heavy modules are imported inside the commands so that `ptqv --help` stays fast.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from ptq_validators.cli.remote_commands import ACCEPT_NEW_OPTION, CLUSTERS_OPTION

GATE_EPILOG = """Examples:

  ptqv gate out/llama-nvfp4 --source meta-llama/Llama-3.1-8B-local --qformat nvfp4_mlp_only

  ptqv gate out/qwen-w4a16 --source qwen-src --scheme W4A16 --ignore lm_head --json

  ptqv gate out/ds-v3-nvfp4 --source ds-v3 --deep     # also NaN/Inf in block scales, sampled weights

  ptqv gate /lustre/me/out/qwen-fp8 --cluster dgx --source dgx:/lustre/me/Qwen3-8B --json

Exit codes: 0 pass (warnings allowed), 1 a blocking check failed, 2 usage,
3 unreadable or invalid input, 4 remote (cluster unreachable, host key or login refused)."""

SCAN_EPILOG = """Example:

  ptqv scan out/llama-nvfp4 --json

  ptqv scan /lustre/me/out/qwen-fp8 --cluster dgx --json    # headers over SFTP, no weights copied

Exit codes: 0 readable and consistent, 1 a check failed, 3 unreadable input, 4 remote."""

DEMO_EPILOG = """Example:

  ptqv demo            # gate a bundled tiny NVFP4 export against its source

Exit codes: as for `ptqv gate`."""


@contextmanager
def _bulk_allocation() -> Iterator[None]:
    """Pause the cyclic garbage collector while headers are parsed.

    A 671B export yields about a million small acyclic objects (tensor entries, layers); the
    cyclic collector would rescan all of them on every pass, about 40% of the wall time.
    Reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
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
    from ptq_validators.gate import GateOptions, run_gate
    from ptq_validators.remote.sources import SourceOpener
    from ptq_validators.report import render_json
    from ptq_validators.report.markdown import render_gate

    options = GateOptions(
        qformat=qformat,
        scheme=scheme,
        ignore=list(ignore or []),
        plan=plan,
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
    progress = _progress if sys.stderr.isatty() else None
    with _bulk_allocation(), SourceOpener(clusters, accept_new_host_key=accept_new_host_key) as opener:
        with opener.open(output, cluster) as exported, opener.open(source) as original:
            report = run_gate(exported, original, options, progress=progress)
        data = report.to_json()
        if opener.transfer():
            data["transfer"] = opener.transfer()
        document = render_json(data) if json_output else render_gate(report, limit=limit)
    sys.stdout.write(document)
    raise typer.Exit(0 if report.verdict == "pass" else 1)


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
    from ptq_validators.remote.sources import SourceOpener
    from ptq_validators.report import render_json
    from ptq_validators.report.markdown import render_scan
    from ptq_validators.scan import run_scan

    with _bulk_allocation(), SourceOpener(clusters, accept_new_host_key=accept_new_host_key) as opener:
        with opener.open(checkpoint, cluster) as source:
            report = run_scan(source)
        data = report.to_json()
        if opener.transfer():
            data["transfer"] = opener.transfer()
        document = render_json(data) if json_output else render_scan(report, limit=limit)
    sys.stdout.write(document)
    failed = any(check.status == "fail" for check in report.checks)
    raise typer.Exit(1 if failed else 0)


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
    sys.stdout.write(render_json(report.to_json()) if json_output else render_gate(report))
    raise typer.Exit(0 if report.verdict == "pass" else 1)


def register(app: typer.Typer) -> None:
    """Add the gate commands to ``app``."""
    app.command("gate", epilog=GATE_EPILOG)(gate)
    app.command("scan", epilog=SCAN_EPILOG)(scan)
    app.command("demo", epilog=DEMO_EPILOG)(demo)
