"""The default gate reads headers, documents and scalar scales only: no byte of any weight."""

from __future__ import annotations

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import group_modules
from tests.conftest import FIXTURES

ANCHORS = ("weight", "weight_packed", "qweight", "blocks", "weight_scale", "weight_scale_inv", "scales")


def weight_regions(path) -> list[tuple[int, int]]:
    """Absolute byte spans of every weight and block/group scale larger than a scalar."""
    checkpoint = Checkpoint.open(LocalSource(path))
    regions = []
    for module in group_modules(checkpoint.names, checkpoint.infos).modules.values():
        for role, info in module.tensors.items():
            if role in ANCHORS and info.numel > 1:
                base = checkpoint.headers[checkpoint.tensor_file[info.name]].data_offset
                regions.append((base + info.begin, base + info.end))
    return regions


def test_default_gate_reads_no_weight_bytes(ptqv, monkeypatch):
    reads: list[tuple[str, int, int]] = []  # (directory, offset, length)
    original_range, original_ranges = LocalSource.read_range, LocalSource.read_ranges

    def record_range(self, name, offset, length):
        reads.append((self.root, offset, length))
        return original_range(self, name, offset, length)

    def record_ranges(self, name, ranges):
        reads.extend((self.root, offset, length) for offset, length in ranges)
        return original_ranges(self, name, ranges)

    monkeypatch.setattr(LocalSource, "read_range", record_range)
    monkeypatch.setattr(LocalSource, "read_ranges", record_ranges)
    output = FIXTURES / "modelopt-nvfp4-moe"
    result = ptqv("gate", output, "--source", FIXTURES / "src-moe", "--qformat", "nvfp4")
    assert result.code == 0
    regions = weight_regions(output)
    reads = [r for r in reads if r[0] == str(output)]
    assert reads, "the gate read nothing of the export through the byte source"
    for name, offset, length in reads:
        for begin, end in regions:
            assert offset + length <= begin or offset >= end, (name, offset, length)
