"""`ptqv gate … --deploy` and `--canary` on the real-tool fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptq_validators.canary.completion import Completion
from ptq_validators.canary.prompts import PROMPTS
from tests.canary.conftest import good, record
from tests.canary.test_compat import REFUSED, SERVED
from tests.conftest import FIXTURES, manifest

SOURCES = {e["name"]: e["source"] for e in manifest()}


def gate(ptqv, name: str, *args: str | Path):
    source = SOURCES[name] or name
    return ptqv("gate", FIXTURES / name, "--source", FIXTURES / source, *args, "--json")


def row(document: dict, check_id: str) -> dict:
    return next(c for c in document["checks"] if c["id"] == check_id)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_deploy_vllm_fails_what_vllm_refuses(ptqv, name: str) -> None:
    result = gate(ptqv, name, "--deploy", "vllm")
    deploy = row(result.json(), "deploy")
    assert result.code == 1 and deploy["status"] == "fail"
    assert REFUSED[name] in deploy["detail"] and "Fix:" in deploy["detail"]


@pytest.mark.parametrize("name", SERVED)
def test_deploy_vllm_passes_what_vllm_serves(ptqv, name: str) -> None:
    assert row(gate(ptqv, name, "--deploy", "vllm@0.32.0").json(), "deploy")["status"] == "pass"


def test_without_options_the_rows_are_skipped(ptqv) -> None:
    document = gate(ptqv, "llmc-w4a16-llama").json()
    assert row(document, "deploy")["status"] == "skip" and row(document, "canary")["status"] == "skip"
    assert document["serving"] is None


def test_unsupported_engine_is_a_usage_error(ptqv) -> None:
    result = ptqv(
        "gate", FIXTURES / "llmc-w4a16-llama", "--source", FIXTURES / "src-llama", "--deploy", "trtllm"
    )
    assert result.code == 2 and "supported: vllm@0.32" in result.stderr


def test_canary_record_adds_the_row_and_the_inventory(ptqv, tmp_path: Path) -> None:
    path = tmp_path / "canary.json"
    path.write_text(json.dumps(record([good(p.id) for p in PROMPTS])))
    document = gate(ptqv, "llmc-w4a16-llama", "--canary", path).json()
    assert row(document, "canary")["status"] == "pass"
    assert document["serving"]["name"] == "vllm" and document["serving"]["patches"] == "none"
    markdown = ptqv(
        "gate", FIXTURES / "llmc-w4a16-llama", "--source", FIXTURES / "src-llama", "--canary", path
    )
    assert (
        "Serving canary: name vllm, version 0.32.0" in markdown.stdout and "patches none" in markdown.stdout
    )


def test_a_failed_canary_fails_the_gate(ptqv, tmp_path: Path) -> None:
    path = tmp_path / "canary.json"
    path.write_text(json.dumps(record([Completion(p.id, error="HTTP 400: Out of range") for p in PROMPTS])))
    result = gate(ptqv, "llmc-w4a16-llama", "--canary", path)
    assert result.code == 1 and "Out of range" in row(result.json(), "canary")["detail"]


def test_deploy_tp_and_gpu(ptqv) -> None:
    tp = row(gate(ptqv, "llmc-fp8block-llama", "--deploy", "vllm", "--deploy-tp", "2").json(), "deploy")
    where = " ".join(tp["details"])
    assert (
        "input_size_per_partition = 64" in where and "mlp.down_proj" not in where
    )  # row-parallel output whole
    old_gpu = row(
        gate(ptqv, "modelopt-fp8-llama", "--deploy", "vllm", "--deploy-gpu", "sm75").json(), "deploy"
    )
    assert (
        old_gpu["status"] == "fail" and "Minimum capability: 80. Current capability: 75." in old_gpu["detail"]
    )
    assert (
        row(gate(ptqv, "modelopt-fp8-llama", "--deploy", "vllm", "--deploy-gpu", "9.0").json(), "deploy")[
            "status"
        ]
        == "pass"
    )
    bad = ptqv("gate", FIXTURES / "src-llama", "--source", FIXTURES / "src-llama", "--deploy", "vllm",
               "--deploy-gpu", "hopper")  # fmt: skip
    assert bad.code == 2 and "compute capability" in bad.stderr
