"""Memory of one learner rank and of one rollout worker, estimated from the model's shape.

Each estimate is a list of named items with the arithmetic that produced it, so that a plan
that does not fit says which allocation is too big and why. The factors are the ones
DeepSpeed 0.19 and the engines actually use here (checked on CPU against a real DeepSpeed
step by tests/test_plan.py):

- learner weights and gradients: the training dtype; ZeRO-2 shards gradients and ZeRO-3
  weights over the data-parallel ranks;
- optimizer states: at ZeRO 0 DeepSpeed hands Revisor's AdamW the parameters themselves
  (two moments in the parameter dtype); from ZeRO 1 on it keeps an fp32 master copy of its
  partition with two fp32 moments (12 bytes a parameter, even when training in fp32);
- activations: 34 x hidden bytes per token and layer in 16-bit (Korthikanti et al. 2022,
  "Reducing activation recomputation", without the attention-score term that SDPA never
  materialises); with gradient checkpointing each layer keeps only its input hidden state
  and one layer at a time is recomputed whole.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cluster.plan.model_shape import ModelShape
from contracts.engine_config import RolloutEngineConfig
from learner.config import DeepSpeedConfig

GIB = 1 << 30
ACTIVATION_FACTOR = 34
"""Activation bytes per token, layer and hidden unit in 16-bit (doubled in fp32)."""
CUDA_CONTEXT_BYTES = 1 * GIB
"""CUDA context, NCCL communicators and allocator slack of any GPU process (a round figure)."""
ZERO_REDUCE_BUCKET = 500_000_000
"""DeepSpeed's reduce_bucket_size (elements), the gradient bucket of ZeRO 1-3."""
ZERO3_LIVE_PARAMETERS = 1_000_000_000
"""DeepSpeed's stage3_max_live_parameters: gathered ZeRO-3 parameters held at once (a bound)."""
LOGIT_BYTES = 12
"""Per scored token and vocabulary entry: the logits, their fp32 copy and the log-softmax."""
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class MemoryItem(BaseModel):
    """One allocation of a process: its size and how it was computed."""

    model_config = ConfigDict(frozen=True)

    name: str
    bytes: int
    how: str


class ProcessEstimate(BaseModel):
    """Memory of one process of a kind, on one of its GPUs (or in host memory on CPU)."""

    model_config = ConfigDict(frozen=True)

    role: str
    device: Literal["gpu", "cpu"]
    items: list[MemoryItem]
    limit_bytes: int | None = None
    """What the process may use: its GPU's memory (or vLLM's share of it); None on CPU."""
    kv_tokens: int | None = None
    """Rollout workers: tokens the KV cache holds."""
    notes: list[str] = Field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(item.bytes for item in self.items)

    def bytes_of(self, name: str) -> int:
        return sum(item.bytes for item in self.items if item.name == name)

    @property
    def over_bytes(self) -> int:
        return 0 if self.limit_bytes is None else max(0, self.total_bytes - self.limit_bytes)


class LearnerSetup(BaseModel):
    """What sizes one learner rank: sharding, precision, batch and sequence."""

    model_config = ConfigDict(frozen=True)

    role: str = "learner rank"
    ranks: int
    engine: DeepSpeedConfig
    on_gpu: bool
    gradient_checkpointing: bool = False
    sequence_tokens: int
    """Longest turn the learner scores (prompt + answer: the engine's max_model_len)."""
    answer_tokens: int
    """Scored tokens of a turn (the sampling max_tokens): only they go through the LM head."""
    images_per_turn: int = 0
    value_head_parameters: int = 0
    extra_parameters: int = 0
    """A separate critic's backbone, trained alongside."""
    limit_bytes: int | None = None


def gib(value: int | float) -> str:
    """GiB with one decimal; MiB below 1 GiB, so that small models do not print zeros."""
    if abs(value) < GIB:
        return f"{value / (1 << 20):.1f} MiB"
    return f"{value / GIB:.1f} GiB"


