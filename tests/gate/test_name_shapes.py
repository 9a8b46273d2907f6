"""What the layer table works out once per name shape (names alike but for their digits) is what
it would work out name by name: the natural order, the template, and the MTP test by layer index;
on generated names that hold what breaks a shortcut (leading zeros, non-ASCII digits, the mask
character, line breaks, a dot or a character below '0' where another name has a digit)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ptq_validators.globs import digit_shapes, index_key, name_shapes
from ptq_validators.layers import _natural_key, natural_order
from ptq_validators.taxonomy import LayerGroup, classify, classify_template, mtp_flags

# Name parts as checkpoints spell them, and the characters that would break a careless shortcut.
PARTS = st.sampled_from(
    ["model", "layers", "mlp", "experts", "q_proj", "conv1d", "w1", "mtp", "", "-", "!", "٣", "\0", "\n"]
)
NUMBERS = st.sampled_from(["0", "1", "2", "9", "10", "11", "60", "61", "62", "007", "100", "٣"])
NAME = st.lists(st.one_of(PARTS, NUMBERS), min_size=1, max_size=6).map(".".join)
NAMES = st.lists(NAME, max_size=40, unique=True)


@settings(max_examples=300, deadline=None)
@given(NAMES)
@example(["conv1", "conv.proj", "conv10", "conv2"])  # a dot where another name has a digit
@example(["a01", "a1", "a001"])  # leading zeros: equal numbers, kept in input order
@example(["x.٣", "x.3", "x.2"])  # a non-ASCII digit
@example(["a\0", "a1"])  # the mask character itself
def test_natural_order_is_the_name_by_name_sort(names):
    assert natural_order(names) == sorted(names, key=_natural_key)


@settings(max_examples=300, deadline=None)
@given(NAMES)
@example(["model.layers.1.mlp", "model.layers.9.mlp", "model.layers.\0.mlp"])
@example(["model.layers.0.experts.1.w1", "model.layers.0.experts.1.w3"])  # digits in a word
@example(["10", "11", "10.x", "11.x"])  # a leading number, which index_key keeps
def test_names_of_one_key_have_one_template_and_digit_shape(names):
    keys = name_shapes(names)
    assert len(keys) == len(names)
    seen: dict[str, tuple[str, str]] = {}
    for key, name, shape in zip(keys, names, digit_shapes(names), strict=True):
        assert seen.setdefault(key, (index_key(name), shape)) == (index_key(name), shape)
        assert len(shape) == len(name)


@settings(max_examples=300, deadline=None)
@given(NAMES, st.sampled_from([None, 0, 2, 10, 61]))
@example(["model.layers.60.mlp", "model.layers.61.mlp", "model.layers.007.mlp"], 61)
@example(["layers.61.x.layers.1.y", "layers.11.x.layers.9.y"], 61)  # the first index decides
@example(["layers.061.x", "layers.007.x", "layers.100.x", "layers.6.x", "w1", "w3"], 61)  # widths
@example(["m.0.layers.61.x", "m.1.layers.1.x"], 61)  # a digit before the index
@example(["layers.\0.x", "layers.61.x"], 61)  # the mask character: every name its own shape
def test_mtp_flags_are_classify_name_by_name(names, depth):
    flags = mtp_flags(names, name_shapes(names), depth)
    groups = [
        LayerGroup.MTP if flag else classify_template(index_key(n))
        for flag, n in zip(flags, names, strict=True)
    ]
    assert groups == [classify(name, num_hidden_layers=depth) for name in names]
