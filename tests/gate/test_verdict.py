"""The gate's verdict on real-tool exports: the recipe each was made with passes, every
contradicting recipe fails naming both sides, the report's first line carries the verdict,
and the machine-readable fields (failure_class, summary, exact bits) hold."""

from __future__ import annotations

import json
import math
import shlex
import struct
import subprocess
import sys
from fractions import Fraction

import pytest

from tests.conftest import FIXTURES, ROOT, gate, manifest, quantized_fixtures, recipe_args, verdict_prefix

# fixture, source, contradicting recipe flags, what the recipe row must name (both sides), a
# layer it must name.
CONTRADICTIONS = [
    # a W4A4 recipe on a weight-only export, and the reverse
    ("llmc-nvfp4a16-llama", "src-llama", ["--scheme", "NVFP4"], ["--scheme NVFP4 matches", "NVFP4A16"]),
    (
        "llmc-nvfp4-llama",
        "src-llama",
        ["--scheme", "NVFP4A16"],
        ["--scheme NVFP4A16 matches", "group_0 (NVFP4)"],
    ),
    (
        "modelopt-nvfp4-llama",
        "src-llama",
        ["--qformat", "w4a16_nvfp4"],
        ["quant_algo W4A16_NVFP4", "declares quant_algo NVFP4 (NVFP4)"],
    ),
    # FP8 static vs dynamic
    ("llmc-fp8-llama", "src-llama", ["--scheme", "FP8_DYNAMIC"], ["FP8_PER_CHANNEL dynamic", "FP8 static"]),
    ("llmc-fp8dynamic-llama", "src-llama", ["--scheme", "FP8"], ["(FP8 static)", "FP8_PER_CHANNEL dynamic"]),
    (
        "modelopt-fp8-llama",
        "src-llama",
        ["--qformat", "fp8_pc_pt"],
        ["quant_algo FP8_PER_CHANNEL_PER_TOKEN", "declares quant_algo FP8 (FP8 static)"],
    ),
    # W4A8 vs W4A16 AWQ
    (
        "modelopt-w4a8awq-llama",
        "src-llama",
        ["--qformat", "int4_awq"],
        ["quant_algo W4A16_AWQ", "declares quant_algo W4A8_AWQ (W4A8 FP8 static)"],
    ),
    (
        "modelopt-int4awq-llama",
        "src-llama",
        ["--qformat", "w4a8_awq"],
        ["quant_algo W4A8_AWQ", "declares quant_algo W4A16_AWQ (W4A16)"],
    ),
    # --qformat contradicting quant_algo outright
    (
        "modelopt-nvfp4-llama",
        "src-llama",
        ["--qformat", "fp8"],
        ["quant_algo FP8", "declares quant_algo NVFP4"],
    ),
    # one tool's recipe on the other tool's export
    ("modelopt-nvfp4-llama", "src-llama", ["--scheme", "NVFP4"], ["compressed-tensors recipe", "modelopt"]),
]


def _recipe(checks):
    return checks["recipe"]


@pytest.mark.parametrize(("fixture", "source", "flags", "names"), CONTRADICTIONS)
def test_contradicting_recipe_fails_naming_both_sides(ptqv, fixture, source, flags, names):
    code, checks, report = gate(ptqv, FIXTURES / fixture, source, *flags)
    recipe = _recipe(checks)
    assert code == 1 and recipe["status"] == "fail", recipe
    assert all(name in recipe["details"][0] for name in names), recipe["details"][0]
    # The first MLP projection; in the cross-tool case, where the layers agree with ModelOpt's
    # declaration, the lm_head that llm-compressor's default targets (Linear) would quantize.
    layer = "lm_head" if "modelopt" in names else "model.layers.0.mlp.down_proj"
    assert any(layer in line for line in recipe["details"][1:]), recipe["details"]
    assert report["failure_class"] == "user_config"
    # The layers are as declared: coverage passes, the recipe row alone owns the problem.
    assert checks["coverage"]["status"] == "pass"


def test_mlp_only_recipe_on_a_full_nvfp4_export_is_blocking(ptqv):
    code, checks, report = gate(
        ptqv, FIXTURES / "modelopt-nvfp4-moe", "src-moe", "--qformat", "nvfp4_mlp_only"
    )
    recipe = _recipe(checks)
    assert code == 1 and recipe["status"] == "fail"
    (extra,) = recipe["details"]
    assert extra.startswith(
        "8 layers the recipe leaves unquantized (not enabled by the preset) are stored NVFP4: "
    )
    assert "model.layers.0.self_attn.k_proj" in extra
    assert report["failure_class"] == "coverage"
    code, checks, report = gate(
        ptqv,
        FIXTURES / "modelopt-nvfp4-moe",
        "src-moe",
        "--qformat",
        "nvfp4_mlp_only",
        "--allow-extra-quantization",
    )
    assert code == 0 and _recipe(checks)["status"] == "warn"
    assert report["failure_class"] is None


