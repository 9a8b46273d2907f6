"""Checks of the checkpoint arguments that catch the mistakes people make before any work starts.

In: the strings given as OUTPUT / ``--source`` / MODEL. Out: nothing, a warning on stderr, or a
``UsageError`` / ``InputError`` that says what was probably meant:

* a path that does not exist but is shaped like a hub id (``org/name``) asks for a download;
* OUTPUT and ``--source`` naming the same directory is a usage error;
* an unquantized OUTPUT with a quantized ``--source`` reads as swapped arguments;
* a quantized ``--source`` is allowed (re-quantizing an FP8 release) but named on stderr.

Only the small JSON documents are read here (no safetensors headers).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from ptq_validators.errors import InputError, UsageError

# ``org/name`` as the Hub spells repository ids: one slash, no leading dot or dash.
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def checkpoint_directory(argument: str, role: str) -> None:
    """Refuse a missing ``argument`` that looks like a hub id, with the download command.

    Other missing paths (``out/typo`` where ``out/`` exists) are left to the reader, whose
    message names the path."""
    if os.path.exists(argument) or not HUB_ID.fullmatch(argument):
        return
    if os.path.isdir(argument.split("/", 1)[0]):
        return
    local = argument.rsplit("/", 1)[1]
    raise InputError(
        f"{role} {argument}: no such directory; it looks like a Hugging Face Hub id",
        hint=f"download it first (`hf download {argument} --local-dir {local}`) and pass {local}",
    )


def gate_pair(output: str, source: str) -> None:
    """The checks on OUTPUT and ``--source`` of ``ptqv gate`` (see the module docstring)."""
    checkpoint_directory(output, "OUTPUT")
    checkpoint_directory(source, "--source")
    if os.path.isdir(output) and os.path.isdir(source) and os.path.samefile(output, source):
        raise UsageError(
            f"OUTPUT and --source are the same directory ({output})",
            hint="pass the exported checkpoint as OUTPUT and the checkpoint it was made from as --source",
        )
    if not (os.path.isdir(output) and os.path.isdir(source)):
        return  # the reader reports what is missing
    source_format = declared_format(source)
    if source_format is None:
        return
    if declared_format(output) is None:
        raise UsageError(
            f"OUTPUT {output} is unquantized while --source {source} is quantized ({source_format})",
            hint=f"swapped? the export comes first: ptqv gate {source} --source {output}",
        )
    print(
        f"ptqv: warning: the source {source} is already quantized ({source_format}); "
        "sizes and bits are compared against it, not against the original weights",
        file=sys.stderr,
    )


def declared_format(directory: str) -> str | None:
    """The quantization format a checkpoint's metadata declares, e.g. ``modelopt NVFP4``, or
    None for an unquantized one."""
    from ptq_validators.checkpoint import Documents
    from ptq_validators.formats import read_declaration
    from ptq_validators.io.source import LocalSource
    from ptq_validators.layers import QUANT_DOCUMENTS

    documents = Documents.open(LocalSource(directory))
    declaration = read_declaration({name: documents.json_document(name) for name in QUANT_DOCUMENTS})
    if declaration.family == "dense":
        return None
    return " ".join([declaration.family, *_format_detail(declaration.summary)])


def _format_detail(summary: dict[str, Any]) -> list[str]:
    for key in ("quant_algo", "format"):
        if isinstance(summary.get(key), str):
            return [summary[key]]
    return [f"{summary['bits']}-bit"] if isinstance(summary.get("bits"), int) else []
