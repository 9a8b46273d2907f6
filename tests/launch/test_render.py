"""Rendering: golden files pin every kind's output; every rendered file passes the lint.

Regenerate the golden files with ``PTQV_UPDATE_GOLDEN=1 python -m pytest tests/launch``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ptq_validators.errors import InputError
from ptq_validators.launch.lint import lint_files, lint_yaml
from ptq_validators.launch.render import render_job
from ptq_validators.launch.spec import load_spec
from ptq_validators.launch.workspace import Workspace

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("PTQV_UPDATE_GOLDEN") == "1"

COMMON: dict[str, Any] = {
    "model": "Qwen/Qwen3-8B",
    "qformat": "nvfp4_mlp_only",
    "kv_cache_qformat": "fp8_cast",
    "calib_size": 512,
    "dataset": "cnn_dailymail",
    "gpus": 4,
    "partition": "batch",
    "account": "ptq-acct",
    "time": "02:00:00",
    "container": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
    "mounts": ["/lustre/data:/data:ro"],
    "extra_pip": ["transformers>=4.57,<4.58"],
    "hf_cache": "/lustre/hf cache",
    "env": {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
    "modelopt_repo": "/opt/Model-Optimizer",
}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "direct": ("direct", {"container": None}),
    "docker": ("docker", {"docker_network": "host"}),
    "slurm": ("slurm", {}),
    "slurm_multinode": (
        "slurm",
        {
            "nodes": 2,
            "gpus": 8,
            "qformat": None,
            "recipe": "general/ptq/nvfp4_default-kv_fp8_cast",
            "batch_size": 4,
        },
    ),
    "launcher": ("launcher", {"env": {"USER": "ptq"}}),
    "nemotron": (
        "nemotron",
        {
            "qformat": "fp8",
            "kv_cache_qformat": None,
            "gpus": 8,
            "tp": 8,
            "nemotron_repo": "/opt/Nemotron",
            "nemotron_config": "fp8",
        },
    ),
    "llmcompressor_oneshot": (
        "llmcompressor",
        {"qformat": None, "scheme": "W4A16", "ignore": ["lm_head", "re:.*mlp.gate$"]},
    ),
    "llmcompressor_model_free": ("llmcompressor", {"qformat": None, "scheme": "FP8_DYNAMIC"}),
    "canary": (
        "canary",
        {
            "qformat": None,
            "kv_cache_qformat": None,
            "gpus": 1,
            "export": "/lustre/exports/Qwen3-8B nvfp4",
            "source": "/lustre/models/Qwen3-8B",
            "engine_python": "/opt/vllm/bin/python",
        },
    ),
}


def render_case(case: str, tmp_path: Path) -> list[Path]:
    kind, changes = CASES[case]
    spec = load_spec(None, {k: v for k, v in {**COMMON, **changes}.items() if v is not None})
    return render_job(spec, kind, Workspace(tmp_path / "ws").create()).files


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, tmp_path: Path) -> None:
    files = render_case(case, tmp_path)
    ws = str(tmp_path / "ws")
    for path in files:
        text = path.read_text().replace(ws, "@WS@")
        golden = GOLDEN / case / path.name
        if UPDATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert golden.is_file(), f"no golden file {golden}: run with PTQV_UPDATE_GOLDEN=1"
        assert text == golden.read_text(), f"{path.name} differs from {golden}"
    assert sorted(p.name for p in files) == sorted(p.name for p in (GOLDEN / case).iterdir())


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_files_pass_the_lint(case: str, tmp_path: Path, shellcheck: str) -> None:
    assert lint_files(render_case(case, tmp_path)) == []


def test_pyxis_flags_are_on_srun_and_ranks_are_unset(tmp_path: Path) -> None:
    files = {p.name: p.read_text() for p in render_case("slurm", tmp_path)}
    assert "#SBATCH --container" not in files["smoke.sbatch"]
    assert "    --container-image=nvcr.io/nvidia/tensorrt-llm/release:1.2.0 \\\n" in files["smoke.sbatch"]
    assert "unset SLURM_PROCID SLURM_LOCALID SLURM_NTASKS WORLD_SIZE LOCAL_RANK RANK" in files["run.sh"]
    assert "#SBATCH --time=00:30:00" in files["smoke.sbatch"]
    assert "#SBATCH --kill-on-invalid-dep=yes" in files["full.sbatch"]
    multi = {p.name: p.read_text() for p in render_case("slurm_multinode", tmp_path / "m")}
    assert "unset SLURM_PROCID" not in multi["run.sh"] and "--use_fsdp2" in multi["run.sh"]


def test_launcher_yaml_uses_the_args_form_ptq_sh_reads(tmp_path: Path) -> None:
    files = {p.name: p for p in render_case("launcher", tmp_path)}
    config = yaml.safe_load(files["launcher.yaml"].read_text())
    task = config["pipeline"]["task_1"]
    assert task["args"][:3] == ["--repo Qwen/Qwen3-8B", "--local-dir /hf-local/Qwen/Qwen3-8B", "--"]
    assert "--calib 512" in task["args"] and "--calib 4" in config["pipeline"]["task_0"]["args"]
    assert task["reqs"] == "transformers>=4.57,<4.58"  # shell-quoted by the launcher, unlike env
    env_names = {k for item in task["environment"] for k in item}
    assert not env_names & {"HF_MODEL", "QFORMAT", "CALIB_SIZE", "EXPORT_PATH"}  # ptq.sh ignores them


def test_launcher_schema_rejects_unsafe_environment(tmp_path: Path) -> None:
    path = tmp_path / "launcher.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "job_name": "x",
                "pipeline": {
                    "task_0": {
                        "script": "common/hf/ptq.sh",
                        "environment": [{"EXTRA_PIP_DEPS": "transformers>=4.57,<4.58"}],
                    }
                },
            }
        )
    )
    [finding] = lint_yaml(path)
    assert "unquoted" in finding.message


@pytest.mark.parametrize(
    ("kind", "changes", "message"),
    [
        ("launcher", {"model": "/local/ckpt"}, "kind launcher needs a Hugging Face repo id"),
        ("launcher", {"env": {"EXTRA_PIP_DEPS": "a<2"}}, "unquoted `export`"),
        ("nemotron", {"nemotron_repo": "/n", "qformat": "fp8", "tp": 3}, "is not divisible by tp x pp"),
        (
            "nemotron",
            {"nemotron_repo": "/n", "qformat": "nvfp4_mlp_only"},
            "kind nemotron needs qformat set to one of",
        ),
        ("direct", {"modelopt_repo": None}, "kind direct needs modelopt_repo"),
        ("direct", {"nodes": 2}, "multi-node (FSDP2) jobs need kind slurm"),
        ("docker", {"container": None}, "kind docker needs container"),
        ("llmcompressor", {"qformat": None, "scheme": "W4A16", "dataset": None}, "needs a dataset"),
        ("canary", {}, "kind canary needs export"),
        ("slurm", {"qformat": None, "export": "/e"}, "kind slurm needs qformat or recipe"),
    ],
)
def test_kind_requirements(kind: str, changes: dict[str, Any], message: str, tmp_path: Path) -> None:
    spec = load_spec(None, {k: v for k, v in {**COMMON, **changes}.items() if v is not None})
    with pytest.raises(InputError, match=re.escape(message)):
        render_job(spec, kind, Workspace(tmp_path / "ws"))


def test_canary_with_transformers_runs_in_process(tmp_path: Path) -> None:
    changes = {"qformat": None, "container": None, "export": "/e", "engine": "transformers"}
    spec = load_spec(None, {**COMMON, **changes})
    run_sh = {p.name: p for p in render_job(spec, "canary", Workspace(tmp_path / "ws")).files}["run.sh"]
    assert 'ptqv canary /e \\\n    --engine transformers \\\n    --out "$export_path"\n' in run_sh.read_text()


def test_engine_python_only_goes_with_vllm() -> None:
    with pytest.raises(InputError, match="engine_python is the Python that serves vLLM"):
        load_spec(None, {"model": "m", "export": "/e", "engine": "transformers", "engine_python": "/py"})
