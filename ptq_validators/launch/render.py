"""Render a JobSpec into the files of one job, through the Jinja2 templates in ``templates/``.

In: a ``JobSpec``, a kind (one of ``KINDS``) and a ``Workspace``. Out: the written files
(``RenderedJob``) plus ``render.json``, the manifest ``ptqv launch`` reads.

Quoting happens here, in Python, never in a template: every value that reaches a shell line is
passed to the template as a finished shell word (``shlex.quote``), every YAML value as a JSON
string (valid YAML), every Python value as ``repr``. Templates use ``StrictUndefined``, so a
missing variable is an error, not an empty string.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from ptq_validators.errors import InputError, TemplateError
from ptq_validators.launch.kinds import KINDS, launch_mode
from ptq_validators.launch.spec import JobSpec
from ptq_validators.launch.workspace import Workspace, model_variant, safe_name
from ptq_validators.resources import data_dir

MANIFEST = "render.json"
# (template, output file name, template variables)
PlannedFile = tuple[str, str, Mapping[str, object]]
# single-process hf_ptq (device_map=auto) must not see rank variables (docs/launchers.md §3.1)
RANK_VARS = "SLURM_PROCID SLURM_LOCALID SLURM_NTASKS WORLD_SIZE LOCAL_RANK RANK"
NEMOTRON_QUANT_CFGS = (
    "int8_sq",
    "fp8",
    "fp8_blockwise",
    "int4_awq",
    "w4a8_awq",
    "nvfp4",
    "mamba_moe_fp8_aggressive",
    "mamba_moe_fp8_conservative",
    "mamba_moe_nvfp4_aggressive",
    "mamba_moe_nvfp4_conservative",
)
# llm-compressor schemes that need no calibration data: model_free_ptq handles them shard by shard
DATA_FREE_SCHEMES = ("FP8_DYNAMIC", "FP8_BLOCK", "NVFP4A16", "MXFP4A16", "MXFP8A16", "MXFP8", "W8A16")
HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# the ModelOpt launcher writes `environment` values into an unquoted `export` (docs/launchers.md §2.3)
LAUNCHER_ENV_VALUE = re.compile(r"^[A-Za-z0-9_./:=,@+%-]*$")


def q(value: object) -> str:
    """``value`` as one shell word."""
    return shlex.quote(str(value))


def y(value: object) -> str:
    """``value`` as a YAML scalar (a JSON string or number is valid YAML)."""
    return json.dumps(value)


def argv_lines(argv: Sequence[str], valued: Sequence[str], head: int, tail: int) -> list[list[str]]:
    """Quote ``argv`` for one flag per line: the first ``head`` words and the last ``tail`` words
    on a line each, every flag in ``valued`` with its value."""
    lines: list[list[str]] = [[q(w) for w in argv[:head]]]
    words = iter(argv[head : len(argv) - tail])
    for word in words:
        lines.append([q(word), q(next(words))] if word in valued else [q(word)])
    return [*lines, [q(w) for w in argv[len(argv) - tail :]]]


def command_lines(lines: Sequence[Sequence[str]]) -> str:
    """Shell words, grouped one flag per line, joined with backslash continuations."""
    return " \\\n    ".join(" ".join(words) for words in lines if words)


@dataclass(frozen=True)
class Phase:
    """One run of the quantizer: ``smoke`` (tiny calibration) or ``full``."""

    name: str
    calib_size: int
    export_path: Path
    time: str


@dataclass
class RenderedJob:
    """What ``render_job`` wrote: the kind, the workspace and the files (absolute paths)."""

    kind: str
    workspace: Workspace
    files: list[Path] = field(default_factory=list)
    manifest: Path | None = None


def phases(spec: JobSpec, ws: Workspace, *, export: Path | None = None) -> list[Phase]:
    """The smoke phase (unless disabled) then the full phase."""
    full_export = export or (Path(spec.output) if spec.output else ws.output / "checkpoint")
    full = Phase("full", spec.calib_size, full_export, spec.time)
    if not spec.smoke:
        return [full]
    return [Phase("smoke", spec.smoke_calib_size, ws.output / "smoke", spec.smoke_time), full]


def job_name(spec: JobSpec, kind: str) -> str:
    """The job's name: ``spec.name`` or the model variant (a plain word, safe for #SBATCH)."""
    return spec.name or model_variant(spec.model, "canary" if kind == "canary" else format_of(spec, kind))


