"""`ptqv scan`: the inventory of one checkpoint without a source (format, declared config,
precision counts, bits, per-layer table, integrity)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.checks import coverage, integrity, safety
from ptq_validators.checks.base import CheckResult
from ptq_validators.envelope import SCHEMA_VERSION
from ptq_validators.io.source import ByteSource
from ptq_validators.layers import LayerTable, build_layer_table


@dataclass
class ScanReport:
    path: str
    checkpoint: Checkpoint
    table: LayerTable
    checks: list[CheckResult]

    def size(self) -> dict[str, Any]:
        """Weight bytes, parameters, bits per parameter, and bits per weight of linear layers."""
        parameters = self.table.parameters
        elements = sum(layer.elements for layer in self.table.layers)
        layer_bits = sum(layer.weight_bits for layer in self.table.layers)
        return {
            "weight_bytes": self.checkpoint.weight_bytes,
            "parameters": parameters,
            "bits_per_param": round(self.checkpoint.weight_bytes * 8 / parameters, 6) if parameters else None,
            "linear_bits_per_weight": round(layer_bits / elements, 6) if elements else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "ptqv-scan",
            "path": self.path,
            "declared": self.table.declaration.summary,
            "files": {
                "shards": sorted(self.checkpoint.headers),
                "indexed": self.checkpoint.indexed,
                "pickle_files": self.checkpoint.pickle_files,
            },
            "size": self.size(),
            "checks": [check.to_json() for check in self.checks],
            "precision_counts": self.table.precision_counts(),
            "scheme_counts": self.table.scheme_counts(),
            "group_counts": self.table.group_counts(),
            "layers": [layer.to_json() for layer in self.table.layers],
        }


def run_scan(source: ByteSource) -> ScanReport:
    """Read one checkpoint's headers and metadata through ``source`` and take its inventory
    (the report names it by ``source.root``)."""
    checkpoint = Checkpoint.open(source)
    table = build_layer_table(checkpoint)
    checks = [
        coverage.check_precision(table),
        coverage.check_coverage(table),
        integrity.check_integrity(checkpoint.issues, len(checkpoint.headers)),
        safety.check_safety(checkpoint.files, checkpoint.pickle_files, checkpoint.config),
    ]
    return ScanReport(source.root, checkpoint, table, checks)
