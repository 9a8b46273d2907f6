"""Will the engine load it? Serving compatibility from headers and metadata alone.

In: the facts the gate already has about an export (its declaration, layer table, config.json and
hf_quant_config.json) and one engine's data file (``data/<engine>-<major.minor>.yaml``, each rule
naming the upstream file it was read from). Out: the list of refusals that engine would raise at
start-up, each with the engine's own words and the fix. An empty list means no known refusal, not
that the export serves well: that is what the canary measures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ptq_validators.checks.base import FAIL, PASS, CheckResult
from ptq_validators.datafiles import parse_bundled
from ptq_validators.errors import UsageError
from ptq_validators.layers import QUANTIZED_BUT_EXCLUDED, Layer, LayerTable
from ptq_validators.taxonomy import LayerGroup

DATA_DIR = Path(__file__).resolve().parent / "data"
#: Engines ptqv knows by name; only those with a data file can be checked.
KNOWN_ENGINES = ("vllm", "sglang", "trtllm")
_SPEC = re.compile(r"^(?P<engine>[a-z]+)(?:@(?P<version>\d+\.\d+(?:\.\d+)?))?$")


@dataclass(frozen=True)
class Refusal:
    """One reason the engine would refuse the export: which rule, where, in its words, the fix."""

    rule: str
    where: str
    message: str
    fix: str
    source: str

    def to_json(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "where": self.where,
            "message": self.message,
            "fix": self.fix,
            "source": self.source,
        }


@dataclass(frozen=True)
class EngineData:
    """One engine version's compatibility rules, as loaded from its data file."""

    engine: str
    version: str
    rules: dict[str, Any]
    path: Path

    @property
    def label(self) -> str:
        return f"{self.engine} {self.version}"

    def source(self, where: str) -> str:
        """An upstream citation: repository, ref and file (with the symbol it names)."""
        return f"{self.rules['repository']}@{self.rules['ref']}: {where}"

    def family(self, name: str) -> dict[str, Any]:
        return self.rules.get("families", {}).get(name) or {}


def available_versions() -> dict[str, list[str]]:
    """Engine → the versions (major.minor) that have a data file, oldest first."""
    found: dict[str, list[str]] = {}
    for path in sorted(DATA_DIR.glob("*-*.yaml")):
        engine, _, version = path.stem.partition("-")
        found.setdefault(engine, []).append(version)
    for versions in found.values():
        versions.sort(key=lambda v: tuple(int(p) for p in v.split(".")))
    return found


def supported_list() -> str:
    return ", ".join(f"{engine}@{v}" for engine, versions in available_versions().items() for v in versions)


def load_engine(spec: str) -> EngineData:
    """Parse ``ENGINE[@VERSION]`` and load its data file (the newest version when none is given).

    Raises UsageError naming the supported engines and versions when there is no data file."""
    match = _SPEC.match(spec.strip().lower())
    versions = available_versions()
    hint = f"supported: {supported_list()}"
    if match is None:
        raise UsageError(f"engine {spec!r} is not ENGINE[@VERSION]", hint=hint)
    engine, version = match["engine"], match["version"]
    if engine not in versions:
        known = f"{engine} is known but has no compatibility data yet" if engine in KNOWN_ENGINES else None
        raise UsageError(f"engine {spec}: {known or f'unknown engine {engine!r}'}", hint=hint)
    if version is None:
        chosen = versions[engine][-1]
    else:
        chosen = ".".join(version.split(".")[:2])
        if chosen not in versions[engine]:
            raise UsageError(f"engine {spec}: no data for {engine} {chosen}", hint=hint)
    return _load(DATA_DIR / f"{engine}-{chosen}.yaml")


@cache
def _load(path: Path) -> EngineData:
    with open(path, encoding="utf-8") as handle:
        rules = parse_bundled(handle)
    return EngineData(str(rules["engine"]), str(rules["version"]), rules, path)


@dataclass(frozen=True)
class Facts:
    """What the compatibility rules read: the layer table and the two quantization documents."""

    table: LayerTable
    config: dict[str, Any]
    hf_quant_config: dict[str, Any] | None = None

    @property
    def family(self) -> str:
        return self.table.declaration.family

    def quant_algo(self) -> str | None:
        """The ModelOpt quant_algo, upper-cased as vLLM reads it."""
        algo = self.table.declaration.summary.get("quant_algo")
        return str(algo).upper() if algo else None

    def quantized_layers(self) -> dict[str, Any]:
        """ModelOpt MIXED_PRECISION: layer → its own ``{quant_algo, ...}``."""
        for document in (self.hf_quant_config or {}, self.config.get("quantization_config") or {}):
            block = document.get("quantization", document) if isinstance(document, dict) else {}
            layers = block.get("quantized_layers") if isinstance(block, dict) else None
            if isinstance(layers, dict) and layers:
                return layers
        return {}


