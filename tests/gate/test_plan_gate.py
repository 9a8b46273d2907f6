"""A plan saved before calibration (`ptqv plan --out`) is the gate's expectation after export."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """Plans for src-moe made by the real `ptqv plan` (meta-device module tree)."""
    from ptq_validators.cli import main

    out = tmp_path_factory.mktemp("plans")
    made = {}
    for qformat in ("nvfp4", "nvfp4_mlp_only"):
        path = out / f"{qformat}.json"
        with pytest.raises(SystemExit) as done:
            main(["plan", str(FIXTURES / "src-moe"), "--qformat", qformat, "--out", str(path), "--json"])
        assert done.value.code == 0
        made[qformat] = path
    return made


def test_plan_and_export_agree(ptqv, plans):
    result = ptqv(
        "gate",
        FIXTURES / "modelopt-nvfp4-moe",
        "--source",
        FIXTURES / "src-moe",
        "--plan",
        plans["nvfp4"],
        "--json",
    )
    check = next(c for c in result.json()["checks"] if c["id"] == "plan")
    assert result.code == 0 and check["status"] == "pass", check
    assert check["measured"]["experts"] == {"targeted": 24, "covered": 24}


def test_export_that_departs_from_the_plan_fails(ptqv, plans):
    # The plan keeps attention in BF16; the export quantized it.
    result = ptqv(
        "gate",
        FIXTURES / "modelopt-nvfp4-moe",
        "--source",
        FIXTURES / "src-moe",
        "--plan",
        plans["nvfp4_mlp_only"],
        "--json",
    )
    check = next(c for c in result.json()["checks"] if c["id"] == "plan")
    assert result.code == 1 and check["status"] == "fail"
    (extra,) = check["details"]
    assert extra.startswith("8 layers the plan leaves unquantized are stored NVFP4: "), extra
    assert "model.layers.0.self_attn.q_proj" in extra


def test_scoped_export_matches_its_scoped_plan(ptqv, plans):
    result = ptqv(
        "gate",
        FIXTURES / "modelopt-nvfp4mlp-moe",
        "--source",
        FIXTURES / "src-moe",
        "--plan",
        plans["nvfp4_mlp_only"],
        "--json",
    )
    assert result.code == 0, [c for c in result.json()["checks"] if c["status"] == "fail"]


def test_a_file_that_is_not_a_plan_is_bad_input(ptqv, tmp_path):
    bogus = tmp_path / "plan.json"
    bogus.write_text(json.dumps({"kind": "something-else"}))
    result = ptqv("gate", FIXTURES / "modelopt-nvfp4-moe", "--source", FIXTURES / "src-moe", "--plan", bogus)
    assert result.code == 3
    assert "not a ptqv plan (expected kind 'ptqv-plan' with 'layers')" in result.stderr


def test_a_plan_with_no_layers_is_bad_input(ptqv, tmp_path, plans):
    empty = tmp_path / "plan.json"
    empty.write_text(json.dumps({**json.loads(plans["nvfp4"].read_text()), "layers": []}))
    result = ptqv("gate", FIXTURES / "modelopt-nvfp4-moe", "--source", FIXTURES / "src-moe", "--plan", empty)
    assert result.code == 3, result.stdout
    assert "plan has no layers" in result.stderr


def test_a_plan_for_another_model_names_both_sides_in_plan_words(ptqv, tmp_path):
    llama_plan = tmp_path / "llama.json"
    assert ptqv("plan", FIXTURES / "src-llama", "--qformat", "nvfp4", "--out", llama_plan).code == 0
    result = ptqv(
        "gate",
        FIXTURES / "modelopt-nvfp4-moe",
        "--source",
        FIXTURES / "src-moe",
        "--plan",
        llama_plan,
        "--json",
    )
    check = next(c for c in result.json()["checks"] if c["id"] == "plan")
    assert result.code == 1 and check["status"] == "fail"
    assert not any("recipe" in line for line in check["details"]), check["details"]
    assert "not in the plan" in check["detail"], check["detail"]
    assert any("in the export but not in the plan" in line for line in check["details"]), check["details"]
