"""``ptqv env``: what this machine offers for a PTQ run, and where the run should happen.

Probes GPUs (nvidia-smi), SLURM (sbatch/srun/sinfo, partitions, GPU GRES, pyxis), Docker and
its NVIDIA runtime, enroot, a ModelOpt source checkout and its launcher, the installed versions
of the quantization stack (package metadata only: nothing is imported), PIP_CONSTRAINT, whether
HF_TOKEN is set (never its value), free disk, and ModelOpt ``clusters.yaml`` files. A missing
tool is an answer ("none found"), never an error. External tools run as argv lists with a
timeout on a ``Runner`` (this machine, or a cluster's login node over SSH); locally everything
is read from the ``environ`` passed in, so tests can substitute PATH.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptq_validators.checks.base import Finding
from ptq_validators.launch.runner import CommandTimeout, Completed, LocalRunner, Runner
from ptq_validators.preflight.gpus import GpuSpec, arch_name, cc_tuple, match_gpu
from ptq_validators.preflight.recommend import recommend

TOOL_TIMEOUT_S = 5  # a probe answers in well under a second; a hung controller must not stall env
PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "nvidia-modelopt",
    "llmcompressor",
    "compressed-tensors",
    "vllm",
    "tensorrt_llm",
)
HF_PTQ = Path("examples/hf_ptq/hf_ptq.py")
LAUNCHER = Path("tools/launcher/launch.py")


def probe(runner: Runner, argv: list[str]) -> Completed | None:
    """Run a probe tool on ``runner`` with the probe timeout; None when it is not installed there.
    A tool that hangs past the timeout is an answer too (exit 124 with the runner's message): the
    report names it instead of failing the whole probe."""
    if runner.which(argv[0]) is None:
        return None
    try:
        return runner.run(argv, timeout=TOOL_TIMEOUT_S)
    except CommandTimeout as exc:
        return Completed(124, "", str(exc))


def detect_gpus(runner: Runner) -> tuple[list[dict[str, Any]], str | None]:
    """The runner's GPUs from nvidia-smi, and a note when there are none (or nvidia-smi failed)."""
    query = ["nvidia-smi", "--query-gpu=index,name,memory.total,compute_cap", "--format=csv,noheader,nounits"]
    result = probe(runner, query)
    if result is None:
        return [], f"nvidia-smi not found on PATH: no NVIDIA GPU on {runner.host}"
    if result.returncode != 0 and "compute_cap" in (result.stdout + result.stderr):
        # Drivers before ~510 do not know the compute_cap field; take it from the name table.
        result = probe(runner, [query[0], "--query-gpu=index,name,memory.total", query[2]]) or result
    code, out, err = result.returncode, result.stdout, result.stderr
    if code != 0:
        return [], f"nvidia-smi failed (exit {code}): {(err or out).strip()[:200]}"
    gpus = [_gpu_row(line) for line in out.splitlines() if line.strip()]
    return gpus, None if gpus else "nvidia-smi lists no GPU"


def _gpu_row(line: str) -> dict[str, Any]:
    fields = [field.strip() for field in line.split(",")]
    index, name, memory_mib = fields[0], fields[1], fields[2]
    cc = fields[3] if len(fields) > 3 and fields[3] not in ("", "[N/A]") else None
    if cc is None:
        known = match_gpu(name)
        cc = known.cc if known else None
    memory = float(memory_mib) if memory_mib.replace(".", "", 1).isdigit() else None
    return {
        "index": int(index) if index.isdigit() else index,
        "name": name,
        "memory_mib": memory,
        "compute_capability": cc,
        "arch": arch_name(cc) if cc else None,
    }


def calibration_gpu(gpus: list[dict[str, Any]]) -> GpuSpec | None:
    """The weakest local GPU (mixed nodes: the minimum decides) as a ``GpuSpec``."""
    usable = [g for g in gpus if g["compute_capability"]]
    if not usable:
        return None
    weakest = min(usable, key=lambda g: (cc_tuple(g["compute_capability"]), g["memory_mib"] or 0))
    memory_gib = round((weakest["memory_mib"] or 0) / 1024, 1)
    return GpuSpec(weakest["name"], weakest["compute_capability"], memory_gib, weakest["arch"])


def detect_slurm(runner: Runner) -> dict[str, Any]:
    """SLURM client commands, partitions with their GPU GRES, and whether pyxis is loaded."""
    commands = {tool: runner.which(tool) for tool in ("sbatch", "srun", "sinfo", "squeue", "sacct")}
    info: dict[str, Any] = {
        "available": commands["sbatch"] is not None,
        "commands": commands,
        "partitions": [],
        "pyxis": None,
        "error": None,
    }
    result = probe(runner, ["sinfo", "--noheader", "--format=%P|%a|%l|%D|%G"])
    if result is not None:
        code, out, err = result.returncode, result.stdout, result.stderr
        if code == 0:
            info["partitions"] = [_partition_row(line) for line in out.splitlines() if line.strip()]
        else:
            info["error"] = f"sinfo failed (exit {code}): {(err or out).strip()[:200]}"
    srun_help = probe(runner, ["srun", "--help"])
    if srun_help is not None:
        # pyxis adds --container-image to srun; without it #SBATCH container flags are ignored.
        info["pyxis"] = "--container-image" in srun_help.stdout + srun_help.stderr
    return info


def _partition_row(line: str) -> dict[str, Any]:
    name, avail, timelimit, nodes, gres = (line.split("|") + [""] * 5)[:5]
    gpu_gres = [g for g in gres.split(",") if g.startswith("gpu")]
    return {
        "name": name.rstrip("*"),
        "default": name.endswith("*"),
        "state": avail,
        "timelimit": timelimit,
        "nodes": int(nodes) if nodes.isdigit() else nodes,
        "gpu_gres": gpu_gres,
    }


def detect_containers(runner: Runner) -> dict[str, Any]:
    """Docker (client, daemon reachable, NVIDIA runtime) and enroot."""
    docker: dict[str, Any] = {
        "path": runner.which("docker"),
        "daemon": False,
        "gpu_runtime": False,
        "error": None,
    }
    if docker["path"]:
        result = probe(runner, ["docker", "info", "--format", "{{json .Runtimes}}"])
        assert result is not None  # docker is on PATH
        code, out, err = result.returncode, result.stdout, result.stderr
        docker["daemon"] = code == 0 and out.strip() not in ("", "null")
        if docker["daemon"]:
            docker["gpu_runtime"] = "nvidia" in out
        elif (err or out).strip():
            docker["error"] = (err or out).strip().splitlines()[-1][:200]
    if not docker["gpu_runtime"] and runner.which("nvidia-container-cli"):
        docker["gpu_runtime"] = docker["daemon"]
    return {"docker": docker, "enroot": runner.which("enroot")}


def find_modelopt_checkout(environ: Mapping[str, str], cwd: Path, home: Path) -> dict[str, Any]:
    """A ModelOpt source checkout (``examples/hf_ptq/hf_ptq.py``) and its launcher, if any.

    Looks at ``$MODELOPT_DIR``, then the current directory and its parents, then
    ``./Model-Optimizer`` and ``~/Model-Optimizer``.
    """
    candidates = [Path(environ["MODELOPT_DIR"])] if environ.get("MODELOPT_DIR") else []
    candidates += [cwd, *cwd.parents, cwd / "Model-Optimizer", home / "Model-Optimizer"]
    for root in candidates:
        if (root / HF_PTQ).is_file():
            launcher = root / LAUNCHER
            return {
                "path": str(root),
                "hf_ptq": str(root / HF_PTQ),
                "launcher": str(launcher) if launcher.is_file() else None,
            }
    return {"path": None, "hf_ptq": None, "launcher": None}


def installed_versions() -> dict[str, str | None]:
    """Installed versions of the quantization stack, from package metadata (no imports)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def find_cluster_configs(
    cwd: Path, home: Path, environ: Mapping[str, str] = os.environ
) -> list[dict[str, Any]]:
    """The ``clusters.yaml`` files in ``ptq_validators.remote.config``'s lookup order (the first
    one found is the one commands use), each with its clusters or the reason it is invalid."""
    from ptq_validators.errors import InputError
    from ptq_validators.remote.config import candidate_paths, find_file, load_file

    paths = list(dict.fromkeys(candidate_paths(cwd, home)))
    try:
        chosen = find_file(environ=environ, cwd=cwd, home=home)
    except InputError as exc:
        return [{"path": None, "clusters": [], "default_cluster": None, "error": exc.message}]
    if chosen is not None and chosen not in paths:
        paths.insert(0, chosen)
    found: list[dict[str, Any]] = []
    for path in (p for p in paths if p.is_file()):
        entry: dict[str, Any] = {"path": str(path), "clusters": [], "default_cluster": None, "error": None}
        try:
            parsed = load_file(path)
        except InputError as exc:
            entry["error"] = exc.message
        else:
            entry["default_cluster"] = parsed.default_cluster
            entry["clusters"] = [
                {"name": c.name, "login_node": c.login_node, "gpu_type": c.gpu_type, "env_type": c.env_type}
                for c in parsed.clusters.values()
            ]
        found.append(entry)
    return found


def run_mode(
    gpus: list[dict[str, Any]], slurm: dict[str, Any], clusters: list[dict[str, Any]]
) -> dict[str, str]:
    """Where the PTQ job should run: ``local``, ``slurm``, ``remote`` or ``none``."""
    names = [c["name"] for f in clusters for c in f["clusters"]]
    if gpus:
        return {
            "mode": "local",
            "reason": f"{len(gpus)} local GPU(s): run hf_ptq.py here (or in Docker with the NVIDIA runtime)",
        }
    if slurm["available"] and not slurm["error"]:  # sinfo answered: the controller is up
        return {
            "mode": "slurm",
            "reason": "no local GPU but sbatch is available: submit a SLURM job from this node",
        }
    if names:
        return {
            "mode": "remote",
            "reason": "no local GPU or SLURM; clusters configured: "
            f"{', '.join(names)} (run remotely on one of them)",
        }
    if slurm["available"]:
        return {
            "mode": "none",
            "reason": f"sbatch is installed but the SLURM controller did not answer ({slurm['error']}): "
            "fix the cluster or run on a GPU machine",
        }
    return {
        "mode": "none",
        "reason": "no local GPU, no SLURM and no clusters.yaml: run on a "
        "GPU machine or add a cluster to "
        "~/.config/modelopt/clusters.yaml",
    }


def detect_env(
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
    gpu: GpuSpec | None = None,
    deploy_gpu: GpuSpec | None = None,
) -> dict[str, Any]:
    """The full environment report (JSON-ready). Arguments default to this process's.

    ``gpu`` replaces the detected GPUs as the calibration GPU of the recommendation (to plan
    for a cluster from a login node); ``deploy_gpu`` is the serving GPU.
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    home = Path(environ.get("HOME", str(Path.home()))) if home is None else home
    runner = LocalRunner(environ)

    gpus, gpu_note = detect_gpus(runner)
    slurm = detect_slurm(runner)
    containers = detect_containers(runner)
    clusters = find_cluster_configs(cwd, home, environ)
    disk = shutil.disk_usage(cwd)
    findings = _findings(environ, gpu_note, slurm, containers, clusters)
    return {
        "schema_version": 1,
        "kind": "ptqv-env",
        "gpus": gpus,
        "gpu_note": gpu_note,
        "slurm": slurm,
        **containers,
        "modelopt_checkout": find_modelopt_checkout(environ, cwd, home),
        "packages": installed_versions(),
        "pip_constraint": environ.get("PIP_CONSTRAINT") or None,
        "hf_token_set": bool(environ.get("HF_TOKEN") or environ.get("HUGGING_FACE_HUB_TOKEN")),
        "disk": {"path": str(cwd), "free_gib": round(disk.free / 2**30, 1)},
        "cluster_configs": clusters,
        "run_mode": run_mode(gpus, slurm, clusters),
        "recommendation": recommend(gpu or calibration_gpu(gpus), deploy_gpu),
        "findings": [f.to_json() for f in findings],
    }


