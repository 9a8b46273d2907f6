"""`ptqv env`: detection on this machine, and with stand-in tools where no real one exists.

This machine has no NVIDIA GPU, so ``nvidia-smi`` is always a stand-in script printing what a
real one prints. ``sinfo``/``srun`` are real when the loopback SLURM of the shared test
infrastructure is installed; the stand-in is used only when they are not on PATH.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ptq_validators.cli import main
from ptq_validators.preflight.env import detect_env
from ptq_validators.preflight.gpus import match_gpu
from tests.infra.services import slurm_infra  # noqa: F401  (a fixture, asked for by name)
from tests.preflight.conftest import write_stand_in

H100_SMI = 'echo "0, NVIDIA H100 80GB HBM3, 81559, 9.0"\necho "1, NVIDIA H100 80GB HBM3, 81559, 9.0"\n'
# A driver too old for compute_cap rejects the field; the name table fills it in.
OLD_DRIVER_SMI = """case "$1" in
  *compute_cap*) echo 'Field "compute_cap" is not a valid field to query.' >&2; exit 2;;
  *) echo "0, NVIDIA A100-SXM4-40GB, 40536";;
esac
"""


def test_bare_machine_reports_what_is_missing(bare_environ, tmp_path):
    report = detect_env(environ=bare_environ, cwd=tmp_path, home=Path(bare_environ["HOME"]))
    assert report["gpus"] == []
    assert "nvidia-smi not found" in report["gpu_note"]
    assert report["slurm"]["available"] is False
    assert report["docker"]["path"] is None
    assert report["run_mode"]["mode"] == "none"
    assert report["recommendation"]["modelopt_qformat"] is None
    assert report["hf_token_set"] is False
    ids = {f["id"] for f in report["findings"]}
    assert {"no-local-gpu", "no-hf-token"} <= ids
    json.dumps(report)  # JSON-ready


def test_gpus_from_nvidia_smi_stand_in(bare_environ, tmp_path):
    write_stand_in(Path(bare_environ["PATH"]), "nvidia-smi", H100_SMI)
    report = detect_env(environ=bare_environ, cwd=tmp_path, home=tmp_path, deploy_gpu=match_gpu("B200"))
    assert [g["name"] for g in report["gpus"]] == ["NVIDIA H100 80GB HBM3"] * 2
    assert report["gpus"][0]["compute_capability"] == "9.0"
    assert report["gpus"][0]["arch"] == "Hopper"
    assert report["run_mode"]["mode"] == "local"
    rec = report["recommendation"]
    assert rec["decided_by"] == "deploy_gpu"
    assert "nvfp4" in rec["modelopt_qformat"]
    assert rec["calibration_gpu"]["name"] == "NVIDIA H100 80GB HBM3"


def test_hopper_without_deploy_gpu_recommends_fp8_and_says_why_not_nvfp4(bare_environ, tmp_path):
    write_stand_in(Path(bare_environ["PATH"]), "nvidia-smi", H100_SMI)
    rec = detect_env(environ=bare_environ, cwd=tmp_path, home=tmp_path)["recommendation"]
    assert rec["modelopt_qformat"] == "fp8"
    assert [f["id"] for f in rec["findings"]] == ["nvfp4-needs-blackwell-to-serve"]


def test_old_driver_without_compute_cap_uses_the_name_table(bare_environ, tmp_path):
    write_stand_in(Path(bare_environ["PATH"]), "nvidia-smi", OLD_DRIVER_SMI)
    gpus = detect_env(environ=bare_environ, cwd=tmp_path, home=tmp_path)["gpus"]
    assert gpus == [
        {
            "index": 0,
            "name": "NVIDIA A100-SXM4-40GB",
            "memory_mib": 40536.0,
            "compute_capability": "8.0",
            "arch": "Ampere (data centre)",
        }
    ]


def test_failing_nvidia_smi_is_reported_not_raised(bare_environ, tmp_path):
    write_stand_in(
        Path(bare_environ["PATH"]),
        "nvidia-smi",
        'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2\nexit 9\n',
    )
    report = detect_env(environ=bare_environ, cwd=tmp_path, home=tmp_path)
    assert report["gpus"] == []
    assert report["gpu_note"].startswith("nvidia-smi failed (exit 9)")


def _slurm_environ(bare_environ: dict[str, str]) -> dict[str, str]:
    """Real SLURM client tools when installed; otherwise stand-ins (this is said in the test id)."""
    real = shutil.which("sinfo")
    if real:
        bare_environ["PATH"] += ":" + str(Path(real).parent)
        return bare_environ
    bin_dir = Path(bare_environ["PATH"])
    write_stand_in(
        bin_dir, "sinfo", 'echo "batch*|up|4:00:00|16|gpu:h100:8(S:0-1)"\necho "cpu|up|1-00:00:00|4|(null)"\n'
    )
    write_stand_in(bin_dir, "sbatch", "exit 0\n")
    write_stand_in(bin_dir, "srun", 'echo "Usage: srun [OPTIONS...] executable [args...]"\n')
    return bare_environ


def test_slurm_partitions_and_gpu_gres(bare_environ, tmp_path):
    environ = _slurm_environ(bare_environ)
    slurm = detect_env(environ=environ, cwd=tmp_path, home=tmp_path)["slurm"]
    assert slurm["available"] is True
    if shutil.which("sinfo") is None:  # stand-in output
        assert slurm["partitions"] == [
            {
                "name": "batch",
                "default": True,
                "state": "up",
                "timelimit": "4:00:00",
                "nodes": 16,
                "gpu_gres": ["gpu:h100:8(S:0-1)"],
            },
            {
                "name": "cpu",
                "default": False,
                "state": "up",
                "timelimit": "1-00:00:00",
                "nodes": 4,
                "gpu_gres": [],
            },
        ]
        assert slurm["pyxis"] is False
    else:  # the real loopback SLURM: either partitions or the reason sinfo failed
        assert slurm["partitions"] or slurm["error"]


def test_no_gpu_but_slurm_means_submit_a_job(bare_environ, tmp_path, request):
    if shutil.which("sinfo"):  # the real client tools answer only when the loopback SLURM is up
        request.getfixturevalue("slurm_infra")
    environ = _slurm_environ(bare_environ)
    assert detect_env(environ=environ, cwd=tmp_path, home=tmp_path)["run_mode"]["mode"] == "slurm"


def test_clusters_yaml_lookup_order_and_remote_mode(bare_environ, tmp_path):
    home = Path(bare_environ["HOME"])
    project = tmp_path / "project" / "sub"
    project.mkdir(parents=True)
    (tmp_path / "project" / ".agents").mkdir()
    (tmp_path / "project" / ".agents" / "clusters.yaml").write_text(
        "clusters:\n  eos:\n    login_node: eos-login\n    workspace: /lustre/me\n"
        "    gpu_type: H100\ndefault_cluster: eos\n",
        encoding="utf-8",
    )
    (home / ".config" / "modelopt").mkdir(parents=True)
    (home / ".config" / "modelopt" / "clusters.yaml").write_text("clusters: [oops\n", encoding="utf-8")
    report = detect_env(environ=bare_environ, cwd=project, home=home)
    configs = report["cluster_configs"]
    assert [Path(c["path"]).parent.name for c in configs] == ["modelopt", ".agents"]
    assert "not valid YAML" in configs[0]["error"]
    assert configs[1]["clusters"][0] == {
        "name": "eos",
        "login_node": "eos-login",
        "gpu_type": "H100",
        "env_type": None,
    }
    assert report["run_mode"]["mode"] == "remote"
    assert "clusters-yaml-invalid" in {f["id"] for f in report["findings"]}


def test_hf_token_presence_without_its_value(bare_environ, tmp_path, capsys, monkeypatch):
    secret = "hf_do_not_print_me_123"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("PIP_CONSTRAINT", "/etc/pip/constraint.txt")
    with pytest.raises(SystemExit) as exc:
        main(["env", "--json"])
    assert exc.value.code == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["hf_token_set"] is True
    assert report["pip_constraint"] == "/etc/pip/constraint.txt"
    assert "pip-constraint" in {f["id"] for f in report["findings"]}
    assert secret not in out.out + out.err


def test_modelopt_checkout_and_launcher(bare_environ, tmp_path):
    checkout = tmp_path / "Model-Optimizer"
    (checkout / "examples" / "hf_ptq").mkdir(parents=True)
    (checkout / "examples" / "hf_ptq" / "hf_ptq.py").write_text("", encoding="utf-8")
    (checkout / "tools" / "launcher").mkdir(parents=True)
    (checkout / "tools" / "launcher" / "launch.py").write_text("", encoding="utf-8")
    found = detect_env(environ=bare_environ, cwd=tmp_path, home=tmp_path)["modelopt_checkout"]
    assert found == {
        "path": str(checkout),
        "hf_ptq": str(checkout / "examples/hf_ptq/hf_ptq.py"),
        "launcher": str(checkout / "tools/launcher/launch.py"),
    }


def test_packages_come_from_metadata():
    versions = detect_env()["packages"]
    import importlib.metadata

    assert versions["transformers"] == importlib.metadata.version("transformers")
    assert versions["nvidia-modelopt"] is None or isinstance(versions["nvidia-modelopt"], str)


def test_cli_text_and_unknown_gpu(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["env", "--gpu", "H100", "--deploy-gpu", "RTX 5090"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "format (for RTX-5090, sm120 Blackwell (workstation))" in out
    with pytest.raises(SystemExit) as exc:
        main(["env", "--deploy-gpu", "X9000"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ptqv: error: --deploy-gpu 'X9000': unknown GPU\nptqv: fix: use one of:")
