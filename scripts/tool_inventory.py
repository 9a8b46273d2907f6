"""Write ``templates/tool-inventory.json``: the flags, YAML keys and signatures the real tools accept.

``ptqv render`` emits command lines and config files for tools it does not ship; this inventory
is read from those tools' own sources (never retyped), so a test can check that every flag and
key the renderer writes exists upstream. Nothing is imported or executed: Python files are read
with ``ast``, shell parsers with a regular expression over their ``getopt`` line, YAML with
``yaml.safe_load``.

Usage (each source is a git directory, bare or not, read at its ``HEAD``; llm-compressor is the
wheel that was installed to make the fixtures)::

    python scripts/tool_inventory.py --modelopt DIR --nemotron DIR --megatron-bridge DIR \\
        --llm-compressor llmcompressor-0.14.0.1-py3-none-any.whl [--out templates/tool-inventory.json]
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


class GitTree:
    """Files of one repository at ``HEAD``, read with ``git show`` (works on bare mirrors)."""

    def __init__(self, git_dir: str) -> None:
        self.git_dir = git_dir
        self.commit = self._git("rev-parse", "HEAD").strip()
        self.date = self._git("log", "-1", "--format=%cs", "HEAD").strip()

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", self._dot_git(), *args], capture_output=True, text=True, check=True
        ).stdout

    def _dot_git(self) -> str:
        path = Path(self.git_dir)
        return str(path / ".git") if (path / ".git").exists() else str(path)

    def read(self, path: str) -> str:
        return self._git("show", f"HEAD:{path}")

    def list(self, folder: str) -> list[str]:
        return self._git("ls-tree", "--name-only", f"HEAD:{folder}").split()

    def walk(self, folder: str) -> list[str]:
        """Every file path under ``folder``, relative to it."""
        return self._git("ls-tree", "-r", "--name-only", f"HEAD:{folder}").split()


def argparse_flags(source: str, function: str | None = None) -> list[str]:
    """Every option string passed to an ``add_argument`` call in ``source`` (only inside the
    top-level function ``function`` when one is named)."""
    tree: ast.AST = ast.parse(source)
    if function is not None:
        tree = next(
            n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function
        )
    flags = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-"):
                    flags.add(arg.value)
    return sorted(flags)


def getopt_flags(source: str) -> list[str]:
    """The long options of the ``getopt -l "a:,b,..."`` line of a bash parser."""
    match = re.search(r'getopt\s+-o\s+"[^"]*"\s+-l\s+"([^"]+)"', source)
    if match is None:
        raise SystemExit("no getopt -l line found")
    return sorted("--" + option.rstrip(":") for option in match.group(1).split(","))


def case_flags(source: str) -> list[str]:
    """The ``--flag)`` labels of a bash ``case`` over the arguments."""
    return sorted(set(re.findall(r"^\s*(--[a-z][a-z0-9_-]*)\)", source, flags=re.MULTILINE)))


def class_fields(source: str, *class_names: str) -> list[str]:
    """Annotated field names in the bodies of the named classes (dataclass / pydantic fields)."""
    fields = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name in class_names:
            for item in node.body:
                if (
                    isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and not item.target.id.startswith("_")
                ):
                    fields.add(item.target.id)
    return sorted(fields)


def function_parameters(source: str, name: str) -> list[str]:
    """The named parameters of the top-level function ``name``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            arguments = node.args
            return [a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]]
    raise SystemExit(f"function {name} not found")


def yaml_keys(document: dict, prefix: str = "") -> list[str]:
    """Dotted paths of every mapping key in ``document`` (the OmegaConf override vocabulary)."""
    keys = []
    for key, value in document.items():
        path = f"{prefix}{key}"
        keys.append(path)
        if isinstance(value, dict):
            keys += yaml_keys(value, path + ".")
    return keys


def modelopt_inventory(repo: GitTree) -> dict:
    presets = "modelopt_recipes/configs/ptq/presets"
    hf_ptq = repo.read("examples/hf_ptq/hf_ptq.py") + repo.read("examples/hf_ptq/example_utils.py")
    launcher_core = repo.read("tools/launcher/core.py")
    slurm = repo.read("tools/launcher/slurm_config.py")
    launch = repo.read("tools/launcher/launch.py")
    return {
        "hf_ptq.py": {
            "from": ["examples/hf_ptq/hf_ptq.py", "examples/hf_ptq/example_utils.py"],
            "flags": argparse_flags(hf_ptq),
            "qformat": sorted(
                n.rsplit(".", 1)[0] for n in repo.list(f"{presets}/model") if n.endswith(".yaml")
            ),
            "kv_cache_qformat": sorted(
                ["none", *(n.rsplit(".", 1)[0] for n in repo.list(f"{presets}/kv") if n.endswith(".yaml"))]
            ),
        },
        "hf_ptq.py --recipe": {
            "from": ["modelopt_recipes/"],
            # built-in recipes are named by their path under modelopt_recipes/, without .yaml
            "recipes": sorted(
                path.rsplit(".", 1)[0]
                for path in repo.walk("modelopt_recipes")
                if path.endswith(".yaml") and not path.startswith("configs/")
            ),
        },
        "huggingface_example.sh": {
            "from": ["examples/hf_ptq/scripts/parser.sh"],
            "flags": getopt_flags(repo.read("examples/hf_ptq/scripts/parser.sh")),
        },
        "launcher common/hf/ptq.sh": {
            "from": ["tools/launcher/common/hf/ptq.sh"],
            "flags": case_flags(repo.read("tools/launcher/common/hf/ptq.sh")),
        },
        "launcher yaml": {
            "from": ["tools/launcher/launch.py", "tools/launcher/core.py", "tools/launcher/slurm_config.py"],
            "top_level": function_parameters(launch, "launch"),
            "pipeline": [*class_fields(launcher_core, "SandboxPipeline"), *(f"task_{i}" for i in range(5))],
            "global_vars": class_fields(launcher_core, "GlobalVariables"),
            "task": class_fields(launcher_core, "SandboxTask"),
            "slurm_config": ["_factory_", *function_parameters(slurm, "slurm_factory")],
        },
    }


