"""What ``ptqv launch --local`` runs for a rendered job, and running it.

In: a rendered job directory (its ``render.json``). Out: a ``LaunchPlan`` (the exact argv of
every step, printable for ``--dry-run``) and, when executed, a ``JobRecord`` saved in the
workspace. Modes by kind: slurm → ``sbatch`` per phase chained with ``--dependency=afterok``;
docker → ``docker run`` (``--gpus`` only where a GPU runtime exists); the other kinds → their
rendered entry script as a detached bare process with its log in ``logs/``.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptq_validators.errors import InputError, RemoteError
from ptq_validators.launch import slurm
from ptq_validators.launch.jobs import JobRecord, Step, save_record
from ptq_validators.launch.kinds import ENTRY_SCRIPT, launch_mode
from ptq_validators.launch.render import MANIFEST, docker_argv
from ptq_validators.launch.runner import Runner
from ptq_validators.launch.spec import build_spec
from ptq_validators.launch.workspace import Workspace


@dataclass
class PlannedStep:
    name: str
    argv: list[str]
    cwd: Path
    log: Path | None  # None for SLURM steps: the #SBATCH --output line decides


@dataclass
class LaunchPlan:
    job_id: str
    kind: str
    mode: str
    workspace: Path
    steps: list[PlannedStep] = field(default_factory=list)
    slurm_job_names: dict[str, str] = field(default_factory=dict)

    def commands(self) -> list[str]:
        """The exact command lines, in order (a later SLURM step names its dependency symbolically)."""
        lines = []
        for step in self.steps:
            line = f"cd {shlex.quote(str(step.cwd))} && {shlex.join(step.argv)}"
            lines.append(line + (f" >{shlex.quote(str(step.log))} 2>&1" if step.log else ""))
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "mode": self.mode,
            "workspace": str(self.workspace),
            "steps": [
                {"name": s.name, "argv": s.argv, "cwd": str(s.cwd), "log": str(s.log) if s.log else None}
                for s in self.steps
            ],
            "commands": self.commands(),
        }


def read_manifest(job_dir: Path, *, remote: bool = False) -> dict[str, Any]:
    path = job_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise InputError(
            f"{job_dir}: no {MANIFEST}; not a rendered job directory",
            hint="render it first: ptqv render KIND --spec job.yaml",
        ) from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})", hint="re-render the job") from None
    if not remote and Path(data.get("workspace", "")).resolve() != job_dir.resolve():
        raise InputError(
            f"{path}: rendered for {data.get('workspace')}, found in {job_dir}",
            hint="the scripts hold absolute paths: re-render the job where it is",
        )
    return data


def gpu_runtime(runner: Runner) -> bool:
    """True when the Docker engine has the NVIDIA runtime (so ``--gpus`` works)."""
    done = runner.run(["docker", "info", "--format", "{{json .Runtimes}}"], timeout=30)
    return done.returncode == 0 and "nvidia" in done.stdout


def plan_launch(job_dir: Path, runner: Runner, job_id: str, *, remote: bool = False) -> LaunchPlan:
    """The plan for the job rendered in ``job_dir``; ``remote``: its paths are on the runner's
    side (a cluster workspace), not ``job_dir`` itself."""
    manifest = read_manifest(job_dir, remote=remote)
    kind = manifest["kind"]
    ws = Workspace(Path(manifest["workspace"]))
    log = ws.logs / f"{job_id}.log"
    if launch_mode(kind) == "slurm":
        plan = LaunchPlan(job_id, kind, "slurm", ws.path, slurm_job_names=manifest["slurm_job_names"])
        previous = None
        for phase in manifest["slurm_job_names"]:
            after = f"<{previous} job id>" if previous else None
            plan.steps.append(
                PlannedStep(phase, slurm.sbatch_argv(ws.scripts / f"{phase}.sbatch", after), ws.path, None)
            )
            previous = phase
        return plan
    if launch_mode(kind) == "docker":
        spec = build_spec(manifest["spec"], str(job_dir / MANIFEST))
        argv = docker_argv(spec, ws, gpus=gpu_runtime(runner), name=f"ptqv-{job_id}")
        return LaunchPlan(job_id, kind, "docker", ws.path, [PlannedStep("job", argv, ws.path, log)])
    script = ws.scripts / ENTRY_SCRIPT[kind]
    return LaunchPlan(
        job_id, kind, "bare", ws.path, [PlannedStep("job", ["bash", str(script)], ws.path, log)]
    )


def execute(plan: LaunchPlan, runner: Runner, record: JobRecord | None = None) -> JobRecord:
    """Run ``plan`` on ``runner`` and save its record (also when a later SLURM submission fails).
    ``record`` carries what the caller knows beyond the plan (the cluster, the local record dir)."""
    record = record or JobRecord(plan.job_id, plan.kind, plan.mode, str(plan.workspace), "")
    record.submitted = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record.host = runner.host
    if plan.mode == "docker" and runner.run(["docker", "info"], timeout=60).returncode:
        raise RemoteError(
            f"the Docker engine on {runner.host} is not reachable (`docker info` failed)",
            hint="start dockerd or set DOCKER_HOST",
        )
    try:
        previous = None
        for step in plan.steps:
            if plan.mode == "slurm":
                script = Path(step.argv[-1])
                job = slurm.submit(runner, script, cwd=step.cwd, after_ok=previous)
                name = plan.slurm_job_names[step.name]
                logs = Workspace(plan.workspace).logs
                record.steps.append(
                    Step(
                        step.name,
                        slurm.sbatch_argv(script, previous),
                        str(slurm.log_file(logs, name, job)),
                        rc_file=str(slurm.result_file(logs, name, job)),
                        slurm_id=job,
                        state="PENDING",
                    )
                )
                previous = job
            else:
                log = step.log or plan.workspace / "logs" / f"{plan.job_id}.log"
                rc_file = log.with_suffix(".rc")
                spawned = runner.spawn(step.argv, cwd=step.cwd, log=log, rc_file=rc_file)
                record.steps.append(
                    Step(
                        step.name,
                        step.argv,
                        str(log),
                        pid=spawned.pid,
                        start_time=spawned.start_time,
                        rc_file=str(rc_file),
                        state="RUNNING",
                    )
                )
    finally:
        if record.steps:
            record.status = "running"
            save_record(record)
    return record