def job_phases(spec: JobSpec, kind: str, ws: Workspace) -> list[Phase]:
    """The phases ``kind`` runs: for a canary one ``serve`` phase whose output is the canary record (no
    calibration), else ``phases``."""
    if kind == "canary":
        return [Phase("serve", 0, ws.output / "canary.json", spec.time)]
    return phases(spec, ws)


def format_of(spec: JobSpec, kind: str) -> str:
    """The format the kind uses: the scheme for llm-compressor, else the qformat or recipe."""
    fmt = spec.scheme if kind == "llmcompressor" else (spec.qformat or spec.recipe)
    if not fmt:
        wanted = "scheme" if kind == "llmcompressor" else "qformat or recipe"
        raise InputError(f"kind {kind} needs {wanted} in the spec", hint=f"set {wanted}")
    return fmt


def same_path_mounts(spec: JobSpec, ws: Workspace, *exports: Path) -> list[str]:
    """Container mounts: the workspace, export dirs outside it, caches and checkouts at the same
    path inside the container (so every rendered path means the same thing in and out), then the
    spec's own mounts."""
    paths: list[str] = [str(ws.path)]
    for export in exports:
        if not export.is_relative_to(ws.path):
            paths.append(str(export.parent))
    for extra in (spec.hf_cache, spec.modelopt_repo):
        if extra:
            paths.append(str(Path(extra).absolute()))
    mounts = [f"{p}:{p}" for p in dict.fromkeys(paths)]
    for mount in mounts:
        if "," in mount or mount.count(":") != 1:
            raise InputError(
                f"path {mount.split(':')[0]!r} cannot be a container mount (it holds ',' or ':')",
                hint="move the workspace, output or cache to a path without ',' and ':'",
            )
    return mounts + list(spec.mounts)


# ------------------------------------------------------------------------------ per-kind context


def _runner_env(spec: JobSpec) -> dict[str, object]:
    """Template variables for the environment part of a shell script."""
    return {
        "env": [(name, q(value)) for name, value in spec.env.items()],
        "hf_home": q(Path(spec.hf_cache).absolute()) if spec.hf_cache else None,
        "passthrough": list(spec.env_passthrough),
        "pip": " ".join(q(r) for r in spec.extra_pip) or None,
    }


def _quantizer_prefix(spec: JobSpec, default: list[str]) -> list[str]:
    """The program words: the spec's stand-in, or the real quantizer program."""
    return [q(w) for w in spec.quantizer_command] if spec.quantizer_command else default


def _hf_ptq_command(spec: JobSpec, kind: str) -> list[list[str]]:
    """hf_ptq.py with its flags (docs/launchers.md §1.1); torchrun + --use_fsdp2 for several nodes."""
    if spec.nodes > 1:
        program = [
            "torchrun",
            '--nnodes="$SLURM_NNODES"',
            '--node_rank="$SLURM_NODEID"',
            f"--nproc_per_node={spec.gpus}",
            "--rdzv_backend=c10d",
            '--rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT"',
            "hf_ptq.py",
        ]
    else:
        program = ["python", "hf_ptq.py"]
    lines = [_quantizer_prefix(spec, program), ["--pyt_ckpt_path", q(spec.model)]]
    lines.append(["--recipe", q(spec.recipe)] if spec.recipe else ["--qformat", q(spec.qformat)])
    if spec.kv_cache_qformat:
        lines.append(["--kv_cache_qformat", q(spec.kv_cache_qformat)])
    lines.append(["--calib_size", '"$calib_size"'])
    if spec.calib_seq:
        lines.append(["--calib_seq", str(spec.calib_seq)])
    if spec.batch_size is not None:
        lines.append(["--batch_size", str(spec.batch_size)])
    if spec.dataset:
        lines.append(["--dataset", q(spec.dataset)])
    lines.append(["--export_path", '"$export_path"'])
    if spec.trust_remote_code:
        lines.append(["--trust_remote_code"])
    if spec.nodes > 1:
        lines.append(["--use_fsdp2"])
    return lines


