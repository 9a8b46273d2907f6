"""The tensor-role vocabulary: the leaf names a module's tensors carry (``weight``,
``weight_scale``, ``input_scale`` ...), grouped by what they mean (docs/formats.md §9.1).

Everything that sorts tensors by role imports these sets: the layer table (module grouping and
bits per weight), the adapters, the ``names``, ``scales`` and ``kv_cache`` checks and ``--deep``.
A role missing here is read as a foreign suffix by the ``names`` check, so a new format's
tensors are added here once.
"""

from __future__ import annotations

# Roles whose bits count towards a layer's bits per weight.
WEIGHT_SIDE_ROLES = frozenset(
    {
        "weight",
        "weight_packed",
        "qweight",
        "blocks",
        "weight_scale",
        "weight_scale_2",
        "weight_scale_inv",
        "weight_global_scale",
        "scales",
        "weight_zero_point",
        "qzeros",
        "g_idx",
        "weight_g_idx",
        "weight_shape",
        "svdquant_lora_a",
        "svdquant_lora_b",
    }
)
# Activation-side quantization tensors. ``activation_scale`` is transformers' FP8Linear static
# input scale (``FineGrainedFP8Config(activation_scheme="static")``).
ACTIVATION_ROLES = frozenset(
    {
        "input_scale",
        "input_global_scale",
        "input_zero_point",
        "pre_quant_scale",
        "output_scale",
        "activation_scale",
    }
)
KV_ROLES = frozenset(
    {
        "k_scale",
        "v_scale",
        "q_scale",
        "kv_scale",
        "k_bias",
        "v_bias",
        "k_zero_point",
        "v_zero_point",
    }
)
# The KV-cache scales engines look for (the ``kv_cache`` check), in the order it reports them.
KV_SCALE_ROLES = ("k_scale", "v_scale", "kv_scale")
AUXILIARY_ROLES = frozenset({"bias"})
KNOWN_ROLES = WEIGHT_SIDE_ROLES | ACTIVATION_ROLES | KV_ROLES | AUXILIARY_ROLES
# Roles a quantizer adds beside (or instead of) the source's own tensors.
QUANTIZATION_ROLES = (WEIGHT_SIDE_ROLES | ACTIVATION_ROLES | KV_ROLES) - {"weight"}

# The tensor that stores the weight itself, packed first.
ANCHOR_ROLES = ("weight_packed", "qweight", "blocks", "weight")
# Packed anchors replace the source's weight: ``p.weight_packed`` / ``p.qweight`` stand for
# ``p.weight``, GPT-OSS ``experts.gate_up_proj_blocks`` for the fused ``experts.gate_up_proj``.
PACKED_ANCHORS = {"weight_packed": ".weight", "qweight": ".weight", "blocks": ""}
# Weight quantization parameters whose presence beside a float weight means fake quant.
WEIGHT_QUANT_PARAMS = ("weight_scale", "weight_zero_point", "weight_global_scale")

# Suffixes that BMM-style fused experts append to the parameter name (docs/formats.md §2.2, §5),
# longest first so that ``_weight_scale_2`` is tried before ``_weight_scale``.
FUSED_ROLE_SUFFIXES = tuple(
    sorted(
        (
            "weight_scale_2",
            "weight_scale",
            "input_scale",
            "weight_scale_inv",
            "blocks",
            "scales",
            "bias",
            "input_global_scale",
            "weight_global_scale",
        ),
        key=len,
        reverse=True,
    )
)

# Scales that are one number (or one per expert) and must be > 0; ``weight_scale`` counts only
# when it has one element. Block/group scales may be zero for all-zero blocks.
SCALAR_SCALE_ROLES = frozenset(
    {
        "weight_scale_2",
        "input_scale",
        "activation_scale",
        "weight_global_scale",
        "input_global_scale",
        "k_scale",
        "v_scale",
        "kv_scale",
        "weight_scale",
    }
)
# Block / group scale grids (``--deep`` reads them in full).
BLOCK_SCALE_ROLES = frozenset({"weight_scale", "weight_scale_inv", "scales"})
# Scale roles that a ``U8`` dtype marks as E8M0 exponents (MX formats).
E8M0_SCALE_ROLES = frozenset({"weight_scale", "scales"})
# Stored weights worth sampling for NaN/Inf (packed 4-bit codes have no NaN encoding).
SAMPLED_WEIGHT_ROLES = frozenset({"weight", "blocks"})