@pytest.mark.parametrize(
    "entry", [e for e in quantized_fixtures() if e["recipe"].get("scheme")], ids=lambda e: e["name"]
)
def test_scheme_without_ignore_takes_the_declared_ignore_list(ptqv, entry):
    _, checks, _ = gate(
        ptqv, FIXTURES / entry["name"], entry["source"], "--scheme", entry["recipe"]["scheme"]
    )
    recipe = _recipe(checks)
    assert recipe["status"] == "pass", recipe
    assert "ignore list taken from the export's declaration" in recipe["detail"]
    assert "llm-compressor's own default ignores nothing" in recipe["detail"]
    warned = " ".join(
        line for c in checks.values() if c["status"] == "warn" for line in [c["detail"], *c["details"]]
    )
    assert "lm_head" not in warned and ".mlp.gate" not in warned and "router" not in warned


def test_targeted_group_left_unquantized_is_blocking(ptqv):
    # With an explicit ignore list that spares lm_head only, llm-compressor would quantize the
    # routers (they are Linear): the export kept them in BF16, so the recipe as stated failed.
    code, checks, _ = gate(
        ptqv, FIXTURES / "llmc-nvfp4-moe", "src-moe", "--scheme", "NVFP4", "--ignore", "lm_head"
    )
    recipe = _recipe(checks)
    assert code == 1 and recipe["status"] == "fail"
    assert (
        "group router: targeted by the recipe, but none of its 2 layers is stored as intended"
        in recipe["details"]
    )


def test_recipe_that_quantizes_nothing_is_model_unsupported(ptqv):
    code, checks, report = gate(
        ptqv, FIXTURES / "modelopt-nvfp4-llama", "src-llama", "--qformat", "nvfp4_experts_only"
    )
    assert code == 1 and checks["recipe"]["status"] == "fail"
    assert report["failure_class"] == "model_unsupported"


def _every_gate_run():
    for entry in manifest():
        if entry.get("source"):
            yield entry["name"], entry["source"], recipe_args(entry)


@pytest.mark.parametrize(("fixture", "source", "flags"), list(_every_gate_run()), ids=lambda v: str(v))
def test_head_shows_the_verdict_and_failing_ids(fixture, source, flags):
    """The real pipe: `ptqv gate … | head -1`."""
    base = [
        sys.executable,
        "-m",
        "ptq_validators",
        "gate",
        str(FIXTURES / fixture),
        "--source",
        str(FIXTURES / source),
    ]
    report = json.loads(
        subprocess.run([*base, *flags, "--json"], capture_output=True, text=True, cwd=ROOT).stdout
    )
    piped = subprocess.run(
        f"{shlex.join([*base, *flags])} | head -1", shell=True, capture_output=True, text=True, cwd=ROOT
    )
    assert piped.stdout.count("\n") == 1
    assert piped.stdout.startswith(verdict_prefix(report)), piped.stdout
    assert "Traceback" not in piped.stderr


def test_summary_for_a_release_gate(ptqv):
    code, _, report = gate(ptqv, FIXTURES / "modelopt-nvfp4-llama", "src-llama", "--qformat", "nvfp4")
    summary = report["summary"]
    assert code == 0 and report["failure_class"] is None
    assert summary["recipe"] == "nvfp4" and summary["declared"] == "NVFP4"
    assert summary["layers"] == {
        "NVFP4": 14,
        "FP8": 0,
        "INT4": 0,
        "BF16_or_excluded": 2,
        "unexpected_unquantized": 0,
        "declaration_mismatch": 0,
        "other": 0,
    }
    assert summary["source_bytes"] == report["size"]["source_bytes"]
    assert summary["output_bytes"] == report["size"]["output_bytes"]
    assert summary["metadata_diffs"]["blocking"] == 0
    assert report["scheme_counts"] == {"BF16": 2, "NVFP4": 14}


def test_bits_per_param_count_biases_on_both_sides(ptqv):
    """Σ stored bits / Σ source elements, exactly, on a source whose linears carry biases."""
    source = FIXTURES / "src-vlm"
    elements = 0
    biases = 0
    for shard in source.glob("*.safetensors"):  # read here independently of ptqv's reader
        data = shard.read_bytes()
        header = json.loads(data[8 : 8 + struct.unpack("<Q", data[:8])[0]])
        for name, entry in header.items():
            if name != "__metadata__":
                elements += math.prod(entry["shape"])
                biases += math.prod(entry["shape"]) if name.endswith(".bias") else 0
    assert biases > 0  # the fixture is the case the bug hid in
    _, _, report = gate(ptqv, FIXTURES / "modelopt-fp8-vlm", "src-vlm", "--qformat", "fp8")
    size = report["size"]
    assert size["source_parameters"] == elements
    assert Fraction(size["bits_per_param_exact"]) == Fraction(size["output_bytes"] * 8, elements)
    # The BF16 source against itself: exactly 16 bits per parameter, not 16.025.
    _, _, same = gate(ptqv, source, "src-vlm")
    assert Fraction(same["size"]["bits_per_param_exact"]) == 16


def test_json_errors_are_one_document(ptqv, tmp_path):
    result = ptqv("gate", tmp_path / "absent", "--source", FIXTURES / "src-llama", "--json")
    assert result.code == 3
    error = result.json()
    assert error["kind"] == "ptqv-error" and error["exit_code"] == 3
    assert error["file"] == str(tmp_path / "absent")
    assert error["message"].endswith("no such directory") and error["fix"]
    assert "ptqv: error:" in result.stderr
