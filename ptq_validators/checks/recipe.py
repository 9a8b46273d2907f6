"""The recipe check: the export against the ``--qformat`` / ``--scheme`` it was made with.

In: the export's layer table and the recipe. Out: one ``recipe`` result. A recipe whose own
format contradicts the checkpoint's declaration (ModelOpt ``quant_algo``, compressed-tensors
config groups, or another tool's metadata altogether) is blocking, with both names in the line;
per layer the recipe's intent is a contract (``coverage.check_expectation``).
"""

from __future__ import annotations

from ptq_validators.checks import coverage
from ptq_validators.checks.base import CheckResult
from ptq_validators.formats.base import Declaration
from ptq_validators.formats.compressed_tensors import CompressedTensorsDeclaration
from ptq_validators.formats.ct_rules import weight_precision
from ptq_validators.formats.modelopt import ModelOptDeclaration, algo_spec
from ptq_validators.layers import LayerKind, LayerTable
from ptq_validators.precision import scheme_label
from ptq_validators.recipes import CompressedTensorsRecipe, Intent, Recipe
from ptq_validators.recipes.modelopt import ModelOptRecipe

TITLE = "Recipe coverage"
_TOOL_FAMILY = {
    ModelOptRecipe: ("--qformat", "modelopt"),
    CompressedTensorsRecipe: ("--scheme", "compressed-tensors"),
}


def check_recipe(
    table: LayerTable, recipe: Recipe | None, *, allow_extra: bool = False, note: str | None = None
) -> CheckResult:
    """Each layer against the recipe's intent, after the recipe against the declaration."""
    if recipe is None:
        return coverage.skipped("recipe", TITLE, "no --qformat or --scheme given")
    intents: dict[str, Intent] | dict[LayerKind, Intent]
    if recipe.index_free:
        # Every name of one template gets the same intent: ask once per kind.
        intents = {
            kind: recipe.intent(kind.template, fused_param=kind.fused, module_class=kind.module_class)
            for kind in table.kind_counts()
        }
    else:
        intents = {
            layer.name: recipe.intent(layer.name, fused_param=layer.fused, module_class=layer.module_class)
            for layer in table.layers
        }
    return coverage.check_expectation(
        table,
        intents,
        check_id="recipe",
        title=f"{TITLE} ({recipe.name})",
        allow_extra=allow_extra,
        conflicts=declaration_conflicts(recipe, table.declaration),
        note=note,
    )


def declaration_conflicts(recipe: Recipe, declaration: Declaration) -> tuple[str, ...]:
    """Where the recipe's format contradicts what the checkpoint declares (empty: none)."""
    flag, family = next(
        ((f, fam) for cls, (f, fam) in _TOOL_FAMILY.items() if isinstance(recipe, cls)), (None, None)
    )
    if flag is None:
        return ()
    label = scheme_label(recipe.precision, recipe.activation)
    named = (
        f"{flag} {recipe.name}" if recipe.name.upper() == label.upper() else f"{flag} {recipe.name} ({label})"
    )
    if declaration.family != family:
        declared = (
            "no quantization metadata"
            if declaration.family == "dense"
            else f"{declaration.family} quantization metadata"
        )
        return (f"{named} is a {family} recipe, but the export declares {declared}",)
    if isinstance(recipe, ModelOptRecipe) and isinstance(declaration, ModelOptDeclaration):
        return _quant_algo_conflict(recipe, declaration, named)
    if isinstance(recipe, CompressedTensorsRecipe) and isinstance(declaration, CompressedTensorsDeclaration):
        return _config_group_conflict(recipe, declaration, named)
    return ()


def _quant_algo_conflict(
    recipe: ModelOptRecipe, declaration: ModelOptDeclaration, named: str
) -> tuple[str, ...]:
    """Two quant_algos conflict when they store a different weight or activation side
    (``NVFP4`` and ``NVFP4_AWQ`` store the same)."""
    declared_algo = str(declaration.quant_algo or "")
    if not recipe.quant_algo or not declared_algo or declared_algo.upper() == "MIXED_PRECISION":
        return ()
    wanted, declared = algo_spec(recipe.quant_algo), algo_spec(declared_algo)
    if (wanted.precision, wanted.activation) == (declared.precision, declared.activation):
        return ()
    return (
        f"{named} writes quant_algo {recipe.quant_algo}, but the export declares quant_algo "
        f"{declared_algo} ({scheme_label(declared.precision, declared.activation)})",
    )


def _config_group_conflict(
    recipe: CompressedTensorsRecipe, declaration: CompressedTensorsDeclaration, named: str
) -> tuple[str, ...]:
    """The scheme conflicts when no config group stores its weight and activation side."""
    groups = {
        name: (weight_precision(args)[0], declaration.activations[name])
        for name, _, args in declaration.groups
    }
    wanted = (recipe.precision, recipe.activation)
    if not groups or any(group == wanted for group in groups.values()):
        return ()
    # llm-compressor names a group after its preset: show the stored scheme only where it differs
    declared = ", ".join(
        name if name == scheme_label(p, a) else f"{name} ({scheme_label(p, a)})"
        for name, (p, a) in groups.items()
    )
    return (f"{named} matches no config group the export declares: {declared}",)
