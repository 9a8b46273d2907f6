"""The job spec: what it accepts, what it rejects, and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptq_validators.errors import InputError
from ptq_validators.launch.spec import load_spec

BASE = {"model": "Qwen/Qwen3-8B", "qformat": "fp8"}


def test_defaults_and_ranges_survive() -> None:
    spec = load_spec(None, {**BASE, "extra_pip": ["transformers>=4.57,<4.58"]})
    assert spec.extra_pip == ["transformers>=4.57,<4.58"]
    assert (spec.calib_size, spec.smoke_calib_size, spec.env_passthrough) == (512, 4, ["HF_TOKEN"])


def test_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("model: m\nqformat: fp8\ncalib_sise: 4\n")
    with pytest.raises(InputError) as err:
        load_spec(path, {})
    assert err.value.message.startswith(f"{path}: unknown key 'calib_sise' (valid keys: model, qformat")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"env": {"HF_TOKEN": "hf_abc"}}, "key 'env': HF_TOKEN looks like a secret"),
        ({"partition": "batch --wrap=x"}, "key 'partition': 'batch --wrap=x' is not a plain word"),
        ({"time": "4h"}, "key 'time': '4h' is not a SLURM time"),
        ({"mounts": ["/a,/b:/c"]}, "key 'mounts': mount '/a,/b:/c' is not SRC:DST[:ro|rw]"),
        (
            {"extra_pip": ["--index-url=http://x"]},
            "key 'extra_pip': '--index-url=http://x' is not a requirement",
        ),
        ({"recipe": "general/ptq/fp8_default-kv_fp8_cast"}, "set qformat or recipe, not both"),
        ({"model": "a\nb"}, "model contains a control character"),
        (
            {"env_passthrough": ["HF TOKEN"]},
            "key 'env_passthrough': 'HF TOKEN' is not an environment variable name",
        ),
    ],
)
def test_rejections(keys: dict[str, object], expected: str) -> None:
    with pytest.raises(InputError) as err:
        load_spec(None, {**BASE, **keys})
    assert expected in err.value.message
    assert "\n" not in err.value.message


def test_a_spec_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("- model\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_spec(path, {})


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("model: !!python/object/apply:os.system ['touch pwned']\nqformat: fp8\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_spec(path, {})
    assert not (tmp_path / "pwned").exists()
