"""The floor for anything that parses safetensors headers in Python: read every shard's 8-byte
length and its JSON header, and ``json.loads`` it, for each checkpoint directory given.

Standard library only, no checks, no tables: what the gate cannot beat while it parses headers
with Python. ``gate_at_scale.py`` runs it in a fresh process beside each command it times.

    python benchmarks/header_floor.py EXPORT_DIR [SOURCE_DIR ...]
"""

from __future__ import annotations

import json
import os
import struct
import sys


def parse_headers(directory: str) -> int:
    """Parse every shard header of ``directory`` (the index names the shards); the tensor count."""
    index_path = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path, "rb") as handle:
            shards = sorted(set(json.load(handle)["weight_map"].values()))
    else:
        shards = sorted(name for name in os.listdir(directory) if name.endswith(".safetensors"))
    tensors = 0
    for shard in shards:
        with open(os.path.join(directory, shard), "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        tensors += len(header) - ("__metadata__" in header)
    return tensors


def main(directories: list[str]) -> int:
    print(sum(parse_headers(directory) for directory in directories))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
