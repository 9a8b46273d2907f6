"""The gate's serving rows: ``deploy`` (known engine refusals) and ``canary`` (a recorded run).

In: what the gate already read (layer table, config.json, hf_quant_config.json) and the
``--deploy`` / ``--canary`` options. Out: ``CheckResult`` rows (skipped when the option is absent)
and the compatibility inventory the report prints (``none`` where a field is empty).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ptq_validators.checks.base import FAIL, PASS, SKIP, WARN, CheckResult

if TYPE_CHECKING:
    from ptq_validators.layers import LayerTable

# The engine data (YAML) and the canary runner are imported only when --deploy or --canary asks
# for them: together they cost a tiny gate a quarter of its time.

INVENTORY_FIELDS = ("name", "version", "mode", "flags", "container_image", "transformers_version", "patches")


def deploy_row(
    spec: str | None,
    table: LayerTable,
    config: dict[str, Any],
    hf_quant_config: dict[str, Any] | None,
    *,
    tensor_parallel: int = 1,
    gpu_capability: int | None = None,
) -> CheckResult:
    if spec is None:
        return CheckResult("deploy", "Serving compatibility", SKIP, "no --deploy given")
    from ptq_validators.canary import compat

    engine = compat.load_engine(spec)
    facts = compat.Facts(table, config, hf_quant_config)
    return compat.check_deploy(facts, engine, tensor_parallel=tensor_parallel, gpu_capability=gpu_capability)


def parse_capability(text: str) -> int:
    """``9.0``, ``sm90``, ``sm_90`` or ``90`` → 90 (compute capability x 10)."""
    from ptq_validators.errors import UsageError

    cleaned = text.strip().lower().removeprefix("sm").removeprefix("_")
    major, dot, minor = cleaned.partition(".")
    try:
        value = int(major) * 10 + int(minor) if dot else int(cleaned)
    except ValueError:
        raise UsageError(f"--deploy-gpu {text!r} is not a compute capability",
                         hint="pass e.g. 9.0, sm90 or 100") from None  # fmt: skip
    return value


def canary_row(path: str | None) -> tuple[CheckResult, dict[str, Any] | None]:
    """The ``canary`` row and the inventory of the run recorded in ``path``."""
    title = "Serving canary"
    if path is None:
        return CheckResult("canary", title, SKIP, "no --canary given"), None
    from ptq_validators.canary.run import NOT_CHECKABLE, read_record

    record = read_record(path)
    inventory = inventory_of(record)
    verdict = record.get("verdict")
    failed = [c for c in record.get("checks", []) if c.get("status") == FAIL]
    where = f"{inventory['name']} {inventory['version']} ({inventory['mode']})"
    if verdict == FAIL:
        first = failed[0] if failed else {"title": "?", "detail": ""}
        summary = f"failed on {where}: {first['title']}: {first['detail']}"
        return CheckResult("canary", title, FAIL, summary, verdict, PASS,
                           [f"{c['title']}: {c['detail']}" for c in failed]), inventory  # fmt: skip
    if verdict == NOT_CHECKABLE:
        message = (record.get("start") or {}).get("message", "")
        return CheckResult(
            "canary", title, WARN, f"not checkable on {where}: {message}", verdict, PASS
        ), inventory
    metrics = record.get("metrics") or {}
    compared = (
        f", top-1 {metrics['top1_agreement']:.2f} vs source"
        if metrics.get("top1_agreement") is not None
        else ""
    )
    return CheckResult("canary", title, PASS, f"passed on {where}{compared}", verdict, PASS), inventory


def inventory_of(record: dict[str, Any]) -> dict[str, Any]:
    """Engine and version, flags, container image, transformers version, patches: ``none`` if empty."""
    engine = record.get("engine") or {}
    shown: dict[str, Any] = {}
    for key in INVENTORY_FIELDS:
        value = engine.get(key)
        shown[key] = value if value not in (None, [], "") else "none"
    shown["prompt_set"] = record.get("prompt_set", "none")
    return shown
