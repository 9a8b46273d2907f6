"""Safety findings in the export: pickle files (an engine may load them instead of the
safetensors, and loading one executes code), remote code that needs a trust decision, and
underscore-prefixed internal keys in config.json (one such key let transformers fetch and import
code despite trust_remote_code=False, CVE-2026-4372)."""

from __future__ import annotations

from typing import Any

from ptq_validators.checks.base import FAIL, PASS, WARN, CheckResult

BENIGN_PRIVATE_KEYS = frozenset({"_name_or_path", "_commit_hash"})
TITLE = "Safety"


def check_safety(files: list[str], pickle_files: list[str], config: dict[str, Any]) -> CheckResult:
    failures = [f"{name}: pickle file in the export (never loaded here; remove it)" for name in pickle_files]
    warnings = []
    code = sorted(name for name in files if name.endswith(".py"))
    if config.get("auto_map") or code:
        warnings.append(
            "remote code: "
            + ", ".join(code or ["auto_map in config.json"])
            + " — serving needs an explicit trust_remote_code decision"
        )
    private = sorted(k for k in config if k.startswith("_") and k not in BENIGN_PRIVATE_KEYS)
    if private:
        warnings.append(f"config.json has internal keys {', '.join(private)}: check where they came from")
    status = FAIL if failures else WARN if warnings else PASS
    summary = (
        f"{len(failures)} blocking, {len(warnings)} warnings"
        if failures or warnings
        else "no pickle files, no remote code, no internal config keys"
    )
    return CheckResult(
        "safety", TITLE, status, summary, measured=len(failures), expected=0, details=failures + warnings
    )