def _hf_ptq_workdir(spec: JobSpec, ws: Workspace, kind: str) -> Path:
    if spec.quantizer_command and not spec.modelopt_repo:
        return ws.path
    if not spec.modelopt_repo:
        raise InputError(
            f"kind {kind} needs modelopt_repo (a Model-Optimizer checkout; hf_ptq.py runs from its "
            "examples/hf_ptq)",
            hint="set modelopt_repo in the spec or pass --modelopt-repo",
        )
    return Path(spec.modelopt_repo).absolute() / "examples" / "hf_ptq"


def _runner_context(
    spec: JobSpec,
    kind: str,
    ws: Workspace,
    run_phases: list[Phase],
    command: list[list[str]],
    workdir: Path,
    unset_ranks: bool,
) -> dict[str, object]:
    return {
        "kind": kind,
        "phases": [
            {"name": p.name, "calib_size": p.calib_size, "export_path": q(p.export_path)} for p in run_phases
        ],
        "phase_names": "|".join(p.name for p in run_phases),
        "unset_ranks": unset_ranks,
        "rank_vars": RANK_VARS,
        "workdir": q(workdir),
        "command": command_lines(command),
        **_runner_env(spec),
    }


def _job_context(kind: str, ws: Workspace, run_phases: list[Phase]) -> dict[str, object]:
    return {"kind": kind, "runner": q(ws.scripts / "run.sh"), "phases": [p.name for p in run_phases]}


def docker_argv(spec: JobSpec, ws: Workspace, *, gpus: bool, name: str | None = None) -> list[str]:
    """The ``docker run`` argv that runs the job's ``job.sh`` in ``spec.container``.

    ``gpus`` adds ``--gpus`` (only where a GPU runtime exists). Secrets pass as ``-e NAME``, so
    docker copies them from the calling environment and they are never written down.
    """
    if not spec.container:
        raise InputError("kind docker needs container (the image to run)", hint="set container in the spec")
    argv = ["docker", "run", "--rm"]
    if name:
        argv += ["--name", name]
    if gpus and spec.gpus:
        argv.append(f"--gpus={spec.gpus}")
    # host IPC (the ModelOpt launcher's DockerExecutor) and NGC's advised limits
    argv.append("--ipc=host")
    if spec.docker_ulimits:
        argv += ["--ulimit", "memlock=-1", "--ulimit", "stack=67108864"]
    if spec.docker_network:
        argv.append(f"--network={spec.docker_network}")
    for mount in same_path_mounts(spec, ws, *(p.export_path for p in phases(spec, ws))):
        argv += ["-v", mount]
    for var in spec.env_passthrough:
        argv += ["-e", var]
    argv += ["-w", str(ws.path), spec.container, "bash", str(ws.scripts / "job.sh")]
    return argv


def _srun_words(
    spec: JobSpec, ws: Workspace, phase: str, run_phases: list[Phase], inputs: Sequence[Path] = ()
) -> list[list[str]]:
    """The srun line of a sbatch wrapper; pyxis container flags belong here, never in #SBATCH.
    ``inputs``: further paths the job reads, mounted like the exports."""
    lines = [["srun"]]
    if spec.container:
        mounts = same_path_mounts(spec, ws, *inputs, *(p.export_path for p in run_phases))
        lines += [
            [q(f"--container-image={spec.container}")],
            [q(f"--container-mounts={','.join(mounts)}")],
            [q(f"--container-workdir={ws.path}")],
            ["--no-container-mount-home"],
        ]
    lines.append(["bash", q(ws.scripts / "run.sh"), phase])
    return lines


