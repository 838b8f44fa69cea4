"""What in a plan does not fit, by how much, and which settings to change.

Every problem names the process (or GPU), the GiB it is over and the dotted settings that
would bring it back, in the order most likely to help, so that the fix is one override away.
"""

from __future__ import annotations

import math

from cluster.plan.memory import ProcessEstimate, gib, training_dtype
from cluster.plan.outcome import Plan
from cluster.settings.config_json import read_config_json
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.model_checks import config_json_problems

MODEL_STATES = ("weights", "gradients", "optimizer states")
ACTIVATIONS = ("activations", "vision activations", "answer logits")


def problems_of(config: ExperimentConfig, plan: Plan) -> list[str]:
    problems = gpu_count_problems(config, plan) + model_problems(config)
    problems += learner_problems(config, plan.learner, "learner")
    if plan.sft_learner is not None:
        problems += learner_problems(config, plan.sft_learner, "sft")
    problems += rollout_problems(config, plan.rollout)
    for load in plan.gpu_loads:
        if len(load.processes) > 1 and load.bytes > load.capacity_bytes:
            problems.append(
                f"{load.gpu}: {', '.join(load.processes)} share it and need {gib(load.bytes)} of "
                f"{gib(load.capacity_bytes)} ({gib(load.bytes - load.capacity_bytes)} over): give "
                "each a whole GPU (learner.gpus_per_rank, cluster.gpus_per_worker >= 1), or "
                "lower engine.gpu_memory_utilization (each vLLM engine takes that share)")
    return problems


def gpu_count_problems(config: ExperimentConfig, plan: Plan) -> list[str]:
    placement, cluster = plan.placement, config.cluster
    problems = []
    used = len(placement.gpus_used)
    if used > placement.gpus_available:
        problems.append(
            f"the placement needs {used} GPUs, the cluster has {placement.gpus_available} "
            f"(cluster.num_nodes {cluster.num_nodes} x cluster.gpus_per_node "
            f"{cluster.gpus_per_node}): lower learner.num_ranks or cluster.rollout_workers, "
            "or raise cluster.num_nodes")
    tp = config.engine.tensor_parallel_size
    if config.engine.kind == "vllm" and tp > 1 and 0 < cluster.gpus_per_worker < tp:
        problems.append(
            f"cluster.gpus_per_worker ({cluster.gpus_per_worker}) is below "
            f"engine.tensor_parallel_size ({tp}): each vLLM engine needs {tp} GPUs of its own")
    return problems


def model_problems(config: ExperimentConfig) -> list[str]:
    """The settings checks that need only config.json (context length, weight sync), read
    without transformers (cluster.settings.config_json)."""

    return config_json_problems(config, read_config_json(config.model))


def learner_problems(config: ExperimentConfig, estimate: ProcessEstimate, phase: str) -> list[str]:
    if not estimate.over_bytes:
        return []
    largest = sorted(estimate.items, key=lambda item: -item.bytes)[:3]
    return [f"{estimate.role} does not fit its GPU: needs {gib(estimate.total_bytes)} of "
            f"{gib(estimate.limit_bytes)}, {gib(estimate.over_bytes)} over (largest: "
            + ", ".join(f"{item.name} {gib(item.bytes)}" for item in largest)
            + "); " + "; or ".join(learner_fixes(config, estimate, phase))]