def refusals(
    facts: Facts, engine: EngineData, *, tensor_parallel: int = 1, gpu_capability: int | None = None
) -> list[Refusal]:
    """Every known reason ``engine`` would refuse to load the export described by ``facts``.

    ``tensor_parallel`` splits each parallel linear as the engine would (block rules apply to the
    per-rank partition); ``gpu_capability`` (e.g. 90 for sm_90) adds the minimum-capability rule."""
    found: list[Refusal] = []
    if facts.family == "modelopt":
        found += _modelopt(facts, engine)
    if facts.family == "compressed-tensors":
        found += _ct_kv_cache(facts, engine)
        found += _block_partitions(facts, engine, tensor_parallel)
    found += _embeddings(facts, engine)
    if gpu_capability is not None:
        found += _capability(facts, engine, gpu_capability)
    return found


def serve_flags(facts: Facts, engine: EngineData) -> list[str]:
    """The command-line flags the engine needs for this export's format (empty: auto-detected)."""
    if facts.family != "modelopt":
        return []
    method = engine.family("modelopt").get("serve_quantization", {}).get(facts.quant_algo() or "")
    return ["--quantization", method] if method else []


def check_deploy(facts: Facts, engine: EngineData, **options: Any) -> CheckResult:
    """The gate's ``deploy`` row: fail with the engine's words for each known refusal."""
    found = refusals(facts, engine, **options)
    title = f"Serving compatibility ({engine.label})"
    if not found:
        return CheckResult(
            "deploy",
            title,
            PASS,
            f"no known {engine.label} refusal for this export",
            measured=[],
            expected=[],
        )
    first = found[0]
    summary = f"{engine.label} refuses it: {first.message} Fix: {first.fix}"
    if len(found) > 1:
        summary += f" (+{len(found) - 1} more)"
    details = [f"{r.where}: {r.message} — fix: {r.fix} [{r.source}]" for r in found]
    return CheckResult(
        "deploy", title, FAIL, summary, measured=[r.to_json() for r in found], expected=[], details=details
    )


def _modelopt(facts: Facts, engine: EngineData) -> list[Refusal]:
    rules = engine.family("modelopt")
    algo = facts.quant_algo()
    if algo is None:
        return []
    if algo not in rules["supported_algos"]:
        return [
            Refusal(
                "modelopt_quant_algo",
                f"hf_quant_config.json quant_algo {algo}",
                _text(rules["message"]),
                _text(rules["fix"]).format(algo=algo),
                engine.source(rules["source"]),
            )
        ]
    if algo != "MIXED_PRECISION":
        return []
    unloadable = {
        layer: str(info.get("quant_algo", "")).upper()
        for layer, info in sorted(facts.quantized_layers().items())
        if isinstance(info, dict)
        and str(info.get("quant_algo", "")).upper() not in rules["mixed_layer_algos"]
    }
    if not unloadable:
        return []
    layers = list(unloadable)
    shown = ", ".join(layers[:3]) + (f" (+{len(layers) - 3} more)" if len(layers) > 3 else "")
    algos = "/".join(sorted(set(unloadable.values())))
    return [
        Refusal(
            "modelopt_mixed_layer",
            shown,
            _text(rules["mixed_message"]).format(algo=algos, layer=shown),
            _text(rules["mixed_fix"]).format(layer=shown),
            engine.source(rules["mixed_source"]),
        )
    ]


def _ct_kv_cache(facts: Facts, engine: EngineData) -> list[Refusal]:
    rules = engine.family("compressed-tensors").get("kv_cache") or {}
    scheme = facts.table.declaration.summary.get("kv_cache_scheme")
    if not isinstance(scheme, dict) or not rules:
        return []
    ok = (
        scheme.get("type") == rules["type"]
        and scheme.get("num_bits") == rules["num_bits"]
        and scheme.get("strategy") in rules["strategies"]
        and bool(scheme.get("symmetric")) is rules["symmetric"]
    )
    if ok:
        return []
    message = _text(rules["message"]).format(num_bits=scheme.get("num_bits"), type=scheme.get("type"))
    return [
        Refusal(
            "kv_cache_scheme",
            "config.json kv_cache_scheme",
            message,
            _text(rules["fix"]),
            engine.source(rules["source"]),
        )
    ]


def _embeddings(facts: Facts, engine: EngineData) -> list[Refusal]:
    """A quantized embedding the config does not declare (the engine builds a plain embedding and
    finds no parameter for the packed tensors), or one declared in a format it cannot look up."""
    rules = engine.family(facts.family).get("embeddings")
    if not rules:
        return []
    architecture = (facts.config.get("architectures") or ["the model"])[0]
    found = []
    for layer in facts.table.layers:
        if layer.group is not LayerGroup.EMBED or not layer.precision.is_quantized:
            continue
        if layer.status == QUANTIZED_BUT_EXCLUDED:
            extra = sorted(role for role in layer.tensors if role != "weight")
            tensor = f"{layer.name}.{extra[0] if extra else 'weight_scale'}".removeprefix("model.")
            message = _text(rules["message"]).format(name=tensor, architecture=architecture)
            fix = _text(rules["fix"]).format(embedding=layer.name)
        elif layer.precision.value not in rules["declared_precisions"]:
            message = _text(rules["declared_message"]).format(scheme=layer.precision.value)
            fix = _text(rules["declared_fix"]).format(embedding=layer.name)
        else:
            continue
        found.append(Refusal("quantized_embedding", layer.name, message, fix, engine.source(rules["source"])))
    return found


