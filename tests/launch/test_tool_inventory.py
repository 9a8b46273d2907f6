"""Every flag, key and keyword the renderer writes exists in the real tools.

The golden files pin the renderer's own output, and the stand-in quantizer accepts anything, so
neither can tell a typo'd flag from a real one. ``templates/tool-inventory.json`` is read from
the tools' sources by ``scripts/tool_inventory.py`` (ModelOpt, Nemotron and Megatron-Bridge at
the commits it records, the llm-compressor wheel the fixtures were made with); these tests
check each rendered job of every kind against it.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.launch.test_render import CASES, render_case

INVENTORY = json.loads(
    (Path(__file__).resolve().parents[2] / "templates" / "tool-inventory.json").read_text(encoding="utf-8")
)
TOOLS: dict[str, dict[str, Any]] = INVENTORY["tools"]


def rendered(case: str, tmp_path: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in render_case(case, tmp_path)}


def command_words(script: str, marker: str) -> list[str]:
    """The words of the (backslash-continued) command line of ``script`` that contains ``marker``."""
    joined = script.replace("\\\n", " ")
    [line] = [line for line in joined.splitlines() if marker in line and not line.lstrip().startswith("#")]
    words = shlex.split(line)
    return words[words.index(next(w for w in words if marker in w)) + 1 :]


def flags_and_values(words: list[str]) -> dict[str, str | None]:
    """``--flag value`` / ``--flag=value`` / bare ``--flag`` words as a mapping."""
    found: dict[str, str | None] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            has_value = i + 1 < len(words) and not words[i + 1].startswith("--")
            found[name] = value if eq else (words[i + 1] if has_value else None)
    return found


def assert_known(used: set[str], known: list[str], what: str) -> None:
    unknown = sorted(used - set(known))
    assert not unknown, f"{what}: not accepted upstream: {unknown}"


HF_PTQ_CASES = sorted(case for case, (kind, _) in CASES.items() if kind in ("direct", "docker", "slurm"))


@pytest.mark.parametrize("case", HF_PTQ_CASES)
def test_hf_ptq_flags_and_values_exist(case: str, tmp_path: Path) -> None:
    flags = flags_and_values(command_words(rendered(case, tmp_path)["run.sh"], "hf_ptq.py"))
    hf_ptq = TOOLS["hf_ptq.py"]
    assert_known(set(flags), hf_ptq["flags"], "hf_ptq.py flags")
    if "--qformat" in flags:
        assert flags["--qformat"] in hf_ptq["qformat"]
    if "--kv_cache_qformat" in flags:
        assert flags["--kv_cache_qformat"] in hf_ptq["kv_cache_qformat"]
    if "--recipe" in flags:
        assert flags["--recipe"] in TOOLS["hf_ptq.py --recipe"]["recipes"]


def test_launcher_yaml_keys_and_script_flags_exist(tmp_path: Path) -> None:
    config = yaml.safe_load(rendered("launcher", tmp_path)["launcher.yaml"])
    schema = TOOLS["launcher yaml"]
    assert_known(set(config), schema["top_level"], "launcher top-level keys")
    pipeline = config["pipeline"]
    assert_known(set(pipeline), schema["pipeline"], "pipeline keys")
    assert_known(set(pipeline.get("global_vars") or {}), schema["global_vars"], "global_vars keys")
    tasks = [value for key, value in pipeline.items() if key.startswith("task_")]
    assert tasks
    for task in tasks:
        assert_known(set(task), schema["task"], "task keys")
        assert_known(set(task["slurm_config"]), schema["slurm_config"], "slurm_config keys")
        words = [word for arg in task["args"] for word in shlex.split(arg)]
        split = words.index("--")
        assert_known(
            set(flags_and_values(words[:split])), TOOLS["launcher common/hf/ptq.sh"]["flags"], "ptq.sh"
        )
        example = flags_and_values(words[split + 1 :])
        assert_known(set(example), TOOLS["huggingface_example.sh"]["flags"], "huggingface_example.sh flags")
        assert example["--quant"] in TOOLS["hf_ptq.py"]["qformat"]
        assert example["--kv_cache_quant"] in TOOLS["hf_ptq.py"]["kv_cache_qformat"]


def test_nemotron_step_overrides_and_export_flags_exist(tmp_path: Path) -> None:
    files = rendered("nemotron", tmp_path)
    words = command_words(files["run.sh"], "steps")
    assert words[:2] == ["run", "optimize/modelopt/quantize"]
    step = TOOLS["nemotron steps optimize/modelopt/quantize"]
    quantize_flags = TOOLS["megatron-bridge quantize.py"]["flags"]
    config = words[words.index("-c") + 1]
    assert config in step["configs"]
    overrides = [word.partition("=")[0] for word in words if "=" in word and not word.startswith("-")]
    assert overrides
    for key in overrides:
        # `args.X` is forwarded to quantize.py as `--X` with hyphens (script.flag_style: hyphen)
        forwarded = key.startswith("args.") and "--" + key[5:].replace("_", "-") in quantize_flags
        assert key in step["config_keys"] or forwarded, f"nemotron override {key} is not accepted upstream"
    export = flags_and_values(command_words(files["export.sh"], "export.py"))
    assert_known(set(export), TOOLS["megatron-bridge export.py"]["flags"], "export.py flags")


@pytest.mark.parametrize("case", ["llmcompressor_oneshot", "llmcompressor_model_free"])
def test_llm_compressor_keywords_and_recipe_keys_exist(case: str, tmp_path: Path) -> None:
    files = rendered(case, tmp_path)
    calls = [
        node
        for node in ast.walk(ast.parse(files["quantize.py"]))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("oneshot", "model_free_ptq")
    ]
    assert len(calls) == 1
    [call] = calls
    entry = call.func.id  # type: ignore[attr-defined]
    assert_known({k.arg for k in call.keywords if k.arg}, TOOLS[entry]["parameters"], f"{entry} keywords")
    if "recipe.yaml" in files:
        recipe = yaml.safe_load(files["recipe.yaml"])
        for stage in recipe.values():
            for modifiers in stage.values():
                for name, args in modifiers.items():
                    assert name == "QuantizationModifier"
                    assert_known(set(args), TOOLS[name]["fields"], f"{name} arguments")


def test_inventory_records_where_it_was_read() -> None:
    sources = INVENTORY["sources"]
    for repo in ("NVIDIA/Model-Optimizer", "NVIDIA-NeMo/Nemotron", "NVIDIA-NeMo/Megatron-Bridge"):
        assert re.fullmatch(r"[0-9a-f]{40}", sources[repo]["commit"])
    assert sources["llmcompressor"]["wheel"].startswith("llmcompressor-")
    assert all(tool["from"] for tool in TOOLS.values())
