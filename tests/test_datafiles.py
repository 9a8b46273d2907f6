"""The data files we ship parse to the same data with libyaml's safe loader, which
``datafiles`` uses for speed, as with PyYAML's pure-Python ``yaml.safe_load``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ptq_validators import datafiles

PACKAGE = Path(datafiles.__file__).resolve().parent
DATA_FILES = sorted(PACKAGE.glob("*/data/*.yaml"))


def test_every_stage_ships_its_data_files():
    assert {path.parent.parent.name for path in DATA_FILES} == {"canary", "checks", "preflight", "recipes"}


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda path: f"{path.parent.parent.name}/{path.name}")
def test_the_fast_safe_loader_reads_what_safe_load_reads(path):
    text = path.read_text(encoding="utf-8")
    assert yaml.load(text, Loader=datafiles.SAFE_LOADER) == yaml.safe_load(text)


def test_the_loader_is_a_safe_one():
    assert issubclass(datafiles.SAFE_LOADER, yaml.constructor.SafeConstructor)
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load("!!python/object/apply:os.system ['true']", Loader=datafiles.SAFE_LOADER)
