"""Recipes: what a quantization recipe intends for each layer, with each tool's own semantics.

``modelopt_qformat(name)`` and ``llmc_scheme(name, ignore=...)`` return a ``Recipe`` whose
``intent(module_name)`` says which precision the tool would give that module (or ``None``: left
in high precision) and which rule decided it. The plan (before calibration) and the gate
(after export) both use this, so their layer tables speak the same language.
"""

from __future__ import annotations

from ptq_validators.recipes.base import Intent, Recipe
from ptq_validators.recipes.compressed_tensors import (
    CompressedTensorsRecipe,
    llmc_scheme,
)
from ptq_validators.recipes.modelopt import ModelOptRecipe, modelopt_qformat

__all__ = [
    "CompressedTensorsRecipe",
    "Intent",
    "ModelOptRecipe",
    "Recipe",
    "llmc_scheme",
    "modelopt_qformat",
]
