"""A checkpoint directory: its safetensors shards (headers only), index and documents.

``Checkpoint.open(source)`` reads, through a ``ByteSource``, the index (if any) and every shard header, cross-checks them,
and exposes the merged tensor table plus lazily parsed documents (config, tokenizer, chat
template, generation config, quantization configs). Problems that make the checkpoint
unreadable raise ``InputError`` (exit 3); inconsistencies that still let it be read (a stray
shard, a tensor the index misplaces) are collected in ``issues`` for the gate to report.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import chain, compress, islice, repeat, starmap
from typing import Any, Literal

import msgspec

from ptq_validators.errors import InputError, UsageError
from ptq_validators.formats.ct_rules import name_matches
from ptq_validators.io.safetensors import INFO_BEGIN, INFO_END, Layouts, ShardHeader, TensorInfo, read_header
from ptq_validators.io.source import ByteSource

INDEX_FILE = "model.safetensors.index.json"
_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
# Chat template locations, in the order transformers prefers them.
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "tokenizer_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json")
# The container types that the format readers and checks rely on, per document and key path
# (an array here is an array of strings: module names and patterns). A document whose key holds
# another JSON type (null aside) is refused when it is parsed, naming the file and the key,
# instead of failing deep inside a reader as an internal error. Loaders (transformers,
# tokenizers, vLLM) refuse these documents too.
DOCUMENT_SHAPES: dict[str, tuple[tuple[tuple[str, ...], type], ...]] = {
    "config.json": (
        (("quantization_config",), dict),
        (("quantization_config", "config_groups"), dict),
        (("quantization_config", "ignore"), list),
        (("quantization_config", "exclude_modules"), list),
        (("quantization_config", "quantized_layers"), dict),
        (("quantization_config", "modules_to_not_convert"), list),
        (("quantization_config", "modules_to_convert"), list),
    ),
    "hf_quant_config.json": (
        (("quantization",), dict),
        (("quantization", "exclude_modules"), list),
        (("quantization", "quantized_layers"), dict),
    ),
    "tokenizer.json": ((("model",), dict),),
}
_JSON_TYPE_NAMES: dict[type, str] = {dict: "an object", list: "an array of strings"}


@dataclass(frozen=True)
class IntegrityIssue:
    """A consistency problem between the index, the shards and the directory listing."""

    file: str
    message: str
    blocking: bool


class Documents:
    """The small files of a checkpoint directory (config, tokenizer, chat template, generation
    and quantization configs), parsed on first use. No weights, no headers."""

    def __init__(self, source: ByteSource, files: list[str]) -> None:
        self.source = source
        self.files = files
        self._json_cache: dict[str, Any] = {}

    @classmethod
    def open(cls, source: ByteSource) -> Documents:
        """The documents of the directory ``source`` reads (listed now, parsed on first use)."""
        return cls(source, source.list_files())

    def has(self, name: str) -> bool:
        return name in self.files

    def json_document(self, name: str) -> dict[str, Any] | None:
        """Parse JSON document ``name`` once (None when absent). Invalid JSON is an input error."""
        if name in self._json_cache:
            return self._json_cache[name]
        if name not in self.files:
            return None
        raw = self.source.read_bytes(name)
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(
                f"{self.source.display(name)}: invalid JSON: {exc}", hint="repair or regenerate the file"
            ) from None
        if not isinstance(value, dict):
            raise InputError(
                f"{self.source.display(name)}: expected a JSON object", hint="repair or regenerate the file"
            )
        self._check_shape(name, value)
        self._json_cache[name] = value
        return value

    def _check_shape(self, name: str, document: dict[str, Any]) -> None:
        """``InputError`` naming the file and key when a key of ``DOCUMENT_SHAPES`` has the wrong type."""
        for path, expected in DOCUMENT_SHAPES.get(name, ()):
            value: Any = document
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                continue
            if not isinstance(value, expected):
                found = type(value).__name__
            elif isinstance(value, list) and not all(isinstance(item, str) for item in value):
                found = f"an array holding {type(next(i for i in value if not isinstance(i, str))).__name__}"
            else:
                continue
            raise InputError(
                f"{self.source.display(name)}: {'.'.join(path)!r} must be {_JSON_TYPE_NAMES[expected]}, "
                f"not {found}",
                hint="repair or regenerate the file (re-export the checkpoint)",
            )
        if name == "config.json":
            self._check_patterns(document.get("quantization_config"))

    def _check_patterns(self, block: Any) -> None:
        """The ``re:`` targets and ignores of a compressed-tensors ``quantization_config`` must
        compile: ``InputError`` naming config.json otherwise (the same rule the matcher applies)."""
        if not isinstance(block, dict) or block.get("quant_method") != "compressed-tensors":
            return
        groups = block.get("config_groups") or {}
        patterns = list(block.get("ignore") or [])
        for group in groups.values():
            targets = group.get("targets") if isinstance(group, dict) else None
            patterns += targets if isinstance(targets, list) else []
        for pattern in patterns:
            if isinstance(pattern, str) and pattern.startswith("re:"):
                try:
                    name_matches(pattern, "")
                except UsageError as exc:
                    raise InputError(
                        f"{self.source.display('config.json')}: quantization_config: {exc.message}",
                        hint="repair the pattern or re-export the checkpoint",
                    ) from None

    def text_document(self, name: str) -> str | None:
        """Read a small text document (None when absent)."""
        if name not in self.files:
            return None
        try:
            return self.source.read_bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                f"{self.source.display(name)}: not UTF-8 text", hint="repair or regenerate the file"
            ) from None

    def file_digest(self, name: str) -> str | None:
        """SHA-256 of a binary document such as ``tokenizer.model`` (None when absent)."""
        if name not in self.files:
            return None
        import hashlib  # here: most checkpoints have no such blob, and the import costs 3 ms

        return hashlib.sha256(self.source.read_bytes(name)).hexdigest()

    @property
    def config(self) -> dict[str, Any]:
        """``config.json`` (an input error when missing: every HF checkpoint has one)."""
        config = self.json_document("config.json")
        if config is None:
            raise InputError(
                f"{self.source.display('config.json')}: missing",
                hint="copy the model's config.json into the checkpoint directory",
            )
        return config

    def chat_template(self) -> tuple[str | None, str | None]:
        """The effective chat template and the file it came from (None, None when absent)."""
        for name in CHAT_TEMPLATE_FILES:
            if name not in self.files:
                continue
            if name.endswith(".jinja"):
                return self.text_document(name), name
            document = self.json_document(name) or {}
            template = document.get("chat_template")
            if template is not None:
                return (template if isinstance(template, str) else json.dumps(template, sort_keys=True)), name
        return None, None


class Checkpoint(Documents):
    """Headers and documents of one checkpoint directory: every shard's tensors in one table,
    shard by shard, as two columns (``names`` and ``infos``, distinct names; ``tensors`` is the
    table by name, ``tensor_file`` names each tensor's shard), and per shard what its header
    says besides (``headers``: sizes, metadata)."""

    def __init__(
        self,
        source: ByteSource,
        files: list[str],
        headers: dict[str, ShardHeader],
        names: list[str],
        infos: list[TensorInfo],
        spans: list[tuple[str, int]],
        indexed: bool,
        issues: list[IntegrityIssue],
    ) -> None:
        super().__init__(source, files)
        self.headers = headers
        self.names = names
        self.infos = infos
        self.spans = spans  # (shard, how many of the table's tensors in a row it stores), in order
        self.indexed = indexed
        self.issues = issues

    @classmethod
    def of_table(
        cls, source: ByteSource, tensors: dict[str, TensorInfo], *, shard: str = "model.safetensors"
    ) -> Checkpoint:
        """A checkpoint of the table ``tensors``, all in ``shard``, with no header read (tests
        and tools that build a table by hand): the documents are ``source``'s."""
        names, infos = list(tensors), list(tensors.values())
        return cls(source, source.list_files(), {}, names, infos, [(shard, len(names))], False, [])

    @cached_property
    def tensors(self) -> dict[str, TensorInfo]:
        """The table by name (made on first use: the gate reads the columns; one dict of a 671B
        export's 180k tensors costs about what validating their offsets does)."""
        return dict(zip(self.names, self.infos, strict=True))

    @classmethod
    def open(cls, source: ByteSource) -> Checkpoint:
        """Read the index and every shard header ``source`` holds. ``InputError`` naming the
        file when the checkpoint cannot be read (no weights, a bad index, a bad header)."""
        files = source.list_files()
        on_disk = [f for f in files if f.endswith(".safetensors")]
        issues: list[IntegrityIssue] = []
        if INDEX_FILE in files:
            weight_map = _read_weight_map(source, on_disk)
            shard_names = sorted(set(weight_map.values()))
            for name in shard_names:
                _check_shard_name(source, name, files)
            for stray in sorted(set(on_disk) - set(shard_names)):
                issues.append(
                    IntegrityIssue(
                        stray,
                        "safetensors file on disk is not named by the index (a stray or "
                        "stale shard; loaders that glob will pick it up)",
                        True,
                    )
                )
        else:
            weight_map = None
            shard_names = on_disk
            if not shard_names:
                pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
                found = f" (pickle files present: {', '.join(pickles)}; never loaded)" if pickles else ""
                raise InputError(
                    f"{source.root}: no *.safetensors weights{found}",
                    hint="export with safe serialization (safetensors) and pass that directory",
                )
            for name in shard_names:
                _check_shard_name(source, name, files)
            if len(shard_names) > 1:
                issues.append(
                    IntegrityIssue(
                        INDEX_FILE,
                        f"{len(shard_names)} safetensors files but no index; loaders "
                        "will not know which to read",
                        True,
                    )
                )

        layouts: Layouts = {}  # shared by the shards: a layout is validated once per checkpoint
        headers: dict[str, ShardHeader] = {}
        names: list[str] = []
        infos: list[TensorInfo] = []
        spans: list[tuple[str, int]] = []
        # The index entries no shard has claimed yet, None once a shard disagrees with the index.
        # Claimed entries leave the map, so its names (a third of the memory of the tensor table)
        # are let go as the table grows instead of being held beside all of it.
        unclaimed = weight_map
        # The names so far as a set, made only once a shard is not proven to share none with
        # the earlier ones (no index, or one that disagrees): a set of a 671B export's 180k
        # names costs about a tenth of opening it.
        seen: set[str] | None = None
        for name in shard_names:
            # Each shard's table joins the columns and is let go at once.
            header = read_header(source, name, layouts)
            # A shard whose every tensor the index puts there shares none with an earlier one
            # (the index names each tensor once): then the disjointness test is not needed.
            claimed = unclaimed is not None and _claim(unclaimed, header.names, name)
            if not claimed:
                unclaimed = None
                if seen is None:
                    seen = set(names)
            if seen is None or seen.isdisjoint(header.names):  # at C speed
                names += header.names
                infos += header.infos
                spans.append((name, len(header.names)))
                if seen is not None:
                    seen.update(header.names)
            else:
                earlier = _shard_of_each(names, spans)
                kept = 0
                for tname, info in zip(header.names, header.infos, strict=True):
                    if tname in earlier:
                        issues.append(
                            IntegrityIssue(name, f"tensor {tname!r} is also stored in {earlier[tname]}", True)
                        )
                        continue
                    names.append(tname)
                    infos.append(info)
                    seen.add(tname)
                    kept += 1
                spans.append((name, kept))
            shard = headers[name] = header.shard()
            issues.extend(IntegrityIssue(name, w, False) for w in shard.warnings)
            fmt = (shard.metadata or {}).get("format")
            if fmt is not None and fmt not in ("pt", "tf", "flax", "mlx"):
                issues.append(
                    IntegrityIssue(
                        name,
                        f"__metadata__ format {fmt!r} is not pt/tf/flax/mlx; transformers refuses to load it",
                        True,
                    )
                )
        if weight_map is not None and (unclaimed is None or unclaimed):
            # The index and the shards disagree: compare them in full, the index read anew (the
            # claims emptied the map as they went).
            issues.extend(_cross_check_index(_read_weight_map(source, on_disk), _shard_of_each(names, spans)))
        return cls(source, files, headers, names, infos, spans, weight_map is not None, issues)

    @cached_property
    def tensor_file(self) -> dict[str, str]:
        """The shard of each tensor, by name (made on first use: the gate itself needs none)."""
        return _shard_of_each(self.names, self.spans)

    # ----- sizes -------------------------------------------------------------------------

    @property
    def weight_bytes(self) -> int:
        """Bytes of tensor data over all shards (headers excluded)."""
        return sum(h.file_size - h.data_offset for h in self.headers.values())

    def read_tensors(self, picked: Iterable[bool]) -> list[tuple[list[TensorInfo], bytes]]:
        """The data of the tensors ``picked`` marks, one flag per tensor of the table in its order
        (meant for small ones: scales): per shard, in shard order, its tensors among them in
        offset order and their bytes back to back. One ``read_ranges`` per shard, one range per
        run of tensors that lie back to back (a shard's scalar scales mostly do), so no byte
        outside the tensors asked for is read. ``InputError`` when a shard is now shorter than
        its header said."""
        infos, flags = iter(self.infos), iter(picked)
        shards = []
        for file, count in self.spans:  # the table is shard by shard
            members = list(compress(islice(infos, count), islice(flags, count)))
            if not members:
                continue
            begins, ends = list(map(INFO_BEGIN, members)), list(map(INFO_END, members))
            if begins[1:] == ends[:-1]:  # back to back in table order (a shard's scalar scales)
                starts, stops = [0], [len(members)]
            else:
                members.sort(key=INFO_BEGIN)
                begins, ends = list(map(INFO_BEGIN, members)), list(map(INFO_END, members))
                # A run starts at every tensor that does not begin where the one before it ends.
                starts = [0, *compress(range(1, len(members)), map(operator.ne, begins[1:], ends[:-1]))]
                stops = [*starts[1:], len(members)]
            base = self.headers[file].data_offset
            ranges = [(base + begins[a], ends[b - 1] - begins[a]) for a, b in zip(starts, stops, strict=True)]
            chunks = self.source.read_ranges(file, ranges)
            if list(map(len, chunks)) != [length for _, length in ranges]:
                raise InputError(
                    f"{self.source.display(file)}: shorter than its header says",
                    hint="the file changed while it was read; gate it again once it is complete",
                )
            shards.append((members, b"".join(chunks)))
        return shards

    @property
    def pickle_files(self) -> list[str]:
        """Pickle-format weight files present (reported, never loaded)."""
        return [f for f in self.files if f.endswith(PICKLE_SUFFIXES)]


def _read_weight_map(source: ByteSource, on_disk: list[str]) -> dict[str, str]:
    """The index's ``weight_map``: msgspec's reading when it gives one, else ``json``'s, whose
    verdict stands and whose message names the problem (the two agree on every index msgspec
    accepts)."""
    raw = source.read_bytes(INDEX_FILE)
    weight_map = _decode_weight_map(raw, on_disk)
    return weight_map if weight_map is not None else _read_weight_map_exactly(raw, source.display(INDEX_FILE))


def _decode_weight_map(raw: bytes, shards: list[str]) -> dict[str, str] | None:
    """The ``weight_map`` of index ``raw`` decoded by msgspec (about twice as fast as ``json`` on a
    671B index), each shard name as one shared string (180k copies of shard names are 14 MB on a
    671B export; typing caches the ``Literal``, so the string may be an equal one of an earlier
    call); None for anything it refuses, an index naming a file not among ``shards`` included
    (the exact read then gives that map, and the shard checks name the file)."""
    if not shards:
        return None
    shard: Any = Literal[tuple(shards)]  # a value decodes as the one string of its shard name
    index: Any = msgspec.defstruct("_Index", [("weight_map", dict[str, shard])])
    try:
        # msgspec checks UTF-8 itself: an ASCII index (the usual one) needs no decoded copy.
        return msgspec.json.decode(raw if raw.isascii() else raw.decode("utf-8"), type=index).weight_map
    except (UnicodeDecodeError, msgspec.DecodeError, RecursionError):
        return None


def _read_weight_map_exactly(raw: bytes, display: str) -> dict[str, str]:
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{display}: invalid JSON: {exc}", hint="regenerate the index") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    # JSON object keys are always strings; the values are checked by type at C speed.
    if not isinstance(weight_map, dict) or not set(map(type, weight_map.values())) <= {str}:
        raise InputError(
            f"{display}: 'weight_map' must map tensor names to shard file names", hint="regenerate the index"
        )
    return weight_map


def _shard_of_each(names: list[str], spans: list[tuple[str, int]]) -> dict[str, str]:
    """Tensor name → shard, from the table's shard-by-shard order (``spans``)."""
    return dict(zip(names, chain.from_iterable(starmap(repeat, spans)), strict=True))


def _claim(unclaimed: dict[str, str], names: list[str], shard: str) -> bool:
    """Take the entries of ``names`` out of ``unclaimed`` (index entries not yet matched by a shard):
    True when the index puts every one of them in ``shard``."""
    places = list(map(unclaimed.pop, names, repeat(None, len(names))))
    return places.count(shard) == len(places)


def _check_shard_name(source: ByteSource, name: str, files: list[str]) -> None:
    """A shard name must be a plain file name of a regular file inside the checkpoint."""
    display = source.display(INDEX_FILE)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or os.path.isabs(name):
        raise InputError(
            f"{display}: shard name {name!r} is not a plain file name inside the "
            "checkpoint directory; refused",
            hint="an index may only name files next to it; regenerate the index",
        )
    if name not in files:
        raise InputError(
            f"{display}: names shard {name!r}, which is missing",
            hint="copy the missing shard or regenerate the index",
        )
    if not source.is_inside(name):
        raise InputError(
            f"{source.display(name)}: is a symlink that leaves the checkpoint directory; refused",
            hint="copy the real file into the directory",
        )


def _cross_check_index(weight_map: dict[str, str], tensor_file: dict[str, str]) -> list[IntegrityIssue]:
    if weight_map == tensor_file:  # the usual case, compared at C speed
        return []
    issues = []
    for tname, shard in weight_map.items():
        actual = tensor_file.get(tname)
        if actual is None:
            issues.append(
                IntegrityIssue(
                    INDEX_FILE, f"index names tensor {tname!r} in {shard}, but no shard stores it", True
                )
            )
        elif actual != shard:
            issues.append(
                IntegrityIssue(
                    INDEX_FILE, f"index puts tensor {tname!r} in {shard}, but it is stored in {actual}", True
                )
            )
    for tname, shard in tensor_file.items():
        if tname not in weight_map:
            issues.append(IntegrityIssue(shard, f"tensor {tname!r} is missing from the index", True))
    return issues
