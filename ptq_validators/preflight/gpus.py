"""GPU identities: an nvidia-smi name or a short name (``B200``) → compute capability, memory.

The table lives in ``data/gpus.yaml``. Compute capabilities are strings such as ``"9.0"`` on
the wire and ``(9, 0)`` tuples for comparisons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ptq_validators.datafiles import load_data
from ptq_validators.errors import UsageError

GPU_FILE = "gpus.yaml"


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model: ``cc`` like ``"9.0"``, ``memory_gib`` per GPU, ``arch`` in words."""

    name: str
    cc: str
    memory_gib: float
    arch: str

    @property
    def cc_tuple(self) -> tuple[int, int]:
        return cc_tuple(self.cc)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "compute_capability": self.cc,
            "memory_gib": self.memory_gib,
            "arch": self.arch,
            "sm": f"sm{self.cc.replace('.', '')}",
        }


def cc_tuple(cc: str) -> tuple[int, int]:
    """``"10.3"`` → ``(10, 3)``."""
    major, _, minor = cc.partition(".")
    return int(major), int(minor or 0)


def arch_name(cc: str) -> str:
    """The architecture name of a compute capability (``"9.0"`` → ``Hopper``)."""
    archs = load_data("preflight", GPU_FILE)["archs"]
    if cc in archs:
        return archs[cc]["arch"]
    # An unknown minor revision takes the name of the nearest lower one of the same major.
    same_major = [
        key for key in archs if cc_tuple(key)[0] == cc_tuple(cc)[0] and cc_tuple(key) <= cc_tuple(cc)
    ]
    return archs[max(same_major, key=cc_tuple)]["arch"] if same_major else f"sm{cc}"


def match_gpu(name: str) -> GpuSpec | None:
    """The table entry for an nvidia-smi name or a short name, or None when unknown."""
    wanted = name.strip().lower()
    for entry in load_data("preflight", GPU_FILE)["gpus"]:
        if entry["name"].lower() == wanted or re.search(entry["match"], wanted):
            return GpuSpec(entry["name"], entry["cc"], entry["memory_gib"], arch_name(entry["cc"]))
    return None


def resolve_gpu(name: str, *, option: str) -> GpuSpec:
    """Like ``match_gpu`` for a command-line value; an unknown name is a usage error."""
    spec = match_gpu(name)
    if spec is None:
        names = ", ".join(entry["name"] for entry in load_data("preflight", GPU_FILE)["gpus"])
        raise UsageError(f"{option} {name!r}: unknown GPU", hint=f"use one of: {names}")
    return spec
