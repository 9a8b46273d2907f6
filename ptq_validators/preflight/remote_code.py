"""The imports of a model's own ``*.py`` files (trust_remote_code), read with ``ast``.

The files are parsed, never imported or executed. Each top-level package they import is looked
up in this environment (``importlib.util.find_spec`` on the top-level name, which loads
nothing) and mapped to the pip package and install hint from ``data/import_hints.yaml``.
Imports guarded by ``try/except ImportError`` or an ``if is_*_available()`` test are optional.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ptq_validators.datafiles import load_data

_GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def scan_imports(model_dir: Path) -> list[dict[str, Any]]:
    """Third-party packages imported by ``model_dir/*.py``, one row per package, sorted.

    Row: ``{module, package, install, files, optional, installed}``. Standard-library modules
    and the model's own sibling modules are left out. A file that does not parse is reported
    as a row with ``module: None`` and the syntax error.
    """
    local = {p.stem for p in model_dir.glob("*.py")}
    found: dict[str, dict[str, Any]] = {}
    errors = []
    for path in sorted(model_dir.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=path.name)
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            errors.append(
                {
                    "module": None,
                    "package": None,
                    "install": None,
                    "files": [path.name],
                    "optional": False,
                    "installed": None,
                    "error": f"{path.name}: cannot parse ({exc.__class__.__name__})",
                }
            )
            continue
        for module, optional in _imports(tree):
            if module in local or module in sys.stdlib_module_names or module == "__future__":
                continue
            row = found.setdefault(module, {"module": module, "files": [], "optional": True})
            if path.name not in row["files"]:
                row["files"].append(path.name)
            row["optional"] = row["optional"] and optional
    hints = load_data("preflight", "import_hints.yaml")["hints"]
    rows = []
    for module in sorted(found):
        hint = hints.get(module, {})
        package = hint.get("package", module.replace("_", "-"))
        rows.append(
            {
                **found[module],
                "package": package,
                "install": hint.get("install", f"pip install {package}"),
                "installed": importlib.util.find_spec(module) is not None,
            }
        )
    return rows + errors


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(top-level module, optional) for every absolute import in ``tree``."""
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Import):
            out.extend((alias.name.split(".")[0], optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module.split(".")[0], optional))
        elif isinstance(node, ast.Try):
            guarded = optional or any(_catches_import_error(h) for h in node.handlers)
            for statement in node.body:
                visit(statement, guarded)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
        elif isinstance(node, ast.If):
            guarded = optional or _is_availability_test(node.test)
            for statement in node.body:
                visit(statement, guarded)
            for statement in node.orelse:
                visit(statement, optional)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child, optional)

    visit(tree, False)
    return out


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    """A handler that swallows ImportError; one that raises again keeps the import required."""
    if any(isinstance(node, ast.Raise) for node in ast.walk(handler)):
        return False
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in _GUARD_EXCEPTIONS for n in names)


def _is_availability_test(test: ast.expr) -> bool:
    """``if is_flash_attn_available():`` and similar feature tests (also negated or combined)."""
    for node in ast.walk(test):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name.startswith("is_") and name.endswith("_available"):
                return True
    return False
