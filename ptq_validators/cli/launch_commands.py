"""`ptqv render`, `ptqv launch` and `ptqv jobs`: job files from a spec, local runs, job records.

Heavy imports (jinja2, pydantic) stay inside the command bodies so `ptqv --help` stays fast.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from ptq_validators.cli.epilogs import epilog
from ptq_validators.cli.options import ACCEPT_NEW_OPTION, CLUSTERS_OPTION
from ptq_validators.errors import UsageError
from ptq_validators.launch.kinds import KINDS_HELP
from ptq_validators.launch.workspace import default_root as _default_root

RENDER_EPILOG = epilog(
    "ptqv render slurm --spec job.yaml --partition batch --lint",
    "ptqv render direct --model ./Qwen3-8B --qformat nvfp4 --modelopt-repo ~/mo",
    "ptqv render llmcompressor --model ./Qwen3-8B --scheme W4A16",
    note="qformat, recipe, scheme and kv_cache_qformat are checked against the names the gate "
    "and hf_ptq.py accept (case-insensitive; a typo fails here with the closest names). "
    "Re-rendering into a workspace removes the scripts an earlier render of another kind left.",
)
LAUNCH_EPILOG = epilog(
    "ptqv launch workspaces/s1/Qwen3-8B-fp8 --local --dry-run",
    "ptqv launch workspaces/s1/Qwen3-8B-fp8 --local --yes",
    "ptqv launch --spec job.yaml --kind slurm --cluster dgx --yes --json",
)


def _note(message: str) -> None:
    print(f"ptqv: {message}", file=sys.stderr)


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _overrides(**flags: Any) -> dict[str, Any]:
    """Spec keys from the command-line flags that were given."""
    data = {k: v for k, v in flags.items() if v not in (None, [], ())}
    if "env" in data:
        pairs = {}
        for item in data["env"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--env {item!r} is not KEY=VALUE")
            pairs[key] = value
        data["env"] = pairs
    if "quantizer_command" in data:
        data["quantizer_command"] = shlex.split(data["quantizer_command"])
    return data


def _check_presets(overrides: dict[str, Any]) -> None:
    """The preset flags, checked with the gate's data and messages (usage errors, exit 2); the
    same names in a spec file are checked by the spec (input errors naming the file)."""
    from ptq_validators import presets

    checks = {
        "qformat": presets.hf_ptq_qformat,
        "recipe": presets.modelopt_recipe,
        "scheme": presets.gate_scheme,
    }
    for key, check in checks.items():
        if key in overrides:
            overrides[key] = check(overrides[key], flag=f"--{key}")


def _rendered_files(manifest: Path) -> list[Path]:
    """The files an earlier render listed in ``manifest`` (none when there is no readable one)."""
    try:
        files = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [Path(f) for f in files if isinstance(f, str)]


def _remove_stale(earlier: list[Path], scripts: Path, kept: list[Path]) -> list[Path]:
    """Delete what an earlier render into this workspace wrote and the new one did not (another
    kind's scripts), so ``ptqv launch`` cannot pick them up. Files no render wrote stay."""
    stale = [path for path in earlier if path not in kept and path.parent == scripts]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _render(
    kind: str,
    spec_path: Path | None,
    overrides: dict[str, Any],
    out: Path | None,
    session: str | None,
    lint: bool,
    remote_root: str | None = None,
) -> tuple[Any, list[Any]]:
    """Render (and lint) a job; with ``remote_root`` (a cluster's workspace) the files are
    written under the local root but hold the cluster's paths."""
    from ptq_validators.errors import TemplateError
    from ptq_validators.launch.kinds import KINDS
    from ptq_validators.launch.lint import lint_files, shellcheck_available
    from ptq_validators.launch.render import MANIFEST, render_job, variant_for
    from ptq_validators.launch.spec import load_spec
    from ptq_validators.launch.workspace import session_id, workspace_for

    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}", hint=f"use one of: {KINDS_HELP}")
    if spec_path is None and "model" not in overrides:
        raise UsageError("give --spec job.yaml or at least --model and --qformat/--recipe/--scheme")
    _check_presets(overrides)
    spec = load_spec(spec_path, overrides)
    root = out or _default_root()
    session = session or session_id(root)
    ws = workspace_for(root, session, variant_for(spec, kind))
    earlier = _rendered_files(ws.path / MANIFEST)
    if remote_root is None:
        job = render_job(spec, kind, ws)
    else:
        job = render_job(
            spec, kind, workspace_for(Path(remote_root), session, variant_for(spec, kind)), into=ws.path
        )
    for path in _remove_stale(earlier, ws.scripts, job.files):
        _note(f"removed {path.name}: an earlier render wrote it into {ws.scripts}, this one does not")
    findings = []
    if lint:
        if not shellcheck_available():
            _note(
                "shellcheck is not installed: only `bash -n` checked the scripts (apt-get install shellcheck)"
            )
        findings = lint_files(job.files)
        for finding in findings:
            _note(str(finding))
        if findings:
            raise TemplateError(
                f"{len(findings)} lint finding(s) in {ws.scripts}",
                hint="the findings are listed above; a template bug: report it with the spec",
            )
    return job, findings