def _sbatch_context(
    spec: JobSpec,
    ws: Workspace,
    phase: Phase,
    run_phases: list[Phase],
    name: str,
    inputs: Sequence[Path] = (),
) -> dict[str, object]:
    return {
        "job_name": f"{name}-{phase.name}",
        "phase": phase.name,
        "nodes": spec.nodes,
        "gpus": spec.gpus,
        "time": phase.time,
        "partition": spec.partition,
        "account": spec.account,
        "multinode": spec.nodes > 1,
        # a full job whose smoke job failed is cancelled instead of pending forever
        "kill_on_invalid_dep": phase.name == "full" and len(run_phases) > 1,
        "srun": command_lines(_srun_words(spec, ws, phase.name, run_phases, inputs)),
    }


def _launcher_files(spec: JobSpec, ws: Workspace, name: str) -> list[PlannedFile]:
    """ModelOpt launcher YAML in the args form common/hf/ptq.sh reads (docs/launchers.md §2.2)."""
    if not HF_REPO_ID.match(spec.model):
        raise InputError(
            f"kind launcher needs a Hugging Face repo id (org/name), not {spec.model!r}",
            hint="the launcher downloads --repo into /hf-local/<org>/<name>; use kind slurm for local paths",
        )
    for key, value in spec.env.items():
        if not LAUNCHER_ENV_VALUE.match(value):
            raise InputError(
                f"env {key}={value!r}: the ModelOpt launcher writes environment values into an unquoted "
                "`export`, so shell characters (< > | ; & $ quotes spaces) would be mangled",
                hint="use a plain value; pip version ranges belong in extra_pip (rendered as reqs:)",
            )
    others = [v for v in spec.env_passthrough if v != "HF_TOKEN"]
    if others:
        raise InputError(
            f"kind launcher cannot pass {', '.join(others)} through: the launcher forwards only HF_TOKEN",
            hint="remove them from env_passthrough",
        )
    tasks = []
    for phase in phases(spec, ws):
        args = [f"--repo {q(spec.model)}", f"--local-dir {q('/hf-local/' + spec.model)}", "--"]
        args.append(f"--recipe {q(spec.recipe)}" if spec.recipe else f"--quant {q(spec.qformat)}")
        args.append(f"--calib {phase.calib_size}")
        if spec.kv_cache_qformat:
            args.append(f"--kv_cache_quant {q(spec.kv_cache_qformat)}")
        if spec.dataset:
            args.append(f"--calib_dataset {q(spec.dataset)}")
        if spec.calib_seq:
            args.append(f"--calib_seq {spec.calib_seq}")
        args.append("--tasks quant")
        # huggingface_example.sh skips quantization when its output already has a config.json,
        # so each phase saves under its own ROOT_SAVE_PATH on the experiment's scratch mount
        env = [("ROOT_SAVE_PATH", y(f"/scratchspace/{phase.name}"))]
        env += [(k, y(v)) for k, v in spec.env.items()]
        tasks.append({"args": [y(a) for a in args], "env": env, "time": y(phase.time)})
    yaml_path = ws.scripts / "launcher.yaml"
    yaml_ctx = {
        "job_name": y(name),
        "model": y(spec.model),
        "tasks": tasks,
        "reqs": y(" ".join(spec.extra_pip)) if spec.extra_pip else None,
        "nodes": spec.nodes,
        "gpus": spec.gpus,
        "partition": y(spec.partition) if spec.partition else None,
        "account": y(spec.account) if spec.account else None,
        "container": y(spec.container) if spec.container else None,
        "mounts": [y(m) for m in spec.mounts],
    }
    if spec.quantizer_command and not spec.modelopt_repo:
        launcher_dir = ws.path
    elif spec.modelopt_repo:
        launcher_dir = Path(spec.modelopt_repo).absolute() / "tools" / "launcher"
    else:
        raise InputError(
            "kind launcher needs modelopt_repo (a Model-Optimizer checkout with tools/launcher)",
            hint="set modelopt_repo in the spec or pass --modelopt-repo",
        )
    command = [_quantizer_prefix(spec, ["uv", "run", "launch.py"]), ["--yaml", q(yaml_path)]]
    if spec.hf_cache:
        command.append([q(f"hf_local={Path(spec.hf_cache).absolute()}")])
    command.append(["--yes"])
    sh_ctx = {
        "launcher_dir": q(launcher_dir),
        "local": bool(spec.hf_cache),
        "command": command_lines(command),
    }
    return [("launcher.yaml.j2", "launcher.yaml", yaml_ctx), ("launcher.sh.j2", "launcher.sh", sh_ctx)]