def count(parameters: int) -> str:
    return f"{parameters / 1e9:.3g}B" if parameters >= 1e9 else f"{parameters / 1e6:.3g}M"


def training_dtype(engine: DeepSpeedConfig, on_gpu: bool) -> tuple[str, int]:
    """The dtype learner.engine.resolve_dtype picks on that device, and its size."""
    name = engine.dtype if engine.dtype != "auto" else ("bfloat16" if on_gpu else "float32")
    return name, DTYPE_BYTES[name]


def learner_estimate(shape: ModelShape, setup: LearnerSetup) -> ProcessEstimate:
    """One learner rank: model states by ZeRO stage, activations, logits, value head."""
    stage, ranks = setup.engine.zero_stage, setup.ranks
    dtype, size = training_dtype(setup.engine, setup.on_gpu)
    params = shape.parameters + setup.extra_parameters

    def shard(total: int, sharded: bool) -> int:
        return math.ceil(total / ranks) if sharded else total

    per_rank = f" / {ranks} ranks" if ranks > 1 else ""
    optim_bytes = 2 * size if stage == 0 else 12
    optim_how = (f"2 Adam moments x {size} B ({dtype}): ZeRO-0 steps the parameters themselves"
                 if stage == 0 else "12 B (fp32 master copy + 2 fp32 Adam moments)"
                 + (per_rank + f" (ZeRO-{stage})" if ranks > 1 else ""))
    items = [
        MemoryItem(name="weights", bytes=shard(params * size, stage >= 3),
                   how=f"{count(params)} params x {size} B ({dtype})"
                   + (per_rank + " (ZeRO-3)" if stage >= 3 and ranks > 1 else "")),
        MemoryItem(name="gradients", bytes=shard(params * size, stage >= 2),
                   how=f"{count(params)} x {size} B"
                   + (per_rank + f" (ZeRO-{stage})" if stage >= 2 and ranks > 1 else "")),
        optimizer_item(shard(params * optim_bytes, stage >= 1), f"{count(params)} x {optim_how}",
                       setup.engine.offload_optimizer),
        *activation_items(shape, setup, size),
    ]
    if setup.value_head_parameters:
        per_param = 2 * size + optim_bytes
        items.append(MemoryItem(name="value head", bytes=setup.value_head_parameters * per_param,
                                how=f"{setup.value_head_parameters:,} params x {per_param} B "
                                    "(weights, gradients, optimizer states)"))
    items += runtime_items(params, stage, size, setup.on_gpu)
    return ProcessEstimate(role=setup.role, device="gpu" if setup.on_gpu else "cpu",
                           items=items, limit_bytes=setup.limit_bytes)


def optimizer_item(nbytes: int, how: str, offloaded: bool) -> MemoryItem:
    """Offloaded (learner.engine.offload_optimizer), the states live in host memory."""
    if not offloaded:
        return MemoryItem(name="optimizer states", bytes=nbytes, how=how)
    return MemoryItem(name="optimizer states", bytes=0,
                      how=f"offloaded: {gib(nbytes)} of host memory a rank ({how})")


def activation_items(shape: ModelShape, setup: LearnerSetup, size: int) -> list[MemoryItem]:
    """Saved activations of one micro-batch (text layers and vision tower) and its logits."""
    micro = setup.engine.micro_batch_size
    text = layer_activations(micro * setup.sequence_tokens, shape.hidden_size, shape.layers,
                             size, setup.gradient_checkpointing)
    how = (f"{micro} turns x {setup.sequence_tokens} tokens x {shape.hidden_size} hidden x "
           f"{shape.layers} layers x " + activation_factor(size, setup.gradient_checkpointing))
    items = [MemoryItem(name="activations", bytes=text, how=how)]
    if shape.vision is not None and setup.images_per_turn:
        tokens = micro * setup.images_per_turn * shape.vision.tokens_per_image
        vision = layer_activations(tokens, shape.vision.hidden_size, shape.vision.layers, size,
                                   setup.gradient_checkpointing)
        items.append(MemoryItem(
            name="vision activations", bytes=vision,
            how=f"{micro} turns x {setup.images_per_turn} image(s) x "
                f"{shape.vision.tokens_per_image} tokens x {shape.vision.hidden_size} hidden x "
                f"{shape.vision.layers} layers x "
                + activation_factor(size, setup.gradient_checkpointing)))
    logits = micro * setup.answer_tokens * shape.vocab_size * LOGIT_BYTES
    items.append(MemoryItem(name="answer logits", bytes=logits,
                            how=f"{micro} turns x {setup.answer_tokens} answer tokens x "
                                f"{shape.vocab_size} vocab x {LOGIT_BYTES} B"))
    return items


