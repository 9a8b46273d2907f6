"""The job spec: one YAML (or the equivalent ``ptqv render`` flags) for every kind of job.

In: a YAML file and/or a mapping of overrides. Out: a validated, immutable ``JobSpec``.
Unknown keys are rejected; every error becomes an ``InputError`` naming the file and the key.
Values that later reach a shell line are *not* restricted here beyond control characters (the
renderer quotes them); values that reach places with no quoting (``#SBATCH`` lines, pyxis mount
lists, environment names) are held to strict character sets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ptq_validators.errors import InputError

# #SBATCH lines are parsed by sbatch, not by a shell, so quoting does not protect them: these
# values must be plain words.
SLURM_WORD = re.compile(r"^[A-Za-z0-9._,:@+=/-]+$")
SLURM_TIME = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names whose values are credentials: they may only be passed through by name.
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|API_KEY|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class JobSpec(BaseModel):
    """Everything needed to render a PTQ job of any kind (the README's "The job spec" lists
    each key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # what to quantize and how
    model: str = Field(description="HF model id or local checkpoint directory")
    qformat: str | None = Field(None, description="ModelOpt --qformat preset (hf_ptq, launcher, nemotron)")
    recipe: str | None = Field(None, description="ModelOpt --recipe name or path (instead of qformat)")
    scheme: str | None = Field(None, description="llm-compressor preset scheme, e.g. FP8_DYNAMIC, W4A16")
    kv_cache_qformat: str | None = Field(None, description="ModelOpt --kv_cache_qformat")
    calib_size: PositiveInt = Field(512, description="calibration samples of the full run")
    calib_seq: PositiveInt | None = Field(None, description="calibration sequence length")
    batch_size: NonNegativeInt | None = Field(None, description="calibration batch size (0 = probe)")
    dataset: str | None = Field(None, description="calibration dataset name")
    trust_remote_code: bool = False
    ignore: list[str] = Field(["lm_head"], description="llm-compressor ignore list")
    llmc_entrypoint: Literal["auto", "oneshot", "model_free_ptq"] = "auto"
    nemotron_config: str = Field("default", description="nemotron steps -c config")
    nemotron_profile: str | None = Field(None, description="nemotron steps -r profile (env.toml)")
    nemotron_repo: str | None = Field(None, description="NVIDIA-NeMo/Nemotron checkout (uv run nemotron)")
    tp: PositiveInt = 1
    pp: PositiveInt = 1
    ep: PositiveInt = 1
    etp: PositiveInt = 1

    # kind canary: `ptqv canary` on the export, where it lives
    export: str | None = Field(
        None, description="checkpoint the canary serves (kind canary; a path on the node)"
    )
    engine: Literal["vllm", "transformers"] = Field(
        "vllm", description="canary engine: vllm (--serve vllm) or transformers (in-process)"
    )
    engine_python: str | None = Field(None, description="canary: the Python whose environment has vLLM")
    source: str | None = Field(None, description="canary: the source checkpoint to compare the export with")

    # where
    name: str | None = Field(None, description="job name (default: the model variant)")
    output: str | None = Field(None, description="export directory (default: <workspace>/output/checkpoint)")
    modelopt_repo: str | None = Field(
        None, description="Model-Optimizer checkout (hf_ptq.py, tools/launcher)"
    )
    hf_cache: str | None = Field(None, description="HF cache directory (HF_HOME; /hf-local for the launcher)")
    container: str | None = Field(None, description="container image (.sqsh or registry URI)")
    mounts: list[str] = Field([], description="container mounts, SRC:DST[:ro|rw]")
    docker_network: str | None = Field(None, description="docker run --network value, e.g. host or none")
    docker_ulimits: bool = Field(
        True,
        description="docker run --ulimit memlock=-1 --ulimit stack=67108864 (NGC advice); "
        "false where the engine may not raise limits",
    )

    # resources
    gpus: NonNegativeInt = Field(1, description="GPUs per node (0 = no GPU request)")
    nodes: PositiveInt = 1
    partition: str | None = None
    account: str | None = None
    time: str = "04:00:00"
    smoke: bool = Field(True, description="run a smoke job (smoke_calib_size) before the full run")
    smoke_calib_size: PositiveInt = 4
    smoke_time: str = "00:30:00"

    # environment
    extra_pip: list[str] = Field([], description="requirements to pip install first; ranges allowed")
    env: dict[str, str] = Field({}, description="environment variables to set (no secrets)")
    env_passthrough: list[str] = Field(["HF_TOKEN"], description="variables passed by name only")
    quantizer_command: list[str] | None = Field(
        None, description="stand-in argv that replaces the quantizer command (tests, dry runs)"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        def walk(value: Any, where: str) -> None:
            if isinstance(value, str) and CONTROL_CHARS.search(value):
                raise ValueError(f"{where} contains a control character (newline, tab, NUL...)")
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(k, where)
                    walk(v, f"{where}.{k}")
            if isinstance(value, list):
                for item in value:
                    walk(item, where)

        if isinstance(data, dict):
            for key, value in data.items():
                walk(value, str(key))
        return data

    @field_validator("qformat", "kv_cache_qformat", "recipe", "scheme")
    @classmethod
    def _preset(cls, value: str | None, info: ValidationInfo) -> str | None:
        """The names the gate and hf_ptq.py accept (ptq_validators.presets), so a typo fails
        here and not in the queue; returns the tool's spelling."""
        from ptq_validators import presets
        from ptq_validators.errors import UsageError

        if value is None or info.field_name is None:
            return value
        check = {
            "qformat": presets.hf_ptq_qformat,
            "kv_cache_qformat": presets.kv_cache_qformat,
            "recipe": presets.modelopt_recipe,
            "scheme": presets.gate_scheme,
        }[info.field_name]
        try:
            return check(value, flag=info.field_name)
        except UsageError as exc:
            raise ValueError(f"{exc.message} ({exc.hint})") from None

    @field_validator("partition", "account", "name")
    @classmethod
    def _slurm_word(cls, value: str | None) -> str | None:
        if value is not None and not SLURM_WORD.match(value):
            raise ValueError(f"{value!r} is not a plain word (letters, digits and ._,:@+=/- only)")
        return value

    @field_validator("time", "smoke_time")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        if not SLURM_TIME.match(value):
            raise ValueError(f"{value!r} is not a SLURM time (MM, HH:MM:SS or D-HH:MM:SS)")
        return value

    @field_validator("mounts")
    @classmethod
    def _mounts(cls, value: list[str]) -> list[str]:
        for mount in value:
            parts = mount.split(":")
            # pyxis joins mounts with commas and docker splits -v on colons
            if "," in mount or len(parts) not in (2, 3) or not all(parts[:2]):
                raise ValueError(f"mount {mount!r} is not SRC:DST[:ro|rw] (no commas)")
            if not parts[1].startswith("/"):
                raise ValueError(f"mount {mount!r}: the container path must be absolute")
            if len(parts) == 3 and parts[2] not in ("ro", "rw"):
                raise ValueError(f"mount {mount!r}: the mode must be ro or rw")
        return value

    @field_validator("extra_pip")
    @classmethod
    def _requirements(cls, value: list[str]) -> list[str]:
        for req in value:
            if not req or req.startswith("-") or any(c.isspace() for c in req):
                raise ValueError(f"{req!r} is not a requirement (one per item, no spaces, no pip options)")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not an environment variable name")
            if SECRET_NAME.search(key):
                raise ValueError(
                    f"{key} looks like a secret: never write it into a file; "
                    f"list it under env_passthrough so the job reads it from your environment"
                )
        return value

    @field_validator("env_passthrough")
    @classmethod
    def _passthrough(cls, value: list[str]) -> list[str]:
        for key in value:
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not an environment variable name")
        return value

    @field_validator("quantizer_command")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("the stand-in command is empty")
        return value

    @model_validator(mode="after")
    def _one_format(self) -> JobSpec:
        if self.qformat and self.recipe:
            raise ValueError("set qformat or recipe, not both (hf_ptq ignores qformat with a recipe)")
        if not (self.qformat or self.recipe or self.scheme or self.export):
            raise ValueError(
                "set one of qformat, recipe (ModelOpt), scheme (llm-compressor) or export (kind canary)"
            )
        if self.engine_python and self.engine != "vllm":
            raise ValueError("engine_python is the Python that serves vLLM: set engine: vllm or drop it")
        return self


def _describe(error: Mapping[str, Any]) -> str:
    """One line for one pydantic error: ``key 'a.b': message``."""
    loc = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        valid = ", ".join(JobSpec.model_fields)
        return f"unknown key '{loc}' (valid keys: {valid})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"key '{loc}': {message}" if loc else message


def build_spec(data: dict[str, Any], source: str) -> JobSpec:
    """Validate ``data`` into a JobSpec; ``source`` names where it came from in error messages."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        first, *rest = exc.errors()
        more = f" (and {len(rest)} more)" if rest else ""
        raise InputError(
            f"{source}: {_describe(first)}{more}",
            hint="fix the spec; the README section 'The job spec' lists every key",
        ) from None


def read_spec_file(path: Path) -> dict[str, Any]:
    """Read a spec YAML (``yaml.safe_load``) into a mapping; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the spec: {exc.strerror}", hint="check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}", hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: the spec must be a mapping of keys to values",
            hint="see the README section 'The job spec'",
        )
    return data


def load_spec(path: Path | None, overrides: dict[str, Any]) -> JobSpec:
    """The spec from ``path`` (if any) with ``overrides`` (e.g. from CLI flags) applied on top."""
    data = read_spec_file(path) if path else {}
    data.update(overrides)
    return build_spec(data, str(path) if path else "command-line flags")
