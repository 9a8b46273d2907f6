"""`ptqv canary`: does the export serve, and does it answer like its source?

The engine modules (HTTP client, process group, transformers) are imported inside the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

CANARY_EPILOG = """Examples:

  ptqv canary out/llama-w4a16 --serve vllm --source llama-src --engine-python /venvs/vllm/bin/python

  ptqv canary --endpoint http://127.0.0.1:8000 --source http://127.0.0.1:8001 --knowledge

  ptqv canary out/llama-w4a16 --engine transformers --source llama-src --out canary.json

Exit codes: 0 pass, 1 a check failed (incl. a known engine refusal), 2 usage, 3 bad input,
6 not checkable here (this engine cannot run the format on this hardware)."""


def canary(
    checkpoint: str | None = typer.Argument(
        None,
        help="The export to check (optional with --endpoint: it sets the precision family; the 4-bit limits apply without it).",
    ),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint", help="An OpenAI-compatible server already serving the export (base URL)."
    ),
    serve: str | None = typer.Option(
        None, "--serve", help="Start this engine on 127.0.0.1 for the run: vllm[@VERSION]."
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="Load in this process with: transformers (CPU or GPU)."
    ),
    source: str | None = typer.Option(
        None,
        "--source",
        help="The source, reached the same way (a checkpoint directory, or a URL with --endpoint).",
    ),
    engine_python: str | None = typer.Option(
        None,
        "--engine-python",
        help="With --serve: the Python whose environment has the engine (default: this Python).",
    ),
    knowledge: bool = typer.Option(
        False, "--knowledge", help="Also ask what a real model must answer (Paris; 391)."
    ),
    log_dir: Path = typer.Option(
        Path("."), "--log-dir", help="With --serve: where the engine logs are kept."
    ),
    start_timeout: float = typer.Option(
        600.0, "--start-timeout", min=1.0, help="With --serve: seconds to wait for the engine to be healthy."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write the versioned JSON record here (for `ptqv gate --canary`)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the JSON record instead of Markdown."),
) -> None:
    """Serve the export (or reach a server), ask a fixed prompt set, and judge the answers."""
    from ptq_validators.canary.render import render_canary
    from ptq_validators.canary.run import CanaryRequest, run_canary
    from ptq_validators.errors import UsageError
    from ptq_validators.report import render_json

    modes = [(m, t) for m, t in (("endpoint", endpoint_url), ("serve", serve), ("in-process", engine)) if t]
    if len(modes) != 1:
        raise UsageError(
            "pass exactly one of --endpoint URL, --serve vllm, --engine transformers",
            hint="see `ptqv canary --help`",
        )
    mode, target = modes[0]
    if mode != "endpoint" and checkpoint is None:
        raise UsageError(f"--{'serve' if mode == 'serve' else 'engine'} needs the CHECKPOINT directory")
    request = CanaryRequest(
        mode,
        str(target),
        checkpoint,
        source,
        knowledge,
        engine_python or sys.executable,
        log_dir,
        start_timeout,
    )
    record = run_canary(request)
    document = record.to_json()
    if out is not None:
        out.write_text(render_json(document), encoding="utf-8")
        print(f"ptqv canary: record written to {out}", file=sys.stderr)
    sys.stdout.write(render_json(document) if json_output else render_canary(record))
    raise typer.Exit(record.exit_code)


def register(app: typer.Typer) -> None:
    """Add the canary command to ``app``."""
    app.command("canary", epilog=CANARY_EPILOG)(canary)
