"""Scale numerics. By default only small scale tensors are read: global, input, KV and
per-tensor weight scales must be finite and positive (a zero or NaN scale on one expert is the
signature of an expert never routed during calibration). ``--deep`` adds block-scale and sampled
weight findings (NaN/Inf), produced by ``deep.py`` and judged here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import chain

from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult

TITLE = "Scale values"
DEEP_TITLE = "Deep numerics (--deep)"


def check_scale_values(values: Mapping[str, Sequence[float]]) -> CheckResult:
    """``values``: decoded scalar scale tensors by tensor name."""
    if not values:
        return CheckResult("scales", TITLE, SKIP, "no scalar scales stored")
    bad = []
    # Nearly always all of a 671B export's ~90k scale tensors are fine: two passes over every
    # value at C speed say so (a NaN or an infinity makes the sum non-finite; so may an
    # overflow of fine values, and then the search below finds nothing); else find the wrong
    # tensors, then sort only those.
    every = list(chain.from_iterable(values.values()))
    fine = not every or (min(every) > 0 and math.isfinite(sum(every)))
    wrongs = {} if fine else {name: wrong for name, numbers in values.items() if (wrong := _wrong(numbers))}
    for name, wrong in sorted(wrongs.items()):
        line = f"{name}: {', '.join(f'{v:g}' for v in wrong[:4])} (must be finite and > 0)"
        if ".experts." in name and "input" in name.rpartition(".")[2] and 0 in wrong:
            line += (
                ": this expert was probably never routed during calibration — calibrate with "
                "more and more varied samples (or longer sequences) so every expert sees tokens, "
                "then export again"
            )
        bad.append(line)
    summary = (
        f"{len(bad)} of {len(values)} scale tensors zero, negative or non-finite"
        if bad
        else f"{len(values)} scale tensors finite and positive"
    )
    return CheckResult(
        "scales", TITLE, FAIL if bad else PASS, summary, measured=len(bad), expected=0, details=bad
    )


def _wrong(numbers: Sequence[float]) -> list[float]:
    """The values that are not finite and positive."""
    return [v for v in numbers if not math.isfinite(v) or v <= 0]


def check_deep(findings: list[str] | None, scanned: int) -> CheckResult:
    """``findings`` from ``deep.scan_deep`` (None when --deep was not asked for)."""
    if findings is None:
        return CheckResult("deep", DEEP_TITLE, SKIP, "not requested (pass --deep)")
    summary = (
        f"{len(findings)} tensors with NaN/Inf" if findings else f"{scanned} tensors scanned, all finite"
    )
    return CheckResult(
        "deep",
        DEEP_TITLE,
        FAIL if findings else PASS,
        summary,
        measured=len(findings),
        expected=0,
        details=findings,
    )