def nemotron_inventory(nemotron: GitTree, bridge: GitTree) -> dict:
    step = "src/nemotron/steps/optimize/modelopt/quantize"
    configs = {
        name.rsplit(".", 1)[0]: yaml.safe_load(nemotron.read(f"{step}/config/{name}"))
        for name in nemotron.list(f"{step}/config")
        if name.endswith(".yaml")
    }
    keys = sorted({key for document in configs.values() for key in yaml_keys(document)})
    # The step forwards every `args.X` as `--X` with underscores turned into hyphens (the
    # config's `script.flag_style: hyphen`), so valid `args.*` keys are quantize.py's flags.
    sources = ["examples/quantization/quantize.py", "examples/quantization/quantize_utils.py"]
    flags = argparse_flags("\n".join(bridge.read(path) for path in sources))
    return {
        "nemotron steps optimize/modelopt/quantize": {
            "from": [f"{step}/config/{name}.yaml" for name in sorted(configs)],
            "configs": sorted(configs),
            "config_keys": keys,
        },
        "megatron-bridge quantize.py": {"from": sources, "flags": flags},
        "megatron-bridge export.py": {
            "from": ["examples/quantization/export.py", "examples/quantization/quantize_utils.py"],
            "flags": sorted(
                {
                    *argparse_flags(bridge.read("examples/quantization/export.py")),
                    *argparse_flags(bridge.read(sources[1]), "add_common_model_args"),
                }
            ),
        },
    }


def llm_compressor_inventory(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as archive:
        oneshot = archive.read("llmcompressor/entrypoints/oneshot.py").decode()
        model_free = archive.read("llmcompressor/entrypoints/model_free/__init__.py").decode()
        mixin = archive.read("llmcompressor/modifiers/quantization/quantization/mixin.py").decode()
        modifier = archive.read("llmcompressor/modifiers/modifier.py").decode()
    return {
        "oneshot": {
            "from": ["llmcompressor/entrypoints/oneshot.py"],
            "parameters": function_parameters(oneshot, "oneshot"),
        },
        "model_free_ptq": {
            "from": ["llmcompressor/entrypoints/model_free/__init__.py"],
            "parameters": function_parameters(model_free, "model_free_ptq"),
        },
        "QuantizationModifier": {
            "from": [
                "llmcompressor/modifiers/quantization/quantization/mixin.py",
                "llmcompressor/modifiers/modifier.py",
            ],
            "fields": sorted(
                {*class_fields(mixin, "QuantizationMixin"), *class_fields(modifier, "Modifier")}
            ),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modelopt", required=True, help="NVIDIA/Model-Optimizer git directory")
    parser.add_argument("--nemotron", required=True, help="NVIDIA-NeMo/Nemotron git directory")
    parser.add_argument("--megatron-bridge", required=True, help="NVIDIA-NeMo/Megatron-Bridge git directory")
    parser.add_argument("--llm-compressor", required=True, type=Path, help="the llmcompressor wheel")
    parser.add_argument("--out", type=Path, default=ROOT / "templates" / "tool-inventory.json")
    args = parser.parse_args(argv)
    modelopt, nemotron, bridge = GitTree(args.modelopt), GitTree(args.nemotron), GitTree(args.megatron_bridge)
    inventory = {
        "generated": datetime.date.today().isoformat(),
        "sources": {
            "NVIDIA/Model-Optimizer": {"commit": modelopt.commit, "date": modelopt.date},
            "NVIDIA-NeMo/Nemotron": {"commit": nemotron.commit, "date": nemotron.date},
            "NVIDIA-NeMo/Megatron-Bridge": {"commit": bridge.commit, "date": bridge.date},
            "llmcompressor": {"wheel": args.llm_compressor.name},
        },
        "tools": {
            **modelopt_inventory(modelopt),
            **nemotron_inventory(nemotron, bridge),
            **llm_compressor_inventory(args.llm_compressor),
        },
    }
    args.out.write_text(json.dumps(inventory, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
