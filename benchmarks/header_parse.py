"""Which JSON decoder should the header reader's fast path use? Decoders and the reader, timed.

Writes the synthetic DeepSeek-V3 671B ModelOpt NVFP4 export of ``synthetic.py`` (about 180k
tensors in sparse shards) to a temporary directory, reads every shard's header bytes into memory
once, then times each decoder over all of them in this one process (best of ``--repeat``, the
cyclic garbage collector paused as ``ptqv gate`` pauses it):

* ``json``: ``json.loads`` into plain dicts, the standard-library floor;
* ``json pairs``: ``json.loads(..., object_pairs_hook=tuple)``, the exact path's decode
  (duplicate keys stay visible, an empty object is told from an empty array);
* ``orjson`` and ``msgspec``: ``orjson.loads`` and ``msgspec.json.decode`` into plain dicts, when
  installed (both keep the last of duplicate keys silently);
* ``orjson + type checks``: plain dicts are not yet checked: the types and signs every entry
  must have, checked a whole list at a time (the least a fast path on plain dicts must add);
* ``msgspec typed``: ``msgspec`` decoding into the reader's typed entries, which checks those
  types and signs in C and yields shape tuples;
* ``reader fast path``, ``reader exact path`` and ``reader``: ``parse_header_fast``,
  ``parse_header_exact`` and ``parse_header`` (decode plus every rule; one layout cache per run).

    python benchmarks/header_parse.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import operator
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
import synthetic as syn  # noqa: E402

from ptq_validators.io.safetensors import (  # noqa: E402
    DTYPE_BITS,
    _decode_entries,
    parse_header,
    parse_header_exact,
    parse_header_fast,
)


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


def decoders() -> dict[str, Callable[[bytes, int, dict[Any, Any]], Any]]:
    found: dict[str, Callable[[bytes, int, dict[Any, Any]], Any]] = {
        "json": lambda raw, size, layouts: json.loads(raw),
        "json pairs": lambda raw, size, layouts: json.loads(raw.decode("utf-8"), object_pairs_hook=tuple),
    }
    try:
        import orjson

        found["orjson"] = lambda raw, size, layouts: orjson.loads(raw)
        found["orjson + type checks"] = lambda raw, size, layouts: checked(orjson.loads(raw))
    except ImportError:
        pass
    try:
        import msgspec

        decoder = msgspec.json.Decoder()
        found["msgspec"] = lambda raw, size, layouts: decoder.decode(raw)
    except ImportError:
        pass
    found["msgspec typed"] = lambda raw, size, layouts: _decode_entries(
        raw.replace(b'"__metadata__":{"format":"pt"},', b"", 1)
    )
    found["reader fast path"] = lambda raw, size, layouts: parse_header_fast(raw, size, "shard", layouts)
    found["reader exact path"] = lambda raw, size, layouts: parse_header_exact(raw, size, "shard", layouts)
    found["reader"] = lambda raw, size, layouts: parse_header(raw, size, "shard", layouts)
    return found


_GET = [operator.itemgetter(field) for field in ("dtype", "shape", "data_offsets")]


def checked(header: dict[str, Any]) -> bool:
    """What typed decoding checks, on plain dicts: entries of exactly the three fields, a known
    dtype, arrays of non-negative integers (no bools, no floats); shapes as tuples."""
    header.pop("__metadata__", None)
    entries = list(header.values())
    if set(map(type, entries)) != {dict} or set(map(len, entries)) != {3}:
        return False
    dtypes, shapes, offsets = (list(map(get, entries)) for get in _GET)
    dims = list(chain.from_iterable(shapes))
    numbers = list(chain.from_iterable(offsets))
    return (
        set(dtypes) <= DTYPE_BITS.keys()
        and set(map(type, shapes)) == set(map(type, offsets)) == {list}
        and set(map(len, offsets)) == {2}
        and set(map(type, dims)) | set(map(type, numbers)) <= {int}
        and min(dims, default=0) >= 0
        and min(numbers) >= 0
        and len(list(map(tuple, shapes))) == len(entries)
    )


def best_of(
    repeat: int, decode: Callable[[bytes, int, dict[Any, Any]], Any], shards: list[tuple[bytes, int]]
) -> float:
    times = []
    gc.disable()
    for _ in range(repeat):
        layouts: dict[Any, Any] = {}
        start = time.perf_counter()
        for raw, size in shards:
            decode(raw, size, layouts)
        times.append(time.perf_counter() - start)
    gc.enable()
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
