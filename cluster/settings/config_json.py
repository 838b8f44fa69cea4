"""A checkpoint's config.json, read and counted with the json module alone.

`revisor plan` sizes a run before launch, on a login node or a laptop, from the model's
config.json (the paper configs point at an architecture-only directory). Reading it with
transformers' AutoConfig and counting parameters on the meta device costs seconds of torch
and transformers imports, and ties the plan to an install that can build the model. For the
families Revisor runs (Llama-architecture LMs, Qwen2/Qwen3, LLaVA, Mllama, Qwen2-VL) this
module resolves the sizes the way transformers' config classes would (their defaults for
keys a config.json omits, nested text_config/vision_config, pre-v5 flat layouts) and counts
the parameters of the class Revisor loads (learner.model.backbone_class) analytically; the
test compares it with the meta-device count exactly. Any other family returns None here and
the caller falls back to transformers.

Defaults and layer layouts follow transformers 5.19 (models/<family>/configuration_*.py and
modeling_*.py); a transformers upgrade that changes them shows up in
tests/test_plan_no_torch.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Raw = dict[str, Any]

TEXT_DEFAULTS: dict[str, Raw] = {
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                  num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
                  head_dim=None, max_position_embeddings=2048, tie_word_embeddings=False,
                  attention_bias=False, mlp_bias=False),
    "qwen2": dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016,
                  num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                  head_dim=None, max_position_embeddings=32768, tie_word_embeddings=False),
    "qwen3": dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016,
                  num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                  head_dim=128, max_position_embeddings=32768, tie_word_embeddings=False,
                  attention_bias=False),
    "mllama_text_model": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                              num_hidden_layers=40, num_attention_heads=32,
                              num_key_value_heads=8, max_position_embeddings=131072,
                              tie_word_embeddings=False,
                              cross_attention_layers=[3, 8, 13, 18, 23, 28, 33, 38]),
    "qwen2_vl_text": dict(vocab_size=152064, hidden_size=8192, intermediate_size=29568,
                          num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                          max_position_embeddings=32768, tie_word_embeddings=False),
}
"""Per text model_type: transformers' config-class defaults for the keys counted here."""

LM_TYPES = ("llama", "qwen2", "qwen3")
"""Decoder-only families (AutoModelForCausalLM) and LLaVA's text models (AutoModel)."""

CLIP_DEFAULTS: Raw = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_channels=3, image_size=224, patch_size=32)
LLAVA_VISION_DEFAULTS: Raw = dict(CLIP_DEFAULTS, hidden_size=1024, intermediate_size=4096,
                                  num_hidden_layers=24, image_size=336, patch_size=14)
"""LlavaConfig's vision tower when config.json has no vision_config (CLIP ViT-L/14-336)."""
MLLAMA_VISION_DEFAULTS: Raw = dict(hidden_size=1280, intermediate_size=5120, attention_heads=16,
                                   num_hidden_layers=32, num_global_layers=8, num_channels=3,
                                   image_size=448, patch_size=14, max_num_tiles=4,
                                   vision_output_dim=7680, supported_aspect_ratios=[
                                       [1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1],
                                       [4, 1]])
QWEN2_VL_VISION_DEFAULTS: Raw = dict(depth=32, embed_dim=1280, hidden_size=3584, mlp_ratio=4,
                                     in_channels=3, patch_size=14, spatial_merge_size=2,
                                     temporal_patch_size=2)


def read_config_json(path: str | Path) -> Raw:
    """The parsed config.json of the checkpoint at `path`. A path that is not on this machine
    (a hub id) is resolved by transformers, imported here only for that case (it downloads)."""
    local = Path(path)
    if local.exists():
        with open(local / "config.json", encoding="utf-8") as file:
            return json.load(file)
    from transformers import AutoConfig  # hub ids only: local checkpoints never get here

    return AutoConfig.from_pretrained(str(path)).to_dict()


def with_defaults(raw: Raw | None, defaults: Raw) -> Raw:
    """`raw` over `defaults`, where a key the file omits takes the config class's default."""
    return {**defaults, **(raw or {})}


@dataclass(frozen=True)
class TextSpec:
    """The language model's sizes, resolved as its transformers config class resolves them."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    layers: int
    """All decoder layers (Mllama: self-attention and cross-attention layers)."""
    heads: int
    kv_heads: int
    head_dim: int
    context: int | None
    tie_word_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    """Qwen3: RMSNorm over each head's queries and keys."""
    cross_attention_layers: tuple[int, ...] = ()

    @property
    def cross_layers_built(self) -> int:
        """Cross-attention layers the model builds (indices within the decoder stack)."""
        return len({i for i in self.cross_attention_layers if 0 <= i < self.layers})


def text_part(raw: Raw) -> Raw:
    """The language model's settings: text_config when nested, else the file itself (plain
    LMs, and Qwen2-VL saved flat before transformers 5)."""
    nested = raw.get("text_config")
    return nested if isinstance(nested, dict) else raw