def _findings(
    environ: Mapping[str, str],
    gpu_note: str | None,
    slurm: dict[str, Any],
    containers: dict[str, Any],
    clusters: list[dict[str, Any]],
) -> list[Finding]:
    findings = []
    if gpu_note:
        findings.append(Finding("no-local-gpu", "info", gpu_note))
    if slurm["available"] and slurm["pyxis"] is False:
        findings.append(
            Finding(
                "no-pyxis",
                "warn",
                "srun has no --container-image: pyxis is not loaded, so container jobs need "
                "another runtime (enroot directly, Apptainer) or a bare-metal environment",
            )
        )
    if slurm["error"]:
        findings.append(Finding("sinfo-failed", "warn", slurm["error"]))
    docker = containers["docker"]
    if docker["path"] and not docker["daemon"]:
        findings.append(
            Finding(
                "docker-daemon-unreachable",
                "info",
                f"docker is installed but its daemon is not reachable ({docker['error'] or 'no answer'})",
            )
        )
    if environ.get("PIP_CONSTRAINT"):
        findings.append(
            Finding(
                "pip-constraint",
                "warn",
                f"PIP_CONSTRAINT={environ['PIP_CONSTRAINT']}: NGC containers pin packages, so "
                "upgrading transformers or ModelOpt can fail with ResolutionImpossible or pull a new "
                "torch; unset PIP_CONSTRAINT for that pip call, or install with --no-deps",
            )
        )
    if not (environ.get("HF_TOKEN") or environ.get("HUGGING_FACE_HUB_TOKEN")):
        findings.append(
            Finding(
                "no-hf-token",
                "info",
                "HF_TOKEN is not set: gated models and hf_ptq's default calibration mix (gated "
                "nvidia/Nemotron datasets) will not download; set it or pass --dataset cnn_dailymail",
            )
        )
    for entry in clusters:
        if entry["error"]:
            findings.append(Finding("clusters-yaml-invalid", "warn", f"{entry['path']}: {entry['error']}"))
    return findings