def _nemotron_command(spec: JobSpec, ws: Workspace) -> tuple[list[list[str]], Path]:
    """``nemotron steps run optimize/modelopt/quantize`` with dotlist overrides (docs/launchers.md §4.1)."""
    if spec.recipe or spec.qformat not in NEMOTRON_QUANT_CFGS:
        raise InputError(
            f"kind nemotron needs qformat set to one of {', '.join(NEMOTRON_QUANT_CFGS)}"
            + (" (recipes are not supported by Megatron-Bridge quantize.py)" if spec.recipe else ""),
            hint="set qformat",
        )
    world = spec.gpus * spec.nodes
    if world == 0 or world % (spec.tp * spec.pp):
        raise InputError(
            f"nodes x gpus = {world} is not divisible by tp x pp = {spec.tp * spec.pp}",
            hint="adjust gpus, nodes, tp or pp",
        )
    values = {"hf_model_id": spec.model, "export_quant_cfg": spec.qformat}
    for text in [*values.values(), str(ws.path), spec.dataset or ""]:
        if "${" in text:  # OmegaConf would interpolate it
            raise InputError(
                f"{text!r}: '${{' is not allowed in nemotron values (OmegaConf interpolation)",
                hint="rename the path or value",
            )
    if not spec.nemotron_repo and not spec.quantizer_command:
        raise InputError(
            "kind nemotron needs nemotron_repo (a NVIDIA-NeMo/Nemotron checkout to run `uv run nemotron` in)",
            hint="set nemotron_repo in the spec",
        )
    program = ["uv", "run", "nemotron", "steps", "run", "optimize/modelopt/quantize"]
    lines = [_quantizer_prefix(spec, program), ["-c", q(spec.nemotron_config)]]
    if spec.nemotron_profile:
        lines.append(["-r", q(spec.nemotron_profile)])  # attached: the export must wait for it
    lines += [
        [q(f"args.hf_model_id={spec.model}")],
        [q(f"args.export_quant_cfg={spec.qformat}")],
        ['"args.calib_size=$calib_size"'],
        ['"args.megatron_save_path=$export_path"'],
    ]
    lines += [[f"args.{k}={getattr(spec, k)}"] for k in ("tp", "pp", "ep", "etp")]
    lines.append([f"args.trust_remote_code={str(spec.trust_remote_code).lower()}"])
    if spec.dataset:
        lines.append([q(f"args.calib_dataset={spec.dataset}")])
    lines.append([f"torchrun.nproc_per_node={spec.gpus}"])
    workdir = Path(spec.nemotron_repo).absolute() if spec.nemotron_repo else ws.path
    return lines, workdir


def _canary_command(spec: JobSpec, ws: Workspace) -> list[list[str]]:
    """``ptqv canary EXPORT`` with the spec's engine and source, its record at ``$export_path``
    (``quantizer_command``, if set, replaces the ``ptqv`` program: e.g. ``python -m ptq_validators``)."""
    if not spec.export:
        raise InputError("kind canary needs export (the checkpoint to serve)", hint="set export in the spec")
    lines = [[*_quantizer_prefix(spec, ["ptqv"]), "canary", q(spec.export)]]
    if spec.engine == "vllm":
        lines.append(["--serve", "vllm"])
        if spec.engine_python:
            lines.append(["--engine-python", q(spec.engine_python)])
        lines.append(["--log-dir", q(ws.logs)])
    else:
        lines.append(["--engine", "transformers"])
    if spec.source:
        lines.append(["--source", q(spec.source)])
    lines.append(["--out", '"$export_path"'])
    return lines