def text_spec(raw: Raw, model_type: str) -> TextSpec | None:
    """The resolved text sizes for a text model_type of TEXT_DEFAULTS, else None."""
    if model_type not in TEXT_DEFAULTS:
        return None
    t = with_defaults(raw, TEXT_DEFAULTS[model_type])
    heads, hidden = t["num_attention_heads"], t["hidden_size"]
    per_head = model_type in ("mllama_text_model", "qwen2_vl_text")  # they ignore head_dim
    qwen2 = model_type in ("qwen2", "qwen2_vl_text")
    attention_bias = bool(t.get("attention_bias", False))
    return TextSpec(
        model_type=model_type, vocab_size=t["vocab_size"], hidden_size=hidden,
        intermediate_size=t["intermediate_size"], layers=t["num_hidden_layers"], heads=heads,
        kv_heads=t["num_key_value_heads"] or heads,
        head_dim=hidden // heads if per_head else t.get("head_dim") or hidden // heads,
        context=t.get("max_position_embeddings"),
        tie_word_embeddings=bool(t.get("tie_word_embeddings", False)),
        qkv_bias=qwen2 or attention_bias, o_bias=not qwen2 and attention_bias,
        mlp_bias=bool(t.get("mlp_bias", False)), qk_norm=model_type == "qwen3",
        cross_attention_layers=tuple(t.get("cross_attention_layers") or ()))


def model_text_spec(raw: Raw) -> TextSpec | None:
    """The language model of a known family's config.json, else None."""
    family = raw.get("model_type")
    if family in LM_TYPES:
        return text_spec(raw, family)
    if family == "llava":  # no text_config: LlavaConfig's default, a LlamaConfig()
        text = raw.get("text_config") or {}
        return text_spec(text, text.get("model_type", "llama"))
    if family == "mllama":
        return text_spec(raw.get("text_config"), "mllama_text_model")
    if family == "qwen2_vl":
        return text_spec(text_part(raw), "qwen2_vl_text")
    return None


def linear(inputs: int, outputs: int, bias: bool = True) -> int:
    return inputs * outputs + (outputs if bias else 0)


def attention_parameters(t: TextSpec, bias: bool = True) -> int:
    """q, k, v and o projections with grouped-query K/V heads (plus Qwen3's q/k norms)."""
    q, kv = t.heads * t.head_dim, t.kv_heads * t.head_dim
    qkv_bias = bias and t.qkv_bias
    return (linear(t.hidden_size, q, qkv_bias) + 2 * linear(t.hidden_size, kv, qkv_bias)
            + linear(q, t.hidden_size, bias and t.o_bias) + (2 * t.head_dim if t.qk_norm else 0))


def mlp_parameters(t: TextSpec) -> int:
    """Gated MLP: gate, up and down projections."""
    h, i = t.hidden_size, t.intermediate_size
    return 2 * linear(h, i, t.mlp_bias) + linear(i, h, t.mlp_bias)


def decoder_parameters(t: TextSpec, extra_embeddings: int = 0) -> int:
    """The text model without its LM head: embeddings, every decoder layer, the final norm.
    Mllama's cross-attention layers add per-head q/k norms and two tanh gates, no biases."""
    h = t.hidden_size
    cross = t.cross_layers_built
    self_layer = attention_parameters(t) + mlp_parameters(t) + 2 * h
    cross_layer = attention_parameters(t, bias=False) + 2 * t.head_dim + 2 + mlp_parameters(t) + 2 * h
    return ((t.vocab_size + extra_embeddings) * h + (t.layers - cross) * self_layer
            + cross * cross_layer + h)


def lm_head_parameters(t: TextSpec, tied: bool) -> int:
    return 0 if tied else t.vocab_size * t.hidden_size


