"""Lint rendered job files: shell scripts, YAML against the schema it targets, Python syntax.

In: the paths of a rendered job. Out: a list of ``Finding`` (empty = clean). Shell scripts get
``bash -n`` and, when installed, ``shellcheck``; they must not carry pyxis flags as ``#SBATCH``
lines or disable SSH host-key checking (docs/launchers.md §6). The ModelOpt launcher YAML and
the llm-compressor recipe are checked against models of their schemas (docs/launchers.md §2, §5).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

from ptq_validators.launch.render import LAUNCHER_ENV_VALUE
from ptq_validators.launch.runner import LocalRunner, Runner

SHELL_SUFFIXES = (".sh", ".sbatch")
_SBATCH_CONTAINER = re.compile(r"^#SBATCH\s+--container-", re.MULTILINE)
_NO_HOSTKEY_CHECK = re.compile(r"StrictHostKeyChecking\s*=?\s*no|UserKnownHostsFile\s*=?\s*/dev/null", re.I)


@dataclass(frozen=True)
class Finding:
    """One problem in one file: ``tool`` is bash, shellcheck, schema, python or p09."""

    path: Path
    tool: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.tool}: {self.message}"


def shellcheck_available(runner: Runner | None = None) -> bool:
    return (runner or LocalRunner()).which("shellcheck") is not None


def lint_shell(path: Path, runner: Runner) -> list[Finding]:
    findings = []
    syntax = runner.run(["bash", "-n", str(path)], timeout=30)
    if syntax.returncode:
        findings.append(Finding(path, "bash", syntax.stderr.strip() or f"bash -n exit {syntax.returncode}"))
    if runner.which("shellcheck"):
        check = runner.run(
            # SC2016 (a `$` inside single quotes) is the point of shlex.quote: hostile values such
            # as a model id of `$(touch pwned)` must stay literal
            ["shellcheck", "--format=json", "--shell=bash", "--exclude=SC2016", str(path)],
            timeout=60,
        )
        for item in json.loads(check.stdout or "[]"):
            findings.append(
                Finding(path, "shellcheck", f"line {item['line']}: SC{item['code']} {item['message']}")
            )
    text = path.read_text(encoding="utf-8")
    if _SBATCH_CONTAINER.search(text):
        findings.append(
            Finding(path, "p09", "pyxis --container-* flags as #SBATCH lines are ignored; put them on srun")
        )
    if _NO_HOSTKEY_CHECK.search(text):
        findings.append(Finding(path, "p09", "SSH host-key checking is disabled"))
    return findings


# ------------------------------------------------------------------ ModelOpt launcher schema (§2)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LauncherSlurmConfig(_Strict):
    factory: Literal["slurm_factory"] | None = None
    host: str | None = None
    port: int | None = None
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    container: str | None = None
    modelopt_install_path: str | None = None
    container_mounts: list[str] | None = None
    srun_args: list[str] | None = None
    array: str | None = None
    requeue: bool | None = None
    nodes: int | None = None
    ntasks_per_node: int | None = None
    gpus_per_node: int | None = None
    docker_user: str | None = None
    time: str | None = None
    mem: str | None = None
    local: bool | None = None
    segment: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _factory_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "_factory_" in data:
            data = {**data, "factory": data["_factory_"]}
            del data["_factory_"]
        return data


class LauncherTask(_Strict):
    script: str | None = None
    inline: str | None = None
    args: list[str] | None = None
    environment: list[dict[str, str]] | dict[str, str] | None = None
    reqs: str | None = None
    reqs_file: str | None = None
    slurm_config: LauncherSlurmConfig | None = None
    skip: bool | None = None

    @model_validator(mode="after")
    def _script_or_inline(self) -> LauncherTask:
        if (self.script is None) == (self.inline is None):
            raise ValueError("set exactly one of script and inline")
        if self.inline is not None and self.args:
            raise ValueError("inline cannot be combined with args")
        return self

    @field_validator("environment")
    @classmethod
    def _env(cls, value: list[dict[str, str]] | dict[str, str] | None) -> Any:
        items = value if isinstance(value, list) else [value or {}]
        for item in items:
            if isinstance(item, dict) and len(item) != 1 and isinstance(value, list):
                raise ValueError("each environment entry is a single-key mapping (- KEY: value)")
            for key, val in item.items():
                if not LAUNCHER_ENV_VALUE.match(val):  # written into an unquoted `export` (§2.8)
                    raise ValueError(
                        f"{key}={val!r} holds shell characters; the launcher exports it unquoted"
                    )
        return value


class LauncherGlobalVars(_Strict):
    hf_model: str | None = None
    hf_data: str | None = None
    hf_local: str | None = None
    output_dir: str | None = None
    draft_model: str | None = None


class LauncherPipeline(_Strict):
    global_vars: LauncherGlobalVars | None = None
    task_0: LauncherTask
    task_1: LauncherTask | None = None
    task_2: LauncherTask | None = None
    task_3: LauncherTask | None = None
    task_4: LauncherTask | None = None
    test_level: int | None = None
    allow_to_fail: bool | None = None
    skip: bool | None = None
    note: str | None = None


class LauncherConfig(_Strict):
    job_name: str
    pipeline: LauncherPipeline

    @model_validator(mode="before")
    @classmethod
    def _no_interpolation(cls, data: Any) -> Any:
        if "${" in json.dumps(data):  # the launcher's config loader would interpolate it
            raise ValueError("'${' found: the launcher's config loader interpolates it (use $VAR)")
        return data


# ----------------------------------------------------------- llm-compressor recipe schema (§9.3)


class LlmcQuantizationModifier(_Strict):
    targets: list[str] | str = ["Linear"]
    ignore: list[str] = []
    scheme: str | dict[str, Any] | None = None
    config_groups: dict[str, Any] | None = None
    kv_cache_scheme: dict[str, Any] | None = None


def _check_llmc_recipe(data: Any) -> None:
    if not isinstance(data, dict) or not data:
        raise ValueError("a recipe is a mapping of *_stage keys")
    for stage, modifiers in data.items():
        if stage == "args":
            continue
        if not stage.endswith("_stage") or not isinstance(modifiers, dict):
            raise ValueError(f"{stage!r}: top-level keys end in _stage and hold *_modifiers mappings")
        for group, mods in modifiers.items():
            if not group.endswith("_modifiers") or not isinstance(mods, dict):
                raise ValueError(f"{stage}.{group}: keys under a stage end in _modifiers")
            for name, args in mods.items():
                if name == "QuantizationModifier":
                    LlmcQuantizationModifier.model_validate(args)


YAML_SCHEMAS: dict[str, Callable[[Any], object]] = {
    "launcher.yaml": LauncherConfig.model_validate,
    "recipe.yaml": _check_llmc_recipe,
}


def lint_yaml(path: Path) -> list[Finding]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        return [Finding(path, "yaml", str(exc))]
    check = YAML_SCHEMAS.get(path.name)
    if check is None:
        return []
    try:
        check(data)
    except (ValidationError, ValueError) as exc:
        return [Finding(path, "schema", " ".join(str(exc).split()))]
    return []


def lint_python(path: Path) -> list[Finding]:
    try:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        return [Finding(path, "python", f"line {exc.lineno}: {exc.msg}")]
    return []


def lint_files(paths: list[Path], runner: Runner | None = None) -> list[Finding]:
    """Every finding in ``paths`` (shell by suffix, YAML, Python); the shell tools run on
    ``runner`` (this machine by default)."""
    runner = runner or LocalRunner()
    findings: list[Finding] = []
    for path in paths:
        if path.suffix in SHELL_SUFFIXES:
            findings += lint_shell(path, runner)
        elif path.suffix in (".yaml", ".yml"):
            findings += lint_yaml(path)
        elif path.suffix == ".py":
            findings += lint_python(path)
    return findings
