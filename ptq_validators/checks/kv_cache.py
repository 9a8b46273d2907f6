"""KV-cache scales: declared ones must be stored for every attention layer, in k/v pairs; the
naming convention is reported because engines map different spellings (and fall back to a
scale of 1.0, silently, when they find none)."""

from __future__ import annotations

import operator
from itertools import compress

from ptq_validators.checks.base import FAIL, PASS, SKIP, WARN, CheckResult
from ptq_validators.checks.coverage import named_layers
from ptq_validators.formats.roles import KV_SCALE_ROLES
from ptq_validators.layers import TENSORS_OF, LayerTable
from ptq_validators.taxonomy import LayerGroup

_PROJECTIONS = ("k_proj", "v_proj", "qkv_proj")
_ATTENTION_LEAVES = ("q_proj", "k_proj", "v_proj", "qkv_proj")
_KV_SCALES = frozenset(KV_SCALE_ROLES)
TITLE = "KV-cache scales"


def _convention(module: str, role: str) -> str:
    leaf = module.rpartition(".")[2]
    if leaf in _PROJECTIONS:
        return f"<attn>.{leaf}.{role}"
    return f"<attn>.{role}"


def check_kv_cache(table: LayerTable) -> CheckResult:
    declared = table.declaration.kv_cache
    # Only the kinds of attention projections are walked for their names.
    projections = {
        kind
        for kind in table.kind_counts()
        if kind.group is LayerGroup.ATTENTION and kind.template.rpartition(".")[2] in _ATTENTION_LEAVES
    }
    attention = sorted({name.rpartition(".")[0] for name, _ in named_layers(table, projections)})
    stored: dict[str, set[str]] = {}
    conventions: set[str] = set()
    # Few modules (if any) store a KV scale: none when no tensor has a KV role (the usual
    # case, told from the roles list), else found at C speed and looked at one by one.
    modules = table.modules if not _KV_SCALES.isdisjoint(table.grouping.roles) else {}
    lacking = map(_KV_SCALES.isdisjoint, map(TENSORS_OF, modules.values()))
    for name in compress(modules, map(operator.not_, lacking)):
        module = modules[name]
        for role in KV_SCALE_ROLES:
            if role in module.tensors:
                attn = name.rpartition(".")[0] if name.rpartition(".")[2] in _PROJECTIONS else name
                stored.setdefault(attn, set()).add(
                    "k" if role == "k_scale" else "v" if role == "v_scale" else "kv"
                )
                conventions.add(_convention(name, role))
    measured = {
        "declared": declared,
        "attention_layers": len(attention),
        "layers_with_scales": len(stored),
        "convention": sorted(conventions),
    }
    if not declared and not stored:
        return CheckResult(
            "kv_cache", TITLE, SKIP, "no KV-cache quantization declared or stored", measured=measured
        )
    if declared and not stored:
        return CheckResult(
            "kv_cache",
            TITLE,
            FAIL,
            f"{declared} KV cache declared but no k/v scales stored",
            measured=measured,
            details=["engines fall back to a KV scale of 1.0 when the checkpoint has none"],
        )
    details = []
    for attn, kinds in sorted(stored.items()):
        if kinds in ({"k"}, {"v"}):
            details.append(f"{attn}: only {'k' if kinds == {'k'} else 'v'}_scale is stored")
    missing = [attn for attn in attention if attn not in stored]
    if missing:
        details.append(f"{len(missing)} attention layers have no k/v scales: " + ", ".join(missing[:8]))
    if details:
        return CheckResult(
            "kv_cache", TITLE, FAIL, f"{len(details)} problems", measured=measured, details=details
        )
    convention = ", ".join(sorted(conventions))
    if not declared:
        return CheckResult(
            "kv_cache",
            TITLE,
            WARN,
            f"k/v scales stored ({convention}) but no KV-cache quantization declared",
            measured=measured,
        )
    return CheckResult(
        "kv_cache",
        TITLE,
        PASS,
        f"{declared}: {len(stored)} layers with k/v scales ({convention})",
        measured=measured,
    )
