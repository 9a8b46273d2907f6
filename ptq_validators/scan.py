"""`ptqv scan`: the inventory of one checkpoint without a source (format, declared config,
precision counts, bits, per-layer table, integrity)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.checks import coverage, integrity, safety
from ptq_validators.checks.base import PASS, CheckResult
from ptq_validators.envelope import SCHEMA_VERSION
from ptq_validators.formats import dense
from ptq_validators.io.source import ByteSource
from ptq_validators.layer_json import encode_layers
from ptq_validators.layers import OK, LayerTable, build_layer_table


@dataclass
class ScanReport:
    path: str
    checkpoint: Checkpoint
    table: LayerTable
    checks: list[CheckResult]

    def size(self) -> dict[str, Any]:
        """Weight bytes, parameters, bits per parameter, and bits per weight of linear layers."""
        parameters = self.table.parameters
        kinds = self.table.kind_counts().items()
        elements = sum(kind.stored.elements * n for kind, n in kinds)
        layer_bits = sum(kind.weight_bits * n for kind, n in kinds)
        return {
            "weight_bytes": self.checkpoint.weight_bytes,
            "parameters": parameters,
            "bits_per_param": round(self.checkpoint.weight_bytes * 8 / parameters, 6) if parameters else None,
            "linear_bits_per_weight": round(layer_bits / elements, 6) if elements else None,
        }

    def to_json(self, *, encoded_layers: bool = False) -> dict[str, Any]:
        """The inventory document; ``encoded_layers`` as for ``GateReport.to_json``."""
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
            "layers": encode_layers(self.table)
            if encoded_layers
            else [layer.to_json() for layer in self.table.layers],
        }


def run_scan(source: ByteSource) -> ScanReport:
    """Read one checkpoint's headers and metadata through ``source`` and take its inventory
    (the report names it by ``source.root``)."""
    checkpoint = Checkpoint.open(source)
    table = build_layer_table(checkpoint)
    checks = [
        coverage.check_precision(table),
        _inventory_coverage(table),
        integrity.check_integrity(checkpoint.issues, len(checkpoint.headers)),
        safety.check_safety(checkpoint.files, checkpoint.pickle_files, checkpoint.config),
    ]
    return ScanReport(source.root, checkpoint, table, checks)


def _inventory_coverage(table: LayerTable) -> CheckResult:
    """The gate's coverage check, except that a consistent unquantized checkpoint passes: scan
    is an inventory (of a source as well as of an export), and "no quantized layers" only
    fails a gate, where the export was meant to be quantized. With no layers at all, only dense
    metadata counts as consistent: a quantization declared over no tensors is no inventory."""
    result = coverage.check_coverage(table)
    kinds = table.kind_counts()
    if not kinds and table.declaration.family != dense.FAMILY:
        return result
    if all(kind.status == OK and not kind.stored.precision.is_quantized for kind in kinds):
        return CheckResult(result.id, result.title, PASS, "unquantized: nothing declared or stored quantized")
    return result
