"""Does a compiled JSON library beat ``json.loads`` on the header-parsing path?

Writes the synthetic DeepSeek-V3 671B ModelOpt NVFP4 export of ``synthetic.py`` (about 180k
tensors in sparse shards) to a temporary directory, reads every shard's header bytes into memory
once, then times each decoder over all of them in this one process (best of ``--repeat``):

* ``json``: ``json.loads`` into plain dicts, the standard-library floor;
* ``json pairs``: ``json.loads(..., object_pairs_hook=tuple)``, the decode the reader does
  (duplicate keys stay visible, an empty object is told from an empty array);
* ``orjson`` and ``msgspec``: ``orjson.loads`` and ``msgspec.json.decode`` into plain dicts, when
  installed (both keep the last of duplicate keys silently, so the reader could not use them
  as they are);
* ``reader``: ``ptq_validators.io.safetensors.parse_header``, decode plus every rule.

    python benchmarks/header_parse.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
import synthetic as syn  # noqa: E402

from ptq_validators.io.safetensors import parse_header  # noqa: E402


def headers(directory: Path) -> list[tuple[bytes, int]]:
    """(header bytes, file size) of every shard of the synthetic NVFP4 export in ``directory``."""
    tensors = syn.model_tensors(syn.DEEPSEEK_V3, "modelopt_nvfp4", lambda module: False)
    syn.write_checkpoint(directory, syn.DEEPSEEK_V3, tensors)
    found = []
    for path in sorted(directory.glob("*.safetensors")):
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            found.append((handle.read(length), path.stat().st_size))
    return found


def decoders() -> dict[str, Callable[[bytes, int], Any]]:
    found: dict[str, Callable[[bytes, int], Any]] = {
        "json": lambda raw, size: json.loads(raw),
        "json pairs": lambda raw, size: json.loads(raw.decode("utf-8"), object_pairs_hook=tuple),
    }
    try:
        import orjson

        found["orjson"] = lambda raw, size: orjson.loads(raw)
    except ImportError:
        pass
    try:
        import msgspec

        decoder = msgspec.json.Decoder()
        found["msgspec"] = lambda raw, size: decoder.decode(raw)
    except ImportError:
        pass
    found["reader"] = lambda raw, size: parse_header(raw, size, "shard")
    return found


def best_of(repeat: int, decode: Callable[[bytes, int], Any], shards: list[tuple[bytes, int]]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for raw, size in shards:
            decode(raw, size)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptqv-header-parse-") as temp:
        shards = headers(Path(temp))
    tensor_count = sum(len(json.loads(raw)) - 1 for raw, _ in shards)
    megabytes = sum(len(raw) for raw, _ in shards) / 1e6
    results = {name: best_of(args.repeat, decode, shards) for name, decode in decoders().items()}
    if args.json:
        print(
            json.dumps(
                {"shards": len(shards), "tensors": tensor_count, "header_mb": megabytes, "seconds": results}
            )
        )
        return
    print(
        f"{len(shards)} shards, {tensor_count} tensors, {megabytes:.1f} MB of headers; best of {args.repeat}\n"
    )
    print("| decoder | seconds | vs json pairs |")
    print("|---|---:|---:|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.3f} | {seconds / results['json pairs']:.2f} |")


if __name__ == "__main__":
    main()