def slurm_associations(runner: Runner, user: str | None) -> list[dict[str, str]]:
    """The user's SLURM associations (account, partition, QOS) from ``sacctmgr``; empty when
    accounting is off."""
    if not user:
        return []
    result = probe(
        runner, ["sacctmgr", "-nP", "show", "associations", f"user={user}", "format=Account,Partition,QOS"]
    )
    if result is None or result.returncode:
        return []
    rows = [line.split("|") for line in result.stdout.splitlines() if line.strip()]
    return [{"account": r[0], "partition": r[1], "qos": r[2]} for r in rows if len(r) >= 3]


def infer_env_type(slurm: dict[str, Any], containers: dict[str, Any], gpus: list[dict[str, Any]]) -> str:
    """slurm when sbatch is there, docker with the NVIDIA runtime, bare with nvidia-smi GPUs,
    else unknown (ModelOpt's probe order)."""
    if slurm["available"]:
        return "slurm"
    if containers["docker"]["gpu_runtime"]:
        return "docker"
    return "bare" if gpus else "unknown"


def detect_cluster_env(runner: Runner, cluster: Any, deploy_gpu: GpuSpec | None = None) -> dict[str, Any]:
    """The ``ptqv env`` report for a cluster's login node, probed over ``runner``. The format
    recommendation uses the cluster's ``gpu_type`` (compute nodes, not the login node) when set."""
    gpus, gpu_note = detect_gpus(runner)
    slurm = detect_slurm(runner)
    slurm["associations"] = slurm_associations(runner, getattr(runner, "user", None) or cluster.user)
    containers = detect_containers(runner)
    where = cluster.workspace or "."
    shell = runner.run(
        [
            "sh",
            "-c",
            'printf "%s\\n" "$PIP_CONSTRAINT"; [ -n "$HF_TOKEN$HUGGING_FACE_HUB_TOKEN" ] && echo set; '
            # the workspace may not exist yet: measure the nearest folder that does
            'd="$1"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d" 2>/dev/null | tail -1',
            "sh",
            where,
        ],
        timeout=TOOL_TIMEOUT_S,
    ).stdout.splitlines()
    free_kib = shell[-1].split()[3] if shell and len(shell[-1].split()) > 3 else ""
    detected = infer_env_type(slurm, containers, gpus)
    env_type = cluster.env_type or detected
    calib = match_gpu(cluster.gpu_type) if cluster.gpu_type else calibration_gpu(gpus)
    findings = _findings(
        {"HF_TOKEN": "set" if "set" in shell[1:2] else "", "PIP_CONSTRAINT": shell[0] if shell else ""},
        None if cluster.gpu_type else gpu_note,
        slurm,
        containers,
        [],
    )
    if cluster.env_type and cluster.env_type != detected:
        findings.append(
            Finding(
                "env-type-mismatch",
                "warn",
                f"clusters.yaml says env_type {cluster.env_type}, the login node looks like {detected}",
            )
        )
    if cluster.gpu_type and calib is None:
        findings.append(
            Finding(
                "unknown-gpu-type",
                "warn",
                f"gpu_type {cluster.gpu_type!r} is not in the GPU table: no format recommendation",
            )
        )
    return {
        "schema_version": 1,
        "kind": "ptqv-env",
        "cluster": cluster.name,
        "host": runner.host,
        "env_type": env_type,
        "gpu_type": cluster.gpu_type,
        "gpus": gpus,
        "gpu_note": gpu_note,
        "slurm": slurm,
        **containers,
        "modelopt_checkout": {"path": None, "hf_ptq": None, "launcher": None},
        "packages": {},
        "pip_constraint": (shell[0] if shell else "") or None,
        "hf_token_set": "set" in shell[1:2],
        "disk": {"path": where, "free_gib": round(int(free_kib) / 2**20, 1) if free_kib.isdigit() else None},
        "cluster_configs": [],
        "run_mode": {"mode": env_type, "reason": f"cluster {cluster.name} ({runner.host}): {env_type}"},
        "recommendation": recommend(calib, deploy_gpu),
        "findings": [f.to_json() for f in findings],
    }
