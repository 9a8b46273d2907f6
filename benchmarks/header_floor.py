"""The floor for anything that parses safetensors headers in Python: read every shard's 8-byte
length and its JSON header, and ``json.loads`` it, for each checkpoint directory given.

Standard library only, no checks, no tables: what the gate cannot beat while it parses headers
with Python. ``gate_at_scale.py`` runs it in a fresh process beside each command it times.
The shards are the directory's ``*.safetensors`` files, as the speed issue measured its floor
(0.8 s and 17 MiB for the 671B pair): the index is not a header, and ``json.loads`` of a 671B
export's 180k-entry index alone costs a third of its headers' time and most of the floor's
memory. ``--index`` also loads each index (the gate reads and checks them), for comparison.

    python benchmarks/header_floor.py [--index] EXPORT_DIR [SOURCE_DIR ...]
"""

from __future__ import annotations

import json
import os
import struct
import sys

INDEX_FILE = "model.safetensors.index.json"


def parse_headers(directory: str, *, with_index: bool = False) -> int:
    """Parse every shard header of ``directory`` (and its index, ``with_index``); the tensor
    count."""
    if with_index and os.path.exists(os.path.join(directory, INDEX_FILE)):
        with open(os.path.join(directory, INDEX_FILE), "rb") as handle:
            json.load(handle)
    shards = sorted(name for name in os.listdir(directory) if name.endswith(".safetensors"))
    tensors = 0
    for shard in shards:
        with open(os.path.join(directory, shard), "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        tensors += len(header) - ("__metadata__" in header)
    return tensors


def main(arguments: list[str]) -> int:
    # no argparse: its import would be part of the floor this script measures
    with_index = "--index" in arguments
    directories = [argument for argument in arguments if argument != "--index"]
    if not directories or any(argument.startswith("-") for argument in directories):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 0 if {"-h", "--help"} & set(arguments) else 2
    for directory in directories:
        if not os.path.isdir(directory):
            print(f"header_floor.py: {directory}: not a checkpoint directory", file=sys.stderr)
            return 2
    print(sum(parse_headers(directory, with_index=with_index) for directory in directories))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
