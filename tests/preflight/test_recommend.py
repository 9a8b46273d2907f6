"""Format recommendation: the deploy GPU decides, the calibration GPU only has to calibrate."""

from __future__ import annotations

import pytest

from ptq_validators.errors import UsageError
from ptq_validators.preflight.gpus import match_gpu, resolve_gpu
from ptq_validators.preflight.recommend import recommend, serving_finding


@pytest.mark.parametrize(
    ("smi_name", "short", "cc"),
    [
        ("NVIDIA A10", "A10", "8.6"),
        ("NVIDIA A100-SXM4-80GB", "A100", "8.0"),
        ("NVIDIA A100-PCIE-40GB", "A100-40GB", "8.0"),
        ("NVIDIA L40S", "L40S", "8.9"),
        ("NVIDIA H100 NVL", "H100-NVL", "9.0"),
        ("NVIDIA GH200 480GB", "GH200", "9.0"),
        ("NVIDIA B200", "B200", "10.0"),
        ("NVIDIA GB200", "GB200", "10.0"),
        ("NVIDIA B300 SXM6 AC", "B300", "10.3"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX-PRO-6000", "12.0"),
        ("b200", "B200", "10.0"),
    ],
)
def test_gpu_names(smi_name, short, cc):
    spec = match_gpu(smi_name)
    assert (spec.name, spec.cc) == (short, cc)


@pytest.mark.parametrize(
    ("calib", "deploy", "moe", "qformat", "scheme"),
    [
        ("A100", None, False, "int4_awq", "W4A16"),
        ("L40S", None, False, "fp8", "FP8_DYNAMIC"),
        ("H100", None, True, "fp8", "FP8_DYNAMIC"),
        ("H100", "B200", True, "nvfp4_experts_only", "NVFP4"),
        ("H100", "B200", False, "nvfp4_mlp_only", "NVFP4"),
        ("B200", "H100", False, "fp8", "FP8_DYNAMIC"),
        ("B300", None, False, "nvfp4_mlp_only", "NVFP4"),
        ("T4", None, False, "int8_smoothquant", "W8A8"),
    ],
)
def test_recommendation_follows_the_deploy_gpu(calib, deploy, moe, qformat, scheme):
    rec = recommend(match_gpu(calib), match_gpu(deploy) if deploy else None, moe=moe)
    assert (rec["modelopt_qformat"], rec["llmc_scheme"]) == (qformat, scheme)


def test_blackwell_workstation_says_verify_the_serving_stack():
    rec = recommend(match_gpu("RTX 5090"), None, moe=False)
    assert rec["modelopt_qformat"] == "nvfp4_mlp_only"
    assert rec["fallback_qformat"] == "fp8"
    assert "Marlin" in rec["note"]


def test_nvfp4_cannot_be_served_on_hopper_but_fp8_can():
    blocked = serving_finding("NVFP4", match_gpu("H200"))
    assert blocked.id == "format-needs-newer-gpu" and blocked.status == "fail"
    assert "10.0" in blocked.summary
    assert serving_finding("FP8", match_gpu("H200")) is None
    assert serving_finding("FP8", match_gpu("A100")).status == "fail"
    assert serving_finding("INT4", match_gpu("T4")) is None
    assert serving_finding("BF16", match_gpu("T4")) is None


def test_unknown_gpu_name_lists_the_known_ones():
    with pytest.raises(UsageError) as exc:
        resolve_gpu("Voodoo5", option="--deploy-gpu")
    assert exc.value.message == "--deploy-gpu 'Voodoo5': unknown GPU"
    assert "B200" in exc.value.hint