def _canary_files(spec: JobSpec, ws: Workspace, name: str) -> list[PlannedFile]:
    """run.sh (the canary) and one sbatch job with the export and source mounted (kind canary)."""
    command = _canary_command(spec, ws)
    run_phases = job_phases(spec, "canary", ws)
    runner = _runner_context(spec, "canary", ws, run_phases, command, ws.path, unset_ranks=False)
    [phase] = run_phases
    inputs = [Path(p) for p in (spec.export, spec.source) if p]
    sbatch = _sbatch_context(spec, ws, phase, run_phases, name, inputs)
    return [
        ("runner.sh.j2", "run.sh", runner),
        ("sbatch.sh.j2", f"{phase.name}.sbatch", sbatch),
        ("submit.sh.j2", "submit.sh", {"workspace": q(ws.path), "phases": [phase.name]}),
    ]


def _llmc_entry(spec: JobSpec) -> str:
    if spec.llmc_entrypoint != "auto":
        return spec.llmc_entrypoint
    return "model_free_ptq" if spec.scheme in DATA_FREE_SCHEMES else "oneshot"


# ------------------------------------------------------------------------------ rendering


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # shell, YAML and Python, not HTML; values arrive quoted
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render_one(env: jinja2.Environment, template: str, context: Mapping[str, object]) -> str:
    try:
        return env.get_template(template).render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateError(
            f"template {template}: {type(exc).__name__}: {exc}",
            hint="a bug in the template or its context; report it with the spec",
        ) from None


