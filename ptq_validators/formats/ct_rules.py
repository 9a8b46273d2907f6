"""compressed-tensors' own rules, shared by the checkpoint adapter (``formats/compressed_tensors``),
llm-compressor presets and recipe files (``recipes/``) and ``ptqv plan``, so that a plan and the
gate read one config group the same way (compressed-tensors 0.20, ``quantization/quant_args.py``,
``utils/match.py``):

* ``QuantizationArgs`` → precision: the strategy decides, not the group size. Float 4-bit with
  ``tensor_group`` (a per-tensor global scale over E4M3 group scales) is NVFP4, with ``group``
  (E8M0 group scales) MXFP4; float 8-bit with ``group`` is MXFP8, ``block`` FP8_BLOCK, ``channel``
  FP8_PER_CHANNEL, ``tensor`` FP8. A missing strategy is inferred from ``group_size`` the way
  ``QuantizationArgs`` validates it (None: tensor, > 0: group, -1: channel).
* Matching: a target or ignore entry matches a module when it equals the full name, when it
  starts with ``re:`` and ``re.match`` (anchored at the start only) succeeds on the name, or when
  it equals the module's class name.
* Priority (``match_targets`` + ``_scheme_from_targets``): among the targets that match, exact
  names first, then ``re:`` patterns, then class names; within a kind in sorted string order; the
  scheme is the last config group that lists the winning target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ptq_validators.errors import UsageError
from ptq_validators.precision import NO_ACTIVATION, Activation, Precision, int_precision

_FP8_BY_STRATEGY = {
    "tensor": Precision.FP8,
    "channel": Precision.FP8_PER_CHANNEL,
    "block": Precision.FP8_BLOCK,
    "group": Precision.MXFP8,
}
_FP4_BY_STRATEGY = {"tensor_group": Precision.NVFP4, "group": Precision.MXFP4}


def strategy(args: dict[str, Any]) -> str:
    """The args' strategy, inferred from ``group_size`` when it is not written."""
    written = args.get("strategy")
    if written is not None:
        return str(written)
    group = args.get("group_size")
    if group is None:
        return "tensor"
    return "channel" if group == -1 else "group"


def weight_precision(args: dict[str, Any]) -> tuple[Precision, int | None]:
    """Precision and group size (the block's column count for ``block``) of one
    ``QuantizationArgs`` dict; UNKNOWN for a combination compressed-tensors has no format for."""
    bits, kind, how = args.get("num_bits"), args.get("type", "int"), strategy(args)
    group = args.get("group_size") if how in ("group", "tensor_group") else None
    if how == "block":
        block = args.get("block_structure")
        group = block[-1] if isinstance(block, list) and block else None
    if kind == "float" and bits == 8:
        return _FP8_BY_STRATEGY.get(how, Precision.UNKNOWN), group
    if kind == "float" and bits == 4:
        return _FP4_BY_STRATEGY.get(how, Precision.UNKNOWN), group
    if kind == "int" and isinstance(bits, int):
        return int_precision(bits), group
    return Precision.UNKNOWN, group


def activation_of(args: Any) -> Activation:
    """The activation side of one ``input_activations`` dict (None / missing: weight-only).
    ``dynamic: "local"`` (NVFP4) computes the local scales at run time from a calibrated global
    scale stored as ``input_global_scale``: static, as far as the checkpoint goes."""
    if not isinstance(args, dict):
        return NO_ACTIVATION
    bits, kind, how = args.get("num_bits"), args.get("type", "int"), strategy(args)
    if kind == "int":
        dtype = f"INT{bits}"
    elif bits == 4:
        dtype = "MXFP4" if how == "group" else "FP4"
    else:
        dtype = "MXFP8" if how == "group" and args.get("group_size") == 32 else "FP8"
    return Activation(dtype, args.get("dynamic") is not True)


def name_matches(pattern: str, module_name: str) -> bool:
    """``match_name``: equal to the full name, or a ``re:`` pattern that ``re.match``es it."""
    if pattern.startswith("re:"):
        try:
            return re.match(pattern[3:], module_name) is not None
        except re.error as exc:
            raise UsageError(
                f"invalid regular expression in {pattern!r}: {exc}",
                hint="fix the pattern (compressed-tensors uses Python re.match after 're:')",
            ) from None
    return pattern == module_name


def matches(pattern: str, module_name: str, module_class: str | None) -> bool:
    """One target or ignore entry against a module (by name, or by class name)."""
    return name_matches(pattern, module_name) or (module_class is not None and pattern == module_class)


def winning_target(targets: Iterable[str], module_name: str, module_class: str | None) -> str | None:
    """The target that decides a module's scheme, or None when no target matches."""
    ordered = sorted(set(targets), key=lambda target: (target.startswith("re:"), target))
    by_name = next((t for t in ordered if name_matches(t, module_name)), None)
    if by_name is not None:
        return by_name
    return next((t for t in ordered if module_class is not None and t == module_class), None)


def first_match(patterns: Iterable[str], module_name: str, module_class: str | None) -> str | None:
    """The first entry of ``patterns`` (an ignore list) that matches the module, or None."""
    return next((p for p in patterns if matches(p, module_name, module_class)), None)
