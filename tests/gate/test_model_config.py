"""One reader of config.json facts: the language model's block first, then the top level
(tying: the top level first), on the committed source configs and on the nested shapes the
fixtures do not cover."""

from __future__ import annotations

import json

from ptq_validators import model_config as mc
from tests.conftest import FIXTURES


def _config(name: str) -> dict:
    return json.loads((FIXTURES / name / "config.json").read_text())


def test_committed_sources():
    moe, vlm = _config("src-moe"), _config("src-vlm")
    assert mc.expert_count(moe) and mc.experts_per_token(moe)
    assert mc.expert_count(_config("src-llama")) is None
    assert mc.num_hidden_layers(vlm) == vlm["text_config"]["num_hidden_layers"]
    assert mc.vision_config(vlm) is vlm["vision_config"]


def test_nested_blocks_and_priorities():
    nested = {
        "num_hidden_layers": 3,  # stale top-level value: the language model's block wins
        "llm_config": {"num_hidden_layers": 48, "n_routed_experts": 256, "num_experts_per_tok": 8},
        "num_nextn_predict_layers": 1,  # MTP declared beside, not inside, the text block
        "tie_word_embeddings": False,
    }
    nested["llm_config"]["tie_word_embeddings"] = True
    assert mc.num_hidden_layers(nested) == 48
    assert (mc.expert_count(nested), mc.experts_per_token(nested)) == (256, 8)
    assert mc.mtp_layers(nested) == 1
    assert mc.tie_setting(nested) is False and not mc.tied_embeddings(nested)
    assert mc.tie_setting({"text_config": {"tie_word_embeddings": True}}) is True
    assert mc.expert_count({"num_experts": True}) is None  # a bool is not a count
