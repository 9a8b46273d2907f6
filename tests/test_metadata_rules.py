"""Metadata drift classification: the rules file, and no save-time artefact warns on a real export."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptq_validators.checks import metadata as md
from tests.conftest import FIXTURES, quantized_fixtures, recipe_args

# Keys that transformers or the quantization tools write at save time, whatever the model: a
# WARN on one of them teaches users to ignore WARN.
SAVE_TIME_KEYS = {
    "is_local",
    "local_files_only",
    "transformers_version",
    "_from_model_config",
    "_name_or_path",
    "name_or_path",
    "_commit_hash",
    "torch_dtype",
    "dtype",
}


@pytest.mark.parametrize("entry", quantized_fixtures(), ids=lambda e: e["name"])
def test_no_fixture_warns_about_a_save_time_artefact(ptqv, entry):
    result = ptqv(
        "gate",
        FIXTURES / entry["name"],
        "--source",
        FIXTURES / entry["source"],
        "--json",
        *recipe_args(entry),
    )
    report = result.json()
    warned = [
        (diff["file"], diff["key"])
        for diff in report["metadata_diffs"]
        if diff["classification"] == md.WARNING and diff["key"].split(".")[-1] in SAVE_TIME_KEYS
    ]
    assert warned == []
    for diff in report["metadata_diffs"]:
        if diff["key"].split(".")[-1] in SAVE_TIME_KEYS:
            assert diff["classification"] == md.EXPECTED, diff


def test_the_rules_file_decides():
    assert md.classify_tokenizer("is_local") == md.EXPECTED
    assert md.classify_tokenizer("local_files_only") == md.EXPECTED
    assert md.classify_tokenizer("truncation") == md.WARNING  # a real serving risk, kept on purpose
    assert md.classify_tokenizer("chat_template") == md.BLOCKING
    assert md.classify_tokenizer("model_max_length") == md.WARNING  # unlisted keys warn
    assert md.classify_config("text_config.dtype") == md.EXPECTED
    assert md.classify_config("text_config.rope_theta") == md.BLOCKING
    assert md.classify_config("quantization_config.config_groups") == md.EXPECTED
    assert md.classify_generation("transformers_version") == md.EXPECTED
    assert md.classify_generation("temperature") == md.BLOCKING


def test_every_rule_has_a_reason():
    """Each listed key has a comment on its line, or sits in a list whose header line says why."""
    from ptq_validators.checks import metadata

    rules_file = Path(metadata.__file__).parent / "data" / md.RULES_FILE
    header_comment = False
    for line in rules_file.read_text(encoding="utf-8").splitlines():
        code = line.split("#")[0].strip()
        if code.endswith(":"):  # a section or list header
            header_comment = "#" in line
        elif code.startswith("- "):
            assert "#" in line or header_comment, line