def learner_fixes(config: ExperimentConfig, estimate: ProcessEstimate, phase: str) -> list[str]:
    """Settings that would shrink the rank, most effective first."""
    engine = config.sft.engine if phase == "sft" else config.learner.engine
    prefix = "sft" if phase == "sft" else "learner"
    checkpointing = (config.sft if phase == "sft" else config.learner).model.gradient_checkpointing
    ranks = config.learner.num_ranks
    states = sum(estimate.bytes_of(name) for name in MODEL_STATES)
    activations = sum(estimate.bytes_of(name) for name in ACTIVATIONS)
    fixes = []
    needed = ranks_for_zero3(config, estimate, phase)
    if needed is not None and engine.zero_stage < 3:
        fixes.append(f"raise {prefix}.engine.zero_stage to 3 (now {engine.zero_stage}) with "
                     f"learner.num_ranks >= {needed} (now {ranks}): ZeRO-3 shards weights, "
                     "gradients and optimizer states over the ranks")
    elif needed is not None and needed > ranks:
        fixes.append(f"raise learner.num_ranks to >= {needed} (now {ranks}): ZeRO-3 shards "
                     "the model states over more ranks")
    elif engine.zero_stage < 3:
        fixes.append(f"raise {prefix}.engine.zero_stage to 3 (now {engine.zero_stage}) and "
                     "learner.num_ranks")
    if activations > 0.2 * estimate.limit_bytes or needed is None:
        if not checkpointing:
            fixes.append(f"set {prefix}.model.gradient_checkpointing=true")
        if engine.micro_batch_size > 1:
            fixes.append(f"lower {prefix}.engine.micro_batch_size (now {engine.micro_batch_size})"
                         " or engine.max_model_len")
    if engine.zero_stage >= 1 and not engine.offload_optimizer:
        fixes.append(f"set {prefix}.engine.offload_optimizer=true (optimizer states to host "
                     "memory; slower steps)")
    if not fixes and states:
        fixes.append("raise learner.num_ranks")
    return fixes


def ranks_for_zero3(config: ExperimentConfig, estimate: ProcessEstimate, phase: str) -> int | None:
    """Ranks at which ZeRO-3 would fit the model states next to everything else; None when
    the rest alone (activations, buffers) already exceeds the GPU."""
    engine = config.sft.engine if phase == "sft" else config.learner.engine
    _, size = training_dtype(engine, on_gpu=True)
    ranks = config.learner.num_ranks
    stage = engine.zero_stage
    # full (unsharded) model states at ZeRO-3: weights and gradients, and 12 bytes a
    # parameter of optimizer states unless they are offloaded
    weights_full = estimate.bytes_of("weights") * (ranks if stage >= 3 else 1)
    parameters = weights_full // size
    full_states = parameters * (2 * size + (0 if engine.offload_optimizer else 12))
    rest = estimate.total_bytes - sum(estimate.bytes_of(name) for name in MODEL_STATES)
    room = estimate.limit_bytes - rest
    if room <= 0:
        return None
    return max(2, math.ceil(full_states / room))


def rollout_problems(config: ExperimentConfig, estimate: ProcessEstimate) -> list[str]:
    engine = config.engine
    if "vLLM" in estimate.role:
        kv = estimate.bytes_of("KV cache")
        if kv <= 0:
            used = estimate.total_bytes
            return [f"rollout worker (vLLM): weights and activations ({gib(used)}) leave no KV "
                    f"cache within gpu_memory_utilization {engine.gpu_memory_utilization} x GPU "
                    f"({gib(estimate.limit_bytes)}): raise engine.tensor_parallel_size or "
                    "engine.gpu_memory_utilization, or lower engine.max_model_len"]
        if (estimate.kv_tokens or 0) < engine.max_model_len:
            return [f"rollout worker (vLLM): the KV cache holds {estimate.kv_tokens} tokens, less "
                    f"than one sequence of engine.max_model_len {engine.max_model_len}: raise "
                    "engine.kv_cache_bytes (or engine.gpu_memory_utilization) or lower "
                    "engine.max_model_len"]
        return []
    if not estimate.over_bytes:
        return []
    return [f"rollout worker (HF engine) does not fit its GPU: needs "
            f"{gib(estimate.total_bytes)} of {gib(estimate.limit_bytes)}, "
            f"{gib(estimate.over_bytes)} over: lower rollout.episodes_in_flight (now "
            f"{config.rollout.episodes_in_flight}: one batch) or engine.max_model_len (now "
            f"{engine.max_model_len})"]
