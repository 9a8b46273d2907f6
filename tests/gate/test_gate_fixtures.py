"""Every real-tool export passes the gate against its source, with the recipe it was made with."""

from __future__ import annotations

import pytest

from tests.ckpt_edit import copy_checkpoint, write_tensors
from tests.conftest import FIXTURES, quantized_fixtures, recipe_args

GOOD = [entry for entry in quantized_fixtures() if not entry.get("expect_fail")]


@pytest.mark.parametrize("entry", GOOD, ids=[e["name"] for e in GOOD])
def test_good_export_passes(ptqv, entry):
    result = ptqv(
        "gate",
        FIXTURES / entry["name"],
        "--source",
        FIXTURES / entry["source"],
        *recipe_args(entry),
        "--json",
    )
    report = result.json()
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert result.code == 0, failed
    assert report["verdict"] == "pass"
    recipe = next(c for c in report["checks"] if c["id"] == "recipe")
    assert recipe["status"] == ("pass" if recipe_args(entry) else "skip"), recipe
    assert report["size"]["ratio"] < 1.0


@pytest.mark.parametrize("entry", GOOD, ids=[e["name"] for e in GOOD])
def test_scan_takes_the_inventory(ptqv, entry):
    result = ptqv("scan", FIXTURES / entry["name"], "--json")
    assert result.code == 0, result.stdout
    inventory = result.json()
    assert inventory["declared"]["family"] == entry["format_family"]
    assert any(p not in ("BF16", "FP16", "FP32") for p in inventory["precision_counts"])


def test_scan_fails_a_declared_quantization_with_no_tensors(ptqv, tmp_path):
    """An unquantized checkpoint passes scan, but only when nothing is declared quantized: an
    NVFP4 declaration over shards that hold no tensors is no inventory to pass."""
    empty = copy_checkpoint(FIXTURES / "modelopt-nvfp4-llama", tmp_path / "empty")
    write_tensors(empty / "model.safetensors", {})
    result = ptqv("scan", empty, "--json")
    coverage = next(c for c in result.json()["checks"] if c["id"] == "coverage")
    assert (result.code, coverage["status"]) == (1, "fail"), coverage
    assert ptqv("scan", FIXTURES / "src-llama").code == 0


def test_json_report_has_the_documented_shape(ptqv):
    result = ptqv(
        "gate",
        FIXTURES / "modelopt-nvfp4-llama",
        "--source",
        FIXTURES / "src-llama",
        "--qformat",
        "nvfp4",
        "--json",
    )
    report = result.json()
    assert report["schema_version"] == 1
    assert set(report) >= {"verdict", "checks", "size", "precision_counts", "layers", "metadata_diffs"}
    assert set(report["size"]) >= {"source_bytes", "output_bytes", "ratio", "bits_per_param"}
    for check in report["checks"]:
        assert set(check) >= {"id", "status", "detail", "measured", "expected"}
        assert check["status"] in ("pass", "warn", "fail", "skip")
    for layer in report["layers"]:
        assert set(layer) >= {"name", "group", "precision", "declared", "bits_per_weight", "status"}
    assert report["precision_counts"] == {"BF16": 2, "NVFP4": 14}
    assert all(d["classification"] in ("expected", "warning", "blocking") for d in report["metadata_diffs"])


def test_markdown_report_opens_with_the_gate_table(ptqv):
    result = ptqv("gate", FIXTURES / "modelopt-fp8-llama", "--source", FIXTURES / "src-llama")
    lines = result.stdout.splitlines()
    assert lines[0] == "**Verdict: PASS** — all 18 checks that apply passed"
    assert lines[1].startswith("Size: quantized layers FP8 static 8.00")
    assert lines[1].endswith("bits/param")
    table = lines.index("| Check | Result |")
    assert lines[table + 2].startswith("| Size vs source | PASS ")
    assert "| Layer precision counts | PASS FP8 static 14, BF16 2 |" in lines
    assert any(line.startswith("| Skipped (") for line in lines[table:])


def test_wrong_recipe_claim_fails_on_zero_coverage(ptqv):
    # nvfp4_mlp_only leaves attention in BF16; claiming plain nvfp4 targets attention too.
    result = ptqv(
        "gate",
        FIXTURES / "modelopt-nvfp4mlp-moe",
        "--source",
        FIXTURES / "src-moe",
        "--qformat",
        "nvfp4",
        "--json",
    )
    assert result.code == 1
    recipe = next(c for c in result.json()["checks"] if c["id"] == "recipe")
    assert recipe["status"] == "fail"
    assert recipe["measured"]["attention"] == {"targeted": 8, "covered": 0}
    assert (
        "group attention: targeted by the recipe, but none of its 8 layers is stored as intended"
        in recipe["details"]
    )


def test_scoped_recipe_claim_passes(ptqv):
    result = ptqv(
        "gate",
        FIXTURES / "modelopt-nvfp4mlp-moe",
        "--source",
        FIXTURES / "src-moe",
        "--qformat",
        "nvfp4_mlp_only",
        "--json",
    )
    recipe = next(c for c in result.json()["checks"] if c["id"] == "recipe")
    assert result.code == 0 and recipe["status"] == "pass", recipe
    assert recipe["measured"]["experts"]["covered"] == recipe["measured"]["experts"]["targeted"] > 0


BROKEN = [entry for entry in quantized_fixtures() if entry.get("expect_fail")]


@pytest.mark.parametrize("entry", BROKEN, ids=[e["name"] for e in BROKEN])
def test_real_tool_failure_is_caught(ptqv, entry):
    expected = entry["expect_fail"]
    result = ptqv(
        "gate",
        FIXTURES / entry["name"],
        "--source",
        FIXTURES / entry["source"],
        *recipe_args(entry),
        "--json",
    )
    report = result.json()
    assert result.code == 1
    check = next(c for c in report["checks"] if c["id"] == expected["check"])
    assert check["status"] == "fail"
    layer = next(row for row in report["layers"] if row["name"] == expected["layer"])
    assert layer["status"] == expected["status"]