def clip_vision_parameters(v: Raw) -> int:
    """CLIPVisionModel: patch, class and position embeddings, pre/post LayerNorms, layers of
    biased attention and MLP with two LayerNorms each."""
    h, i, p = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    positions = (v["image_size"] // p) ** 2 + 1
    embeddings = h + h * v["num_channels"] * p * p + positions * h
    layer = 4 * linear(h, h) + linear(h, i) + linear(i, h) + 4 * h
    return embeddings + 4 * h + v["num_hidden_layers"] * layer


def mllama_vision_parameters(v: Raw) -> int:
    """MllamaVisionModel: tiled position embeddings (gated), local and gated global layers
    (attention without biases), pre/post LayerNorms."""
    h, i, p, tiles = v["hidden_size"], v["intermediate_size"], v["patch_size"], v["max_num_tiles"]
    patches = (v["image_size"] // p) ** 2 + 1
    ratios = len(v["supported_aspect_ratios"]) + 1
    heads = v["attention_heads"]
    attention = 4 * heads * (h // heads) * h
    layer = attention + linear(h, i) + linear(i, h) + 4 * h
    embeddings = (h * v["num_channels"] * p * p + h
                  + 1 + patches * h + ratios * tiles * patches * h  # gated position embedding
                  + 2 * (1 + ratios * tiles * h))  # pre- and post-tile embeddings
    return (embeddings + 4 * h + v["num_hidden_layers"] * layer
            + v["num_global_layers"] * (layer + 2))


def qwen2_vl_vision_parameters(v: Raw) -> int:
    """Qwen2-VL's ViT: a 3-D patch convolution, blocks of fused-qkv attention and MLP, and the
    merger MLP over spatial_merge_size^2 neighbouring patches (rotary: buffers, no weights)."""
    e, p, merge = v["embed_dim"], v["patch_size"], v["spatial_merge_size"] ** 2
    mlp = int(e * v["mlp_ratio"])
    block = 4 * e + linear(e, 3 * e) + linear(e, e) + linear(e, mlp) + linear(mlp, e)
    merger = 2 * e + linear(e * merge, e * merge) + linear(e * merge, v["hidden_size"])
    patch = e * v["in_channels"] * v["temporal_patch_size"] * p * p
    return patch + v["depth"] * block + merger


def vision_part(raw: Raw) -> tuple[str, Raw] | None:
    """(vision tower kind, its settings with the config class's defaults) of a known vision
    family; None for text models and for towers this module does not count."""
    family, vision = raw.get("model_type"), raw.get("vision_config")
    if family == "llava":
        if vision is None:
            return "clip", LLAVA_VISION_DEFAULTS
        kind = vision.get("model_type", "clip_vision_model")
        return ("clip", with_defaults(vision, CLIP_DEFAULTS)) if kind == "clip_vision_model" else None
    if family == "mllama":
        return "mllama", with_defaults(vision, MLLAMA_VISION_DEFAULTS)
    if family == "qwen2_vl":
        return "qwen2_vl", with_defaults(vision, QWEN2_VL_VISION_DEFAULTS)
    return None


def tied(raw: Raw, text: TextSpec) -> bool:
    """Whether the LM head shares the embedding matrix. LLaVA and Qwen2-VL read the top-level
    key, and (as their config classes do) also take True from text_config, where files saved
    before transformers 5 put it; Mllama never ties (its embeddings have 8 extra rows)."""
    family = raw.get("model_type")
    if family == "mllama":
        return False
    if family in LM_TYPES:
        return text.tie_word_embeddings
    return bool(raw.get("tie_word_embeddings", False)) or text.tie_word_embeddings


def count_parameters(raw: Raw) -> int | None:
    """All parameters of the model Revisor loads for this config.json (tied weights once),
    as learner.model.count_parameters counts them on the meta device; None for a family, or a
    text or vision model inside one, that this module does not know."""
    text = model_text_spec(raw)
    if text is None:
        return None
    family = raw.get("model_type")
    head = lm_head_parameters(text, tied(raw, text))
    if family in LM_TYPES:
        return decoder_parameters(text) + head
    vision = vision_part(raw)
    if vision is None or not all_int_sizes(vision[1]):
        return None
    kind, v = vision
    if kind == "clip":
        layers = raw.get("vision_feature_layer", -2)
        feature_layers = 1 if isinstance(layers, int) else len(layers)
        bias = bool(raw.get("multimodal_projector_bias", True))
        projector = (linear(v["hidden_size"] * feature_layers, text.hidden_size, bias)
                     + linear(text.hidden_size, text.hidden_size, bias))
        return decoder_parameters(text) + clip_vision_parameters(v) + projector + head
    if kind == "mllama":
        projector = linear(v["vision_output_dim"], text.hidden_size)
        return (decoder_parameters(text, extra_embeddings=8) + mllama_vision_parameters(v)
                + projector + head)
    return decoder_parameters(text) + qwen2_vl_vision_parameters(v) + head


def all_int_sizes(vision: Raw) -> bool:
    """Square images and patches (an int each): the only layout counted here."""
    return all(isinstance(vision.get(key, 0), int) for key in ("image_size", "patch_size"))


@dataclass(frozen=True)
class VisionSizes:
    """The tower's activation-relevant sizes for one image (model_shape.VisionShape)."""

    hidden_size: int
    layers: int
    tokens_per_image: int


def vision_sizes(raw: Raw) -> VisionSizes | None:
    """Mllama (every tile, global layers too) and CLIP towers; None for text models and for
    towers whose token count depends on the image (Qwen2-VL), as model_shape.vision_shape."""
    vision = vision_part(raw)
    if vision is None or vision[0] == "qwen2_vl" or not all_int_sizes(vision[1]):
        return None
    v = vision[1]
    patches = (v["image_size"] // v["patch_size"]) ** 2 + 1
    return VisionSizes(hidden_size=v["hidden_size"],
                       layers=v["num_hidden_layers"] + v.get("num_global_layers", 0),
                       tokens_per_image=v.get("max_num_tiles", 1) * patches)