def _block_partitions(facts: Facts, engine: EngineData, tensor_parallel: int) -> list[Refusal]:
    """FP8 block scales: each output partition of a merged (or TP-split) linear, and each input
    partition of a TP-split row-parallel linear, must be a multiple of the block."""
    rules = engine.family("compressed-tensors").get("fp8_block")
    if not rules:
        return []
    found: list[Refusal] = []
    row_parallel = tuple(engine.rules.get("row_parallel", []))
    for members in _merged_groups(facts.table, engine):
        block = members[0].stored.block
        # A row-parallel linear keeps its whole output on every rank: only its input is split.
        if block is None or members[0].name.endswith(row_parallel):
            continue
        block_n = block[0]
        # A merged linear at TP 1 may end in a partial block; a TP split checks every partition.
        checked = members if tensor_parallel > 1 else members[:-1]
        bad = [layer for layer in checked if (layer.stored.shape[0] // tensor_parallel) % block_n]
        if bad:
            size = bad[0].stored.shape[0] // tensor_parallel
            names = ", ".join(layer.name for layer in bad)
            found.append(
                Refusal(
                    "fp8_block_partition",
                    names,
                    _text(rules["message"]).format(size=size, block_n=block_n),
                    _text(rules["fix"]).format(layers=names, size=size),
                    engine.source(rules["source"]),
                )
            )
    if tensor_parallel > 1:
        for layer in facts.table.layers:
            block = layer.stored.block
            if block is None or not layer.name.endswith(row_parallel):
                continue
            size = layer.stored.shape[-1] // tensor_parallel
            if size % block[1]:
                found.append(
                    Refusal(
                        "fp8_block_partition",
                        layer.name,
                        _text(rules["input_message"]).format(size=size, block_k=block[1]),
                        _text(rules["fix"]).format(layers=layer.name, size=size),
                        engine.source(rules["source"]),
                    )
                )
    return found


def _merged_groups(table: LayerTable, engine: EngineData) -> list[list[Layer]]:
    """Layers the engine fuses into one parallel linear, in its member order; a layer that is
    not part of a merged projection is its own group."""
    by_name = table.by_name()
    member_of = {
        member: (fused, members)
        for fused, members in engine.rules.get("merged_linears", {}).items()
        for member in members
    }
    groups: list[list[Layer]] = []
    seen: set[str] = set()
    for layer in table.layers:
        if layer.name in seen or layer.fused:
            continue
        prefix, _, leaf = layer.name.rpartition(".")
        if leaf not in member_of:
            groups.append([layer])
            continue
        _, members = member_of[leaf]
        group = [by_name[f"{prefix}.{m}"] for m in members if f"{prefix}.{m}" in by_name]
        seen.update(member.name for member in group)
        groups.append(group)
    return groups


def _capability(facts: Facts, engine: EngineData, current: int) -> list[Refusal]:
    rules = engine.rules.get("capability")
    family = engine.family(facts.family)
    table = family.get("min_capability") or {}
    if not rules or not table:
        return []
    keys = (
        {facts.quant_algo()}
        if facts.family == "modelopt"
        else {layer.precision.value for layer in facts.table.layers if layer.precision.is_quantized}
    )
    needed = max((table[k] for k in keys if k in table), default=None)
    if needed is None or current >= needed:
        return []
    message = _text(rules["message"]).format(method=facts.family, minimum=needed, current=current)
    fix = _text(rules["fix"]).format(minimum_dotted=f"{needed // 10}.{needed % 10}")
    return [
        Refusal(
            "gpu_capability",
            f"GPU sm_{current}",
            message,
            fix,
            engine.source(f"{rules['source']}; {family.get('source', '')}"),
        )
    ]


def _text(value: Any) -> str:
    """Folded YAML text as one line."""
    return " ".join(str(value).split())


def read_facts(checkpoint_dir: str) -> Facts:
    """Headers and JSON documents of one local checkpoint (no tensor data is read)."""
    from ptq_validators.checkpoint import Checkpoint
    from ptq_validators.io.source import open_source
    from ptq_validators.layers import build_layer_table

    with open_source(checkpoint_dir) as source:
        checkpoint = Checkpoint.open(source)
        return Facts(
            build_layer_table(checkpoint), checkpoint.config, checkpoint.json_document("hf_quant_config.json")
        )