def plan_files(spec: JobSpec, kind: str, ws: Workspace) -> list[PlannedFile]:
    """(template, file name under scripts/, context) for every file of ``kind``."""
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
    name = job_name(spec, kind)
    if kind != "canary":
        format_of(spec, kind)
    if spec.nodes > 1 and kind != "slurm":
        raise InputError(
            f"nodes = {spec.nodes}: multi-node (FSDP2) jobs need kind slurm",
            hint="set nodes: 1 or render kind slurm",
        )
    if kind == "canary":
        return _canary_files(spec, ws, name)
    run_phases = phases(spec, ws)
    if kind == "launcher":
        return _launcher_files(spec, ws, name)
    if kind == "nemotron":
        megatron = phases(spec, ws, export=ws.output / "megatron")
        command, workdir = _nemotron_command(spec, ws)
        export = command_lines(
            [
                [
                    "torchrun",
                    f"--nproc_per_node={spec.pp}",
                    "/opt/Megatron-Bridge/examples/quantization/export.py",
                ],
                ["--hf-model-id", q(spec.model)],
                ["--megatron-load-path", q(megatron[-1].export_path)],
                ["--export-dir", q(run_phases[-1].export_path)],
                ["--pp", str(spec.pp)],
                ["--tp", "1"],  # the unified HF exporter needs TP=1
                ["--trust-remote-code"] if spec.trust_remote_code else [],
            ]
        )
        return [
            ("runner.sh.j2", "run.sh", _runner_context(spec, kind, ws, megatron, command, workdir, False)),
            ("job.sh.j2", "job.sh", _job_context(kind, ws, megatron)),
            ("export.sh.j2", "export.sh", {"command": export}),
        ]
    if kind == "llmcompressor":
        entry = _llmc_entry(spec)
        if entry == "model_free_ptq":  # data-free: a smoke calibration has nothing to test
            run_phases = [run_phases[-1]]
        elif not spec.dataset:
            raise InputError(
                f"scheme {spec.scheme} calibrates with oneshot, which needs a dataset",
                hint="set dataset (e.g. open_platypus), or llmc_entrypoint: model_free_ptq",
            )
        recipe = ws.scripts / "recipe.yaml"
        py = {
            "entry": entry,
            "model": repr(spec.model),
            "scheme": repr(spec.scheme),
            "ignore": repr(list(spec.ignore)),
            "dataset": repr(spec.dataset),
            "recipe": repr(str(recipe)),
            "max_seq": repr(spec.calib_seq or 384),
            "trust": repr(spec.trust_remote_code),
            "phases": repr({p.name: (p.calib_size, str(p.export_path)) for p in run_phases}),
            "phase_names": "|".join(p.name for p in run_phases),
        }
        command = [[*_quantizer_prefix(spec, ["python"]), q(ws.scripts / "quantize.py"), '"$phase"']]
        files: list[PlannedFile] = [
            ("runner.sh.j2", "run.sh", _runner_context(spec, kind, ws, run_phases, command, ws.path, False)),
            ("job.sh.j2", "job.sh", _job_context(kind, ws, run_phases)),
            ("llmc_quantize.py.j2", "quantize.py", py),
        ]
        if entry == "oneshot":
            files.append(
                (
                    "llmc_recipe.yaml.j2",
                    "recipe.yaml",
                    {"scheme": y(spec.scheme), "ignore": [y(i) for i in spec.ignore]},
                )
            )
        return files
    # the hf_ptq kinds: direct, docker, slurm
    workdir = _hf_ptq_workdir(spec, ws, kind)
    runner: PlannedFile = (
        "runner.sh.j2",
        "run.sh",
        _runner_context(
            spec, kind, ws, run_phases, _hf_ptq_command(spec, kind), workdir, unset_ranks=spec.nodes == 1
        ),
    )
    if kind == "direct":
        return [runner, ("job.sh.j2", "job.sh", _job_context(kind, ws, run_phases))]
    if kind == "docker":
        argv = docker_argv(spec, ws, gpus=True)
        docker = {"command": command_lines(argv_lines(argv, ("-v", "-e", "-w", "--ulimit", "--name"), 3, 3))}
        return [
            runner,
            ("job.sh.j2", "job.sh", _job_context(kind, ws, run_phases)),
            ("docker.sh.j2", "docker.sh", docker),
        ]
    files = [runner]
    for phase in run_phases:
        files.append(
            ("sbatch.sh.j2", f"{phase.name}.sbatch", _sbatch_context(spec, ws, phase, run_phases, name))
        )
    files.append(
        ("submit.sh.j2", "submit.sh", {"workspace": q(ws.path), "phases": [p.name for p in run_phases]})
    )
    return files


def render_job(spec: JobSpec, kind: str, ws: Workspace, *, into: Path | None = None) -> RenderedJob:
    """Render every file of ``kind`` into ``ws.scripts`` and write the manifest.

    With ``into``, the files are written under that local directory instead (same layout) while
    every path inside them is ``ws``'s: a job rendered here for a cluster's workspace, uploaded
    as is. ``RenderedJob.files`` are the local files; the manifest lists the workspace paths.
    """
    planned = plan_files(spec, kind, ws)
    env = _environment()
    local = Workspace(into) if into is not None else ws
    texts = [(out, _render_one(env, template, ctx)) for template, out, ctx in planned]
    local.create()
    job = RenderedJob(kind, local)
    for out, text in texts:
        path = local.scripts / out
        path.write_text(text, encoding="utf-8")
        if path.suffix in (".sh", ".sbatch"):
            path.chmod(0o755)
        job.files.append(path)
    name = job_name(spec, kind)
    manifest = {
        "schema_version": 1,
        "kind": kind,
        "name": name,
        "workspace": str(ws.path),
        "files": [str(ws.scripts / out) for out, _ in texts],
        "slurm_job_names": (
            {p.name: f"{name}-{p.name}" for p in job_phases(spec, kind, ws)}
            if launch_mode(kind) == "slurm"
            else {}
        ),
        "spec": spec.model_dump(mode="json"),
    }
    job.manifest = local.path / MANIFEST
    job.manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return job


def variant_for(spec: JobSpec, kind: str) -> str:
    """The workspace directory name of this job."""
    return safe_name(job_name(spec, kind))