def layer_activations(tokens: int, hidden: int, layers: int, size: int, checkpointed: bool) -> int:
    full_layer = tokens * hidden * ACTIVATION_FACTOR * size // 2
    if checkpointed:
        return tokens * hidden * size * layers + full_layer
    return full_layer * layers


def activation_factor(size: int, checkpointed: bool) -> str:
    per_layer = f"{ACTIVATION_FACTOR * size // 2} B"
    if checkpointed:
        return f"{size} B (checkpointed layer inputs) + one layer recomputed at {per_layer}"
    return per_layer


def runtime_items(params: int, stage: int, size: int, on_gpu: bool) -> list[MemoryItem]:
    """DeepSpeed's buffers and the CUDA context: fixed costs that small models never see."""
    items = []
    if stage >= 1:
        bucket = min(params, ZERO_REDUCE_BUCKET) * size
        live = min(params, ZERO3_LIVE_PARAMETERS) * size if stage == 3 else 0
        how = f"reduce bucket min(params, {ZERO_REDUCE_BUCKET:.0e}) x {size} B"
        if live:
            how += f" + ZeRO-3 live parameters min(params, {ZERO3_LIVE_PARAMETERS:.0e}) x {size} B"
        items.append(MemoryItem(name="ZeRO buffers", bytes=bucket + live, how=how))
    if on_gpu:
        items.append(MemoryItem(name="CUDA context", bytes=CUDA_CONTEXT_BYTES,
                                how="context, NCCL and allocator slack (round figure)"))
    return items


class RolloutSetup(BaseModel):
    """What sizes one rollout worker's engine."""

    model_config = ConfigDict(frozen=True)

    engine: RolloutEngineConfig
    vllm: bool
    """vLLM serves the model (else the HF engine does, with a reason)."""
    on_gpu: bool
    gpu_bytes: int
    sequences: int
    """HF engine: sequences generated in one batch (rollout.episodes_in_flight)."""
    answer_tokens: int
    images_per_sequence: int = 0


def rollout_estimate(shape: ModelShape, setup: RolloutSetup) -> ProcessEstimate:
    engine = setup.engine
    size = DTYPE_BYTES[engine.dtype]
    tp = engine.tensor_parallel_size
    weights = MemoryItem(name="weights", bytes=math.ceil(shape.parameters * size / tp),
                         how=f"{count(shape.parameters)} params x {size} B ({engine.dtype})"
                         + (f" / tensor parallel {tp}" if tp > 1 else ""))
    runtime = [MemoryItem(name="CUDA context", bytes=CUDA_CONTEXT_BYTES,
                          how="context and allocator slack (round figure)")] if setup.on_gpu else []
    if setup.vllm:
        return vllm_estimate(shape, setup, [weights, *runtime])
    return hf_estimate(shape, setup, [weights, *runtime])


