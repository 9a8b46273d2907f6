"""Synthetic checkpoints with the real tensor names, dtypes and shapes of large models, written
as sparse files: each shard is a real safetensors header followed by a hole the size of its data,
so a 671B-parameter export takes a few tens of MB of disk.

Layouts follow the public configs of Llama-3-70B and DeepSeek-V3 (MLA attention, 3 dense layers,
58 MoE layers of 256 routed experts + 1 shared, one MTP layer) and the tensor vocabulary of
ModelOpt exports (docs/formats.md §2.1) and Hugging Face fine-grained FP8 (§4).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from math import ceil
from pathlib import Path

Tensor = tuple[str, str, tuple[int, ...]]
SHARD_BYTES = 5 * 1024**3
DTYPE_BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1}
# The safetensors writer lays a file's tensors out by dtype, in descending order of its dtype
# enumeration (F32, BF16, F8_E4M3, U8 here), then by name; so do we.
WRITE_ORDER = {"F32": 0, "BF16": 1, "F8_E4M3": 2, "U8": 3}

LLAMA3_70B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "rms_norm_eps": 1e-5,
    "torch_dtype": "bfloat16",
}
DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "num_nextn_predict_layers": 1,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "rope_theta": 10000,
    "tie_word_embeddings": False,
    "rms_norm_eps": 1e-6,
    "torch_dtype": "bfloat16",
}

# Kimi-K2 (1.04T parameters): the DeepSeek-V3 architecture with 384 routed experts, one dense
# layer, 64 heads, a 160k vocabulary and no MTP layer (its public config.json).
KIMI_K2 = {
    **DEEPSEEK_V3,
    "model_type": "kimi_k2",
    "num_attention_heads": 64,
    "num_key_value_heads": 64,
    "n_routed_experts": 384,
    "first_k_dense_replace": 1,
    "num_nextn_predict_layers": 0,
    "vocab_size": 163840,
    "max_position_embeddings": 131072,
    "rope_theta": 50000.0,
}
MLA_MODEL_TYPES = ("deepseek_v3", "kimi_k2")
# The quantization_config in the config.json of DeepSeek-V3's and Kimi-K2's own FP8 releases.
FINE_GRAINED_FP8 = {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [128, 128],
}


def llama_linears(cfg: dict) -> Iterator[tuple[str, int, int]]:
    """(module, out, in) of every linear in Llama-3 order."""
    h, i, kv = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_key_value_heads"] * cfg["head_dim"]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        yield from (
            (f"{p}.self_attn.q_proj", h, h),
            (f"{p}.self_attn.k_proj", kv, h),
            (f"{p}.self_attn.v_proj", kv, h),
            (f"{p}.self_attn.o_proj", h, h),
            (f"{p}.mlp.gate_proj", i, h),
            (f"{p}.mlp.up_proj", i, h),
            (f"{p}.mlp.down_proj", h, i),
        )


def deepseek_linears(cfg: dict) -> Iterator[tuple[str, int, int]]:
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    for layer in range(cfg["num_hidden_layers"] + cfg["num_nextn_predict_layers"]):
        p = f"model.layers.{layer}"
        yield from (
            (f"{p}.self_attn.q_a_proj", cfg["q_lora_rank"], h),
            (f"{p}.self_attn.q_b_proj", heads * qk, cfg["q_lora_rank"]),
            (f"{p}.self_attn.kv_a_proj_with_mqa", cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"], h),
            (
                f"{p}.self_attn.kv_b_proj",
                heads * (cfg["qk_nope_head_dim"] + cfg["v_head_dim"]),
                cfg["kv_lora_rank"],
            ),
            (f"{p}.self_attn.o_proj", h, heads * cfg["v_head_dim"]),
        )
        if layer < cfg["first_k_dense_replace"]:
            i = cfg["intermediate_size"]
            yield from (
                (f"{p}.mlp.gate_proj", i, h),
                (f"{p}.mlp.up_proj", i, h),
                (f"{p}.mlp.down_proj", h, i),
            )
            continue
        i = cfg["moe_intermediate_size"]
        for e in range(cfg["n_routed_experts"]):
            q = f"{p}.mlp.experts.{e}"
            yield from ((f"{q}.gate_proj", i, h), (f"{q}.up_proj", i, h), (f"{q}.down_proj", h, i))
        q = f"{p}.mlp.shared_experts"
        yield from ((f"{q}.gate_proj", i, h), (f"{q}.up_proj", i, h), (f"{q}.down_proj", h, i))
        yield f"{p}.mlp.gate", cfg["n_routed_experts"], h
        if layer >= cfg["num_hidden_layers"]:
            yield f"{p}.eh_proj", h, 2 * h
            yield f"{p}.shared_head.head", cfg["vocab_size"], h


def linear_tensors(module: str, out: int, inp: int, fmt: str) -> list[Tensor]:
    if fmt == "bf16":
        return [(f"{module}.weight", "BF16", (out, inp))]
    if fmt == "hf_fp8":
        return [
            (f"{module}.weight", "F8_E4M3", (out, inp)),
            (f"{module}.weight_scale_inv", "F32", (ceil(out / 128), ceil(inp / 128))),
        ]
    if fmt == "modelopt_fp8":
        return [
            (f"{module}.weight", "F8_E4M3", (out, inp)),
            (f"{module}.weight_scale", "F32", ()),
            (f"{module}.input_scale", "F32", ()),
        ]
    if fmt == "modelopt_nvfp4":
        return [
            (f"{module}.weight", "U8", (out, inp // 2)),
            (f"{module}.weight_scale", "F8_E4M3", (out, inp // 16)),
            (f"{module}.weight_scale_2", "F32", ()),
            (f"{module}.input_scale", "F32", ()),
        ]
    raise ValueError(fmt)


def model_tensors(cfg: dict, fmt: str, excluded) -> list[Tensor]:
    """Every tensor of the model; linears for which ``excluded(name)`` is true stay BF16 (FP8
    sources keep their MoE gate, embeddings and head in BF16 too)."""
    deepseek = cfg["model_type"] in MLA_MODEL_TYPES
    h = cfg["hidden_size"]
    tensors: list[Tensor] = [
        ("model.embed_tokens.weight", "BF16", (cfg["vocab_size"], h)),
        ("model.norm.weight", "BF16", (h,)),
        ("lm_head.weight", "BF16", (cfg["vocab_size"], h)),
    ]
    linears = deepseek_linears(cfg) if deepseek else llama_linears(cfg)
    for module, out, inp in linears:
        tensors += linear_tensors(module, out, inp, "bf16" if excluded(module) else fmt)
    layers = cfg["num_hidden_layers"] + cfg.get("num_nextn_predict_layers", 0)
    for layer in range(layers):
        p = f"model.layers.{layer}"
        tensors += [
            (f"{p}.input_layernorm.weight", "BF16", (h,)),
            (f"{p}.post_attention_layernorm.weight", "BF16", (h,)),
        ]
        if deepseek:
            tensors += [
                (f"{p}.self_attn.q_a_layernorm.weight", "BF16", (cfg["q_lora_rank"],)),
                (f"{p}.self_attn.kv_a_layernorm.weight", "BF16", (cfg["kv_lora_rank"],)),
            ]
            if layer >= cfg["first_k_dense_replace"]:
                tensors.append((f"{p}.mlp.gate.e_score_correction_bias", "F32", (cfg["n_routed_experts"],)))
            if layer >= cfg["num_hidden_layers"]:
                tensors += [
                    (f"{p}.enorm.weight", "BF16", (h,)),
                    (f"{p}.hnorm.weight", "BF16", (h,)),
                    (f"{p}.shared_head.norm.weight", "BF16", (h,)),
                ]
    return tensors


def nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    """Data bytes of one tensor."""
    count = 1
    for dim in shape:
        count *= dim
    return count * DTYPE_BYTES[dtype]


def _write_scalar_scales(directory: Path, shards: list[list[Tensor]]) -> None:
    """Give every 0-d F32 scale a real value (the sparse data region reads as zeros otherwise,
    which the gate rightly rejects as a zero scale)."""
    for number, _members in enumerate(shards, 1):
        path = directory / f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        with open(path, "r+b") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_len))
            for name, entry in header.items():
                if name != "__metadata__" and entry["dtype"] == "F32" and entry["shape"] == []:
                    handle.seek(8 + header_len + entry["data_offsets"][0])
                    handle.write(struct.pack("<f", 0.01))


def write_checkpoint(
    directory: Path,
    config: dict,
    tensors: list[Tensor],
    quant_config: dict | None = None,
    shard_bytes: int = SHARD_BYTES,
    shard_count: int | None = None,
) -> int:
    """Write sparse shards of about ``shard_bytes`` each (or exactly ``shard_count`` shards of
    near-equal tensor counts), the index, config.json (and hf_quant_config.json); return the
    data bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    shards: list[list[Tensor]] = [[]]
    if shard_count is not None:
        # a whole tensor never spans two shards, so equal byte sizes cannot give N shards
        per, extra = divmod(len(tensors), shard_count)
        bounds = [i * per + min(i, extra) for i in range(shard_count + 1)]
        shards = [tensors[bounds[i] : bounds[i + 1]] for i in range(shard_count)]
    size = 0
    for tensor in tensors if shard_count is None else ():
        span = nbytes(tensor[1], tensor[2])
        if size + span > shard_bytes and shards[-1]:
            shards.append([])
            size = 0
        shards[-1].append(tensor)
        size += span
    weight_map: dict[str, str] = {}
    total = 0
    for number, members in enumerate(shards, 1):
        name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        header: dict = {"__metadata__": {"format": "pt"}}
        offset = 0
        for tname, dtype, shape in sorted(members, key=lambda t: (WRITE_ORDER[t[1]], t[0])):
            span = nbytes(dtype, shape)
            header[tname] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + span]}
            offset += span
            weight_map[tname] = name
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-(len(raw) + 8) % 8)
        with open(directory / name, "wb") as handle:
            handle.write(struct.pack("<Q", len(raw)) + raw)
            handle.truncate(8 + len(raw) + offset)  # the data region stays a hole
        total += offset
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    _write_scalar_scales(directory, shards)
    full_config = dict(config)
    if quant_config is not None:
        full_config["quantization_config"] = {
            "quant_algo": quant_config["quant_algo"],
            "ignore": quant_config["exclude_modules"],
            "quant_method": "modelopt",
        }
        (directory / "hf_quant_config.json").write_text(
            json.dumps({"producer": {"name": "modelopt", "version": "0.47.0"}, "quantization": quant_config})
        )
    (directory / "config.json").write_text(json.dumps(full_config, indent=2))
    return total
