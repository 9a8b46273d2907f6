"""Byte-level editing of real checkpoints, to derive broken variants from good tool outputs.

Tensors are moved as raw bytes (no numpy, no torch): a variant keeps every byte the real tool
wrote except the ones a test changes on purpose.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptq_validators.io.safetensors import read_header
from ptq_validators.io.source import LocalSource


@dataclass
class RawTensor:
    dtype: str
    shape: tuple[int, ...]
    data: bytes


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def read_tensors(path: Path) -> tuple[dict[str, RawTensor], dict[str, str] | None]:
    """All tensors of one safetensors file as raw bytes, plus its ``__metadata__``."""
    header = read_header(LocalSource(path.parent), path.name)
    blob = path.read_bytes()
    base = header.data_offset
    tensors = {
        name: RawTensor(info.dtype, info.shape, blob[base + info.begin : base + info.end])
        for name, info in header.tensors.items()
    }
    return tensors, header.metadata


def write_tensors(path: Path, tensors: dict[str, RawTensor], metadata: dict[str, str] | None = None) -> None:
    """Write a valid safetensors file (header padded to 8 bytes, offsets contiguous)."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name]
        header[name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(tensor.data)],
        }
        offset += len(tensor.data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 8) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)))
        handle.write(text)
        for name in sorted(tensors):
            handle.write(tensors[name].data)


def edit_tensors(
    directory: Path, edit: Callable[[dict[str, RawTensor]], None], file: str = "model.safetensors"
) -> None:
    """Apply ``edit`` to the tensors of one shard in place."""
    tensors, metadata = read_tensors(directory / file)
    edit(tensors)
    write_tensors(directory / file, tensors, metadata)


def dequantize_layer(directory: Path, source: Path, layer: str) -> None:
    """Replace every tensor of ``layer`` in the export with the source's float weight (a layer
    the quantizer skipped), keeping every other byte of the export."""
    source_tensors, _ = read_tensors(source / "model.safetensors")

    def edit(tensors: dict[str, RawTensor]) -> None:
        for name in [n for n in tensors if n.rpartition(".")[0] == layer]:
            del tensors[name]
        tensors[f"{layer}.weight"] = source_tensors[f"{layer}.weight"]

    edit_tensors(directory, edit)


def edit_json(directory: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = directory / name
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document, indent=2))


def shard(directory: Path, parts: int = 2) -> dict[str, str]:
    """Split a single-file checkpoint into ``parts`` shards with an index; returns weight_map."""
    tensors, metadata = read_tensors(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    names = sorted(tensors)
    weight_map: dict[str, str] = {}
    for i in range(parts):
        shard_name = f"model-{i + 1:05d}-of-{parts:05d}.safetensors"
        chunk = {n: tensors[n] for n in names[i::parts]}
        write_tensors(directory / shard_name, chunk, metadata)
        weight_map.update({n: shard_name for n in chunk})
    total = sum(len(t.data) for t in tensors.values())
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    return weight_map