def kv_how(shape: ModelShape, size: int, tp: int) -> str:
    heads = max(1, shape.kv_heads // tp)
    layers = f"{shape.self_attention_layers} self-attention layers"
    if shape.cross_attention_layers:
        layers += (f" (of {shape.layers}; the {shape.cross_attention_layers} cross-attention "
                   "ones cache image K/V only)")
    return f"2 x {layers} x {heads} KV heads x {shape.head_dim} x {size} B"


def vllm_estimate(shape: ModelShape, setup: RolloutSetup,
                  fixed: list[MemoryItem]) -> ProcessEstimate:
    """vLLM: weights, the profiled activation peak, and a KV cache of the configured bytes or
    of whatever gpu_memory_utilization x GPU memory leaves."""
    engine = setup.engine
    size, tp = DTYPE_BYTES[engine.dtype], engine.tensor_parallel_size
    tokens = engine.max_model_len
    peak = (tokens * (2 * shape.intermediate_size // tp + 4 * shape.hidden_size) * size
            + engine.max_num_seqs * shape.vocab_size * 4)
    items = [*fixed, MemoryItem(
        name="activations", bytes=peak,
        how=f"profile run: {tokens} tokens x (2 x {shape.intermediate_size}/{tp} + 4 x "
            f"{shape.hidden_size}) x {size} B + {engine.max_num_seqs} seqs x "
            f"{shape.vocab_size} fp32 logits")]
    limit = None
    if engine.kv_cache_bytes is None and setup.on_gpu:
        limit = int(engine.gpu_memory_utilization * setup.gpu_bytes)
        kv = max(0, limit - sum(item.bytes for item in items))
        kv_source = f"the rest of gpu_memory_utilization {engine.gpu_memory_utilization} x GPU"
    else:
        kv = engine.kv_cache_bytes or 0
        kv_source = "engine.kv_cache_bytes"
    per_token = shape.kv_bytes_per_token(size, tp)
    items.append(MemoryItem(name="KV cache", bytes=kv,
                            how=f"{kv_source}; {per_token:,} B/token = {kv_how(shape, size, tp)}"))
    return ProcessEstimate(role="rollout worker (vLLM)",
                           device="gpu" if setup.on_gpu else "cpu",
                           items=items, limit_bytes=limit, kv_tokens=kv // per_token)


def hf_estimate(shape: ModelShape, setup: RolloutSetup,
                fixed: list[MemoryItem]) -> ProcessEstimate:
    """The HF engine: one padded batch of every episode in flight, its dynamic KV cache
    (Mllama: plus each sequence's image K/V in the cross-attention layers), the scores that
    generate keeps for every sampled step, and one layer's prefill transient."""
    engine, size = setup.engine, DTYPE_BYTES[setup.engine.dtype]
    batch, tokens = setup.sequences, engine.max_model_len
    per_token = shape.kv_bytes_per_token(size)
    items = [*fixed, MemoryItem(name="KV cache", bytes=batch * tokens * per_token,
                                how=f"{batch} sequences x {tokens} tokens x {per_token:,} B = "
                                    + kv_how(shape, size, 1))]
    image_kv = shape.image_kv_bytes(size) * setup.images_per_sequence
    if image_kv:
        items.append(MemoryItem(
            name="image K/V", bytes=batch * image_kv,
            how=f"{batch} sequences x {setup.images_per_sequence} image(s) x 2 x "
                f"{shape.cross_attention_layers} cross-attention layers x {shape.kv_heads} KV "
                f"heads x {shape.head_dim} x {shape.vision.tokens_per_image} image tokens x "
                f"{size} B"))
    scores = batch * setup.answer_tokens * shape.vocab_size * 4
    items.append(MemoryItem(name="sampling scores", bytes=scores,
                            how=f"{batch} x {setup.answer_tokens} steps x {shape.vocab_size} fp32 "
                                "scores kept by generate"))
    width = 2 * shape.intermediate_size + 4 * shape.hidden_size
    items.append(MemoryItem(name="activations", bytes=batch * tokens * width * size,
                            how=f"prefill, one layer: {batch} x {tokens} tokens x (2 x "
                                f"{shape.intermediate_size} + 4 x {shape.hidden_size}) x {size} B"))
    limit = setup.gpu_bytes if setup.on_gpu else None
    return ProcessEstimate(role="rollout worker (HF engine)",
                           device="gpu" if setup.on_gpu else "cpu",
                           items=items, limit_bytes=limit, kv_tokens=batch * tokens)
