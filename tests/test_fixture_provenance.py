"""The fixture manifest says exactly where each fixture file came from.

A quantized fixture's files are the tool's output, except those its generator copied from the
source model (`copied_from_source`, written by `fixture_sources.copy_sidecars`). These tests hold
the committed manifest to the committed bytes, so an edit to either that breaks the record fails.
"""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES, manifest, quantized_fixtures
from tests.fixtures.fixture_sources import SIDECAR_FILES

QUANTIZED = quantized_fixtures()


def test_only_quantized_fixtures_have_copies() -> None:
    assert all("copied_from_source" not in entry for entry in manifest() if not entry.get("source"))


def test_every_fixture_lists_its_files_with_their_sizes() -> None:
    for entry in manifest():
        directory = FIXTURES / entry["name"]
        on_disk = {p.name: p.stat().st_size for p in directory.iterdir() if p.is_file()}
        assert entry["files"] == on_disk, entry["name"]


@pytest.mark.parametrize("entry", QUANTIZED, ids=[e["name"] for e in QUANTIZED])
def test_copied_files_are_the_sources_bytes(entry: dict) -> None:
    copied = entry["copied_from_source"]
    assert set(copied) <= set(SIDECAR_FILES), copied
    for name in copied:
        copy, original = FIXTURES / entry["name"] / name, FIXTURES / entry["source"] / name
        assert copy.read_bytes() == original.read_bytes(), f"{entry['name']}/{name} differs from the source's"
