"""The argument mistakes people make, each answered with its exit code and a message that says
what was probably meant (`ptqv gate`, `ptqv scan`, `ptqv plan`, `ptqv render`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

NVFP4 = FIXTURES / "modelopt-nvfp4-llama"
FP8 = FIXTURES / "modelopt-fp8-llama"
SOURCE = FIXTURES / "src-llama"


def error_lines(stderr: str) -> tuple[str, str]:
    """The ``ptqv: error:`` line and the ``ptqv: fix:`` line."""
    error = next(line for line in stderr.splitlines() if line.startswith("ptqv: error: "))
    fix = next((line for line in stderr.splitlines() if line.startswith("ptqv: fix: ")), "")
    return error, fix


def test_same_directory_twice_is_a_usage_error(ptqv):
    result = ptqv("gate", SOURCE, "--source", f"{SOURCE}/")
    assert result.code == 2 and result.stdout == ""
    error, fix = error_lines(result.stderr)
    assert error == f"ptqv: error: OUTPUT and --source are the same directory ({SOURCE})"
    assert "exported checkpoint as OUTPUT" in fix


def test_swapped_arguments_say_swapped(ptqv):
    result = ptqv("gate", SOURCE, "--source", NVFP4, "--qformat", "nvfp4")
    assert result.code == 2 and result.stdout == ""
    error, fix = error_lines(result.stderr)
    assert error == (
        f"ptqv: error: OUTPUT {SOURCE} is unquantized while --source {NVFP4} is quantized (modelopt NVFP4)"
    )
    assert fix == f"ptqv: fix: swapped? the export comes first: ptqv gate {NVFP4} --source {SOURCE}"


def test_a_quantized_source_is_named_on_stderr(ptqv):
    result = ptqv("gate", NVFP4, "--source", FP8, "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "ptqv-gate"
    assert f"ptqv: warning: the source {FP8} is already quantized (modelopt FP8)" in result.stderr


def test_an_unquantized_source_gives_no_warning(ptqv):
    result = ptqv("gate", NVFP4, "--source", SOURCE, "--qformat", "nvfp4")
    assert result.code == 0 and "warning" not in result.stderr


@pytest.mark.parametrize("command", ["gate-source", "gate-output", "scan", "plan", "inspect"])
def test_a_hub_id_asks_for_a_download(ptqv, command):
    hub = "meta-llama/Llama-3.1-8B"
    argv = {
        "gate-source": ("gate", NVFP4, "--source", hub),
        "gate-output": ("gate", hub, "--source", SOURCE),
        "scan": ("scan", hub),
        "plan": ("plan", hub, "--qformat", "nvfp4"),
        "inspect": ("inspect", hub, "--gpu", "H100"),
    }[command]
    result = ptqv(*argv)
    assert result.code == 3
    error, fix = error_lines(result.stderr)
    assert error.endswith(f"{hub}: no such directory; it looks like a Hugging Face Hub id")
    assert fix == (
        f"ptqv: fix: download it first (`hf download {hub} --local-dir Llama-3.1-8B`) and pass Llama-3.1-8B"
    )


def test_a_missing_local_path_is_not_taken_for_a_hub_id(ptqv):
    result = ptqv("scan", "tests/no-such-checkpoint")
    assert result.code == 3
    assert error_lines(result.stderr)[0] == "ptqv: error: tests/no-such-checkpoint: no such directory"


def test_qformat_is_case_insensitive(ptqv):
    result = ptqv("gate", NVFP4, "--source", SOURCE, "--qformat", "NVFP4", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["recipe"]["name"] == "nvfp4"


def test_a_mistyped_qformat_suggests_the_closest(ptqv):
    result = ptqv("gate", NVFP4, "--source", SOURCE, "--qformat", "nvfp4_mlp_olny")
    assert result.code == 2 and result.stdout == ""
    error, fix = error_lines(result.stderr)
    assert error == "ptqv: error: unknown ModelOpt qformat 'nvfp4_mlp_olny'"
    assert fix.startswith("ptqv: fix: did you mean 'nvfp4_mlp_only'")


def test_a_qformat_only_hf_ptq_knows_says_so(ptqv):
    from ptq_validators.presets import _hf_ptq
    from ptq_validators.recipes.modelopt import qformat_names

    only_hf_ptq = sorted(set(_hf_ptq()["qformat"]) - set(qformat_names()))
    assert only_hf_ptq, "every hf_ptq.py qformat has gate rules: drop this test"
    result = ptqv("gate", NVFP4, "--source", SOURCE, "--qformat", only_hf_ptq[0])
    assert result.code == 2
    error, fix = error_lines(result.stderr)
    assert error == (
        f"ptqv: error: the gate has no layer rules for ModelOpt qformat {only_hf_ptq[0]!r} (hf_ptq.py accepts it)"
    )
    assert fix == "ptqv: fix: leave --qformat out: the export is then held to its own hf_quant_config.json"


def test_a_mistyped_scheme_suggests_the_closest(ptqv):
    result = ptqv("gate", NVFP4, "--source", SOURCE, "--scheme", "w4a61")
    assert result.code == 2
    error, fix = error_lines(result.stderr)
    assert error == "ptqv: error: unknown llm-compressor scheme 'w4a61'"
    assert "did you mean 'W4A16'" in fix


@pytest.mark.parametrize("flag", ["--qformat", "--scheme", "--ignore", "--plan"])
def test_empty_values_are_rejected(ptqv, flag):
    extra = ("--scheme", "W4A16") if flag == "--ignore" else ()
    result = ptqv("gate", NVFP4, "--source", SOURCE, *extra, flag, "")
    assert result.code == 2 and result.stdout == ""
    assert error_lines(result.stderr)[0] == f"ptqv: error: {flag} is empty"


def test_plan_checks_names_as_the_gate_does(ptqv):
    result = ptqv("plan", SOURCE, "--qformat", "nvpf4")
    assert result.code == 2
    assert error_lines(result.stderr)[0] == "ptqv: error: unknown ModelOpt qformat 'nvpf4'"


def test_scan_of_an_unquantized_source_is_an_inventory(ptqv):
    result = ptqv("scan", SOURCE, "--json")
    assert result.code == 0, result.stdout
    coverage = {c["id"]: c for c in result.json()["checks"]}["coverage"]
    assert coverage["status"] == "pass" and coverage["detail"].startswith("unquantized")


# --- ptqv render: the same names and messages as the gate -----------------------------------


def render(ptqv, tmp_path: Path, kind: str, *flags: str):
    return ptqv("render", kind, "--model", "m", "--out", tmp_path / "ws", "--session", "s1", *flags)


def test_render_refuses_a_mistyped_qformat_as_the_gate_does(ptqv, tmp_path):
    gate = ptqv("gate", NVFP4, "--source", SOURCE, "--qformat", "nvpf4")
    rendered = render(ptqv, tmp_path, "direct", "--qformat", "nvpf4", "--modelopt-repo", str(tmp_path))
    assert gate.code == rendered.code == 2
    (gate_error, gate_fix), (render_error, render_fix) = (
        error_lines(gate.stderr),
        error_lines(rendered.stderr),
    )
    assert gate_error == render_error == "ptqv: error: unknown ModelOpt qformat 'nvpf4'"
    assert gate_fix.startswith("ptqv: fix: did you mean 'nvfp4'")
    assert render_fix.startswith("ptqv: fix: did you mean 'nvfp4'")
    assert not (tmp_path / "ws" / "s1").exists()


def test_render_takes_the_spelling_hf_ptq_accepts(ptqv, tmp_path):
    result = render(ptqv, tmp_path, "direct", "--qformat", "W4A8_AWQ", "--modelopt-repo", str(tmp_path))
    assert result.code == 0, result.stderr
    manifest = json.loads((tmp_path / "ws" / "s1" / "m-w4a8_awq_beta" / "render.json").read_text())
    assert manifest["spec"]["qformat"] == "w4a8_awq_beta"  # the inventory's name for the alias


def test_render_refuses_a_mistyped_recipe_name(ptqv, tmp_path):
    result = render(ptqv, tmp_path, "direct", "--recipe", "general/ptq/fp8_defalt-kv_fp8")
    assert result.code == 2
    error, fix = error_lines(result.stderr)
    assert error == "ptqv: error: unknown ModelOpt recipe 'general/ptq/fp8_defalt-kv_fp8'"
    assert fix.startswith("ptqv: fix: did you mean 'general/ptq/fp8_default-kv_fp8'")


def test_render_refuses_a_mistyped_scheme_and_an_empty_one(ptqv, tmp_path):
    typo = render(ptqv, tmp_path, "llmcompressor", "--scheme", "FP8_DYNAMC")
    assert typo.code == 2 and "did you mean 'FP8_DYNAMIC'" in error_lines(typo.stderr)[1]
    empty = render(ptqv, tmp_path, "llmcompressor", "--scheme", "")
    assert empty.code == 2 and error_lines(empty.stderr)[0] == "ptqv: error: --scheme is empty"


def test_a_spec_file_kv_cache_qformat_typo_names_the_file(ptqv, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(f"model: m\nqformat: nvfp4\nkv_cache_qformat: fp8_csat\nmodelopt_repo: {tmp_path}\n")
    result = ptqv("render", "direct", "--spec", spec, "--out", tmp_path / "ws")
    assert result.code == 3
    error = error_lines(result.stderr)[0]
    assert error.startswith(
        f"ptqv: error: {spec}: key 'kv_cache_qformat': unknown ModelOpt kv_cache_qformat 'fp8_csat' "
        "(did you mean 'fp8_cast'"
    )


def test_rerendering_another_kind_removes_the_stale_scripts(ptqv, tmp_path):
    repo = str(tmp_path)
    first = render(ptqv, tmp_path, "slurm", "--qformat", "fp8", "--partition", "p", "--modelopt-repo", repo)
    assert first.code == 0, first.stderr
    scripts = tmp_path / "ws" / "s1" / "m-fp8" / "scripts"
    assert (scripts / "submit.sh").is_file()
    (scripts / "notes.txt").write_text("mine")  # a file no render wrote
    second = render(ptqv, tmp_path, "direct", "--qformat", "fp8", "--modelopt-repo", repo)
    assert second.code == 0, second.stderr
    manifest = json.loads((scripts.parent / "render.json").read_text())
    assert sorted(p.name for p in scripts.iterdir()) == sorted(
        [Path(f).name for f in manifest["files"]] + ["notes.txt"]
    )
    assert not (scripts / "submit.sh").exists()
    assert f"removed submit.sh: an earlier render wrote it into {scripts}, this one does not" in second.stderr
    shutil.rmtree(tmp_path / "ws")