def render(
    kind: str = typer.Argument(..., help=f"Kind of job: {KINDS_HELP}."),
    spec: Path | None = typer.Option(None, "--spec", help="Job spec YAML; flags override its keys."),
    model: str | None = typer.Option(None, help="HF model id or local checkpoint directory."),
    qformat: str | None = typer.Option(None, help="ModelOpt --qformat (e.g. fp8, nvfp4_mlp_only)."),
    recipe: str | None = typer.Option(None, help="ModelOpt recipe name or path (instead of --qformat)."),
    scheme: str | None = typer.Option(None, help="llm-compressor scheme (e.g. FP8_DYNAMIC, W4A16)."),
    calib_size: int | None = typer.Option(None, help="Calibration samples of the full run [512]."),
    dataset: str | None = typer.Option(None, help="Calibration dataset."),
    output: str | None = typer.Option(None, help="Export directory [<workspace>/output/checkpoint]."),
    gpus: int | None = typer.Option(None, help="GPUs per node [1]."),
    nodes: int | None = typer.Option(None, help="Nodes [1]; more than 1 renders multi-node FSDP2 (slurm)."),
    partition: str | None = typer.Option(None, help="SLURM partition."),
    account: str | None = typer.Option(None, help="SLURM account."),
    time: str | None = typer.Option(None, help="Time limit of the full run [04:00:00]."),
    container: str | None = typer.Option(None, help="Container image (.sqsh or registry URI)."),
    mount: list[str] | None = typer.Option(None, help="Container mount SRC:DST[:ro]; repeatable."),
    extra_pip: list[str] | None = typer.Option(None, help="Requirement to pip install first; repeatable."),
    hf_cache: str | None = typer.Option(None, help="HF cache directory (HF_HOME)."),
    env: list[str] | None = typer.Option(None, help="KEY=VALUE to export (no secrets); repeatable."),
    pass_env: list[str] | None = typer.Option(
        None, help="Variable passed through by name [HF_TOKEN]; repeatable."
    ),
    modelopt_repo: str | None = typer.Option(
        None, help="Model-Optimizer checkout (hf_ptq.py, tools/launcher)."
    ),
    stand_in: str | None = typer.Option(
        None,
        help="Stand-in program that replaces the quantizer program (its arguments are kept), "
        "e.g. 'python3 fake_ptq.py'; for tests and rehearsals.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Workspaces root [$PTQV_WORKSPACES or ./workspaces]."
    ),
    session: str | None = typer.Option(
        None, help="Session id [from the agent's environment, else generated]."
    ),
    lint: bool = typer.Option(False, "--lint", help="Lint the files: bash -n, shellcheck, YAML schemas."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of one path per line."),
) -> None:
    """Render a job's files into its workspace and print their paths.

    The workspace is <out>/<session-id>/<model-variant>/{scripts,logs,output}. Every value that
    reaches a shell line is quoted by ptqv; a smoke run (calib 4) comes before the full run.
    """
    overrides = _overrides(
        model=model,
        qformat=qformat,
        recipe=recipe,
        scheme=scheme,
        calib_size=calib_size,
        dataset=dataset,
        output=output,
        gpus=gpus,
        nodes=nodes,
        partition=partition,
        account=account,
        time=time,
        container=container,
        mounts=mount,
        extra_pip=extra_pip,
        hf_cache=hf_cache,
        env=env,
        env_passthrough=pass_env,
        modelopt_repo=modelopt_repo,
        quantizer_command=stand_in,
    )
    job, findings = _render(kind, spec, overrides, out, session, lint)
    if json_out:
        _emit_json(
            {
                "schema_version": 1,
                "kind": job.kind,
                "workspace": str(job.workspace.path),
                "manifest": str(job.manifest),
                "files": [str(f) for f in job.files],
                "linted": lint,
                "lint_findings": [str(f) for f in findings],
            }
        )
    else:
        for path in job.files:
            typer.echo(str(path))
        _note(f"launch it with: ptqv launch {shlex.quote(str(job.workspace.path))} --local --dry-run")


def launch(
    path: Path | None = typer.Argument(None, help="A rendered job directory (holds render.json)."),
    spec: Path | None = typer.Option(None, "--spec", help="Render this spec first (needs --kind)."),
    kind: str | None = typer.Option(None, help=f"Kind to render with --spec: {KINDS_HELP}."),
    out: Path | None = typer.Option(None, "--out", help="Workspaces root for --spec [./workspaces]."),
    local: bool = typer.Option(False, "--local", help="Run on this machine."),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Run on this cluster from clusters.yaml (renders --spec for its workspace)."
    ),
    clusters: Path | None = CLUSTERS_OPTION,
    accept_new_host_key: bool = ACCEPT_NEW_OPTION,
    yes: bool = typer.Option(False, "--yes", help="Really run it (nothing runs without it)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print exactly what would run, run nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run a rendered job here (--local) or on a cluster (--cluster) and record it in jobs.json.

    slurm jobs go to sbatch (smoke first, the full run with --dependency=afterok); docker jobs
    run `docker run` (--gpus where a GPU runtime exists); the others run their rendered script
    as a detached process logging to logs/<job-id>.log. With --cluster, --spec is rendered for
    <workspace>/<session>/<variant> on the cluster (the cluster's default partition, account and
    container fill what the spec leaves out), uploaded there unchanged, and submitted over SSH;
    the record (host, user, cluster, remote paths) stays in the local workspaces root.

    """
    from ptq_validators.launch.execute import execute, plan_launch
    from ptq_validators.launch.jobs import JobRecord, new_job_id
    from ptq_validators.launch.runner import LocalRunner, Runner

    if local == (cluster is not None):
        raise UsageError("say where: --local (this machine) or --cluster NAME", hint="add one of them")
    if (path is None) == (spec is None):
        raise UsageError("give a rendered job directory or --spec (with --kind), not both")
    if cluster is not None and spec is None:
        raise UsageError(
            "--cluster renders the job for the cluster's workspace: give --spec and --kind",
            hint="a directory rendered here holds this machine's paths",
        )
    runner: Runner = LocalRunner()
    record = None
    if spec is not None:
        if kind is None:
            raise UsageError("--spec needs --kind", hint=f"--kind is one of {KINDS_HELP}")
        overrides: dict[str, Any] = {}
        remote_root = None
        if cluster is not None:
            from ptq_validators.cli.remote_commands import open_cluster
            from ptq_validators.remote.upload import cluster_defaults

            target, runner = open_cluster(cluster, clusters, accept_new_host_key)
            overrides = cluster_defaults(target, spec)
            remote_root = target.workspace
            if remote_root is None:
                raise UsageError(
                    f"cluster {target.name} in {target.source} has no workspace", hint="set workspace:"
                )
        job, _ = _render(kind, spec, overrides, out, None, lint=False, remote_root=remote_root)
        job_dir = job.workspace.path
        _note(f"rendered into {job_dir}")
        if cluster is not None:
            from ptq_validators.remote.upload import upload_job

            if not dry_run:
                remote_ws = upload_job(runner, job)
                _note(f"uploaded to {runner.host}:{remote_ws.path}")
            record = JobRecord("", kind, "", "", "", cluster=target.name, user=getattr(runner, "user", None))
            record.cluster_config, record.record_dir = target.source, str(job_dir)
    else:
        assert path is not None  # checked above: exactly one is given
        job_dir = path
    plan = plan_launch(job_dir, runner, new_job_id(), remote=cluster is not None)
    if dry_run:
        if json_out:
            _emit_json({"schema_version": 1, "dry_run": True, **plan.as_json()})
        else:
            for line in plan.commands():
                typer.echo(line)
        return
    if not yes:
        for line in plan.commands():
            _note(f"would run: {line}")
        raise UsageError(
            "ptqv launch runs nothing without --yes",
            hint="add --yes to run it, or --dry-run to print exactly what would run",
        )
    if record is not None:
        record.id, record.mode, record.workspace = plan.job_id, plan.mode, str(plan.workspace)
    record = execute(plan, runner, record)
    if json_out:
        _emit_json(
            {
                "schema_version": 1,
                "dry_run": False,
                **plan.as_json(),
                "status": record.status,
                "host": record.host,
                "cluster": record.cluster,
                "record_dir": record.record_dir,
                "slurm_ids": {s.name: s.slurm_id for s in record.steps if s.slurm_id},
            }
        )
    else:
        typer.echo(record.id)
        root = shlex.quote(str(Path(record.record_dir).parents[1]))
        _note(f"follow it with: ptqv jobs wait {record.id} --root {root}")


jobs_app = typer.Typer(
    help="Launched jobs, local or on a cluster: list, status, logs, cancel, wait.",
    epilog=epilog(
        "ptqv jobs list", "ptqv jobs wait JOB_ID --timeout 3600", "ptqv jobs logs JOB_ID --tail 50"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
ROOT_OPTION = typer.Option(None, "--root", help="Workspaces root or one workspace [./workspaces].")


def _record_json(record: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(record)


def _runner_for(record: Any, clusters: Path | None) -> Any:
    """The runner where ``record`` runs: this machine, or its cluster (found again by name, in
    ``--clusters``, the normal lookup, or the file it was launched from)."""
    from ptq_validators.launch.runner import LocalRunner

    if not record.cluster:
        return LocalRunner()
    from ptq_validators.remote.config import find_file, load_file, select
    from ptq_validators.remote.connect import connect

    path = find_file(clusters)
    if path is None or record.cluster not in load_file(path).clusters:
        saved = Path(record.cluster_config) if record.cluster_config else None
        path = saved if saved is not None and saved.is_file() else path
    if path is None:
        raise UsageError(
            f"job {record.id} ran on cluster {record.cluster}: no clusters.yaml found",
            hint="pass --clusters FILE",
        )
    return connect(select(load_file(path), record.cluster))


def _refreshed(record: Any, clusters: Path | None) -> Any:
    """``record`` with fresh states; an unreachable cluster prints the last known ones and exits 4."""
    from ptq_validators.errors import RemoteError
    from ptq_validators.launch.jobs import refresh

    try:
        return refresh(_runner_for(record, clusters), record)
    except RemoteError:
        _note(
            f"{record.id}: last known status {record.status}, unknown since {record.unknown_since} "
            f"({record.failed_polls} failed poll(s) in a row)"
        )
        raise


@jobs_app.command("list", epilog=epilog("ptqv jobs list --json"))
def jobs_list(
    root: Path | None = ROOT_OPTION,
    clusters: Path | None = CLUSTERS_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the launched jobs under the root, with their current status (a job on a cluster that
    cannot be reached is listed with its last known status and `unknown_since`; exit 4 at the end)."""
    from ptq_validators.errors import RemoteError
    from ptq_validators.launch.jobs import all_records

    records, unreachable = [], 0
    for record in all_records(root or _default_root()):
        try:
            records.append(_refreshed(record, clusters))
        except RemoteError as exc:
            _note(f"{record.id}: {exc}")
            records.append(record)
            unreachable += 1
    if json_out:
        _emit_json({"schema_version": 1, "jobs": [_record_json(r) for r in records]})
        if unreachable:
            raise typer.Exit(4)
        return
    if not records:
        _note(f"no jobs under {root or _default_root()}")
        return
    typer.echo("\t".join(("JOB", "STATUS", "KIND", "MODE", "HOST", "SUBMITTED", "WORKSPACE")))
    for r in records:
        where = f"{r.cluster}:{r.host}" if r.cluster else r.host
        typer.echo(f"{r.id}\t{r.status}\t{r.kind}\t{r.mode}\t{where}\t{r.submitted}\t{r.workspace}")
    if unreachable:
        raise typer.Exit(4)


@jobs_app.command("status", epilog=epilog("ptqv jobs status j20260822-101500-ab12 --json"))
def jobs_status(
    job_id: str = typer.Argument(..., help="Job id from `ptqv launch` or `jobs list`."),
    root: Path | None = ROOT_OPTION,
    clusters: Path | None = CLUSTERS_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a job's status and the state of each step (process or SLURM job).

    A SLURM step's own result file (written by its EXIT trap) wins over sacct and squeue."""
    from ptq_validators.launch.jobs import find_record

    record = _refreshed(find_record(root or _default_root(), job_id), clusters)
    if json_out:
        _emit_json({"schema_version": 1, **_record_json(record)})
        return
    typer.echo(f"{record.id}\t{record.status}")
    for step in record.steps:
        ident = f"slurm {step.slurm_id}" if step.slurm_id else f"pid {step.pid}"
        code = "" if step.exit_code is None else f"\texit {step.exit_code}"
        typer.echo(f"  {step.name}\t{ident}\t{step.state}{code}\t{step.log}")


@jobs_app.command("logs", epilog=epilog("ptqv jobs logs j20260822-101500-ab12 --step smoke --tail 50"))
def jobs_logs(
    job_id: str = typer.Argument(..., help="Job id."),
    root: Path | None = ROOT_OPTION,
    clusters: Path | None = CLUSTERS_OPTION,
    step: str | None = typer.Option(None, help="Only this step (e.g. smoke, full)."),
    tail: int | None = typer.Option(None, help="Only the last N lines of each log."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON: each step's path and lines."),
) -> None:
    """Print a job's logs (each step's log, headed by its name on stderr); over SFTP for a
    cluster job."""
    from ptq_validators.launch.jobs import find_record, read_log

    record = find_record(root or _default_root(), job_id)
    runner = _runner_for(record, clusters)
    logs = [
        {"step": s.name, "path": s.log, "lines": read_log(runner, s, tail)}
        for s in record.steps
        if not step or s.name == step
    ]
    if json_out:
        _emit_json({"schema_version": 1, "job_id": job_id, "host": record.host, "logs": logs})
        return
    for log in logs:
        _note(f"== {log['step']}: {log['path']}")
        if log["lines"] is None:
            _note("(no log yet)")
            continue
        for line in log["lines"]:
            typer.echo(line)


@jobs_app.command("cancel", epilog=epilog("ptqv jobs cancel j20260822-101500-ab12 --yes"))
def jobs_cancel(
    job_id: str = typer.Argument(..., help="Job id."),
    root: Path | None = ROOT_OPTION,
    clusters: Path | None = CLUSTERS_OPTION,
    yes: bool = typer.Option(False, "--yes", help="Really cancel it."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cancel a running job: scancel its SLURM jobs, or SIGTERM its process group."""
    from ptq_validators.launch.jobs import cancel, find_record

    record = find_record(root or _default_root(), job_id)
    if not yes:
        raise UsageError(f"cancelling {job_id} needs --yes", hint="add --yes")
    record = cancel(_runner_for(record, clusters), record)
    if json_out:
        _emit_json({"schema_version": 1, **_record_json(record)})
    else:
        typer.echo(f"{record.id}\t{record.status}")


@jobs_app.command(
    "wait",
    epilog=epilog(
        "ptqv jobs wait j20260822-101500-ab12 --timeout 3600",
        note="The wait exits with the job's outcome: 0 succeeded, 1 failed, cancelled or lost, "
        "4 unreachable (--max-failures polls in a row failed), 124 timed out.",
    ),
)
def jobs_wait(
    job_id: str = typer.Argument(..., help="Job id."),
    root: Path | None = ROOT_OPTION,
    clusters: Path | None = CLUSTERS_OPTION,
    timeout: float | None = typer.Option(None, help="Give up after S seconds (exit 124) [wait forever]."),
    max_failures: int = typer.Option(5, help="Polls in a row that may fail before exit 4."),
    max_interval: float = typer.Option(
        30, help="Longest pause between polls, in seconds (they back off from 1 s)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the final record as JSON."),
) -> None:
    """Wait for a job to end, printing only state changes; exit with its outcome."""
    from ptq_validators.launch.jobs import find_record
    from ptq_validators.launch.wait import wait

    record = find_record(root or _default_root(), job_id)
    runner = _runner_for(record, clusters)
    code = wait(
        runner, record, timeout=timeout, max_failures=max_failures, report=_note if json_out else typer.echo
    )
    if json_out:
        from ptq_validators.launch.jobs import find_record as again

        _emit_json(
            {"schema_version": 1, "exit_code": code, **_record_json(again(root or _default_root(), job_id))}
        )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add render, launch and the jobs group to ``app``."""
    app.command("render", epilog=RENDER_EPILOG)(render)
    app.command("launch", epilog=LAUNCH_EPILOG)(launch)
    app.add_typer(jobs_app, name="jobs")
