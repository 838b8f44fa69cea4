"""Which ways weights may travel, and which settings each refuses: torch-, Ray- and
vLLM-free, so that reading a config never imports a transport.

`WeightSync` is what a config names; `Transport` what a job runs ('auto' resolved by
`weight_transport.make_transport`). The refusal rules live here rather than on the
transports so that settings are checked without building one.
"""

from __future__ import annotations

from typing import Literal

Transport = Literal["object_store", "shared_memory", "nccl"]
"""A way weights travel (weight_transport's implementations, one each)."""
WeightSync = Literal["auto", "object_store", "shared_memory", "nccl"]
"""How published weights reach the rollout engines (`LearnerConfig.weight_sync`): a transport,
or 'auto' (the fastest that works wherever the workers run: see `resolve`)."""


def learner_refusal(weight_sync: WeightSync, gpus_per_rank: float) -> str | None:
    """Why learner ranks with `gpus_per_rank` cannot send `weight_sync`'s way (None: they can)."""
    if weight_sync == "nccl" and not gpus_per_rank:
        return ("learner.weight_sync='nccl' broadcasts from learner rank 0's GPU: "
                "set learner.gpus_per_rank (>= 1) or use 'auto'")
    return None


def engine_refusal(weight_sync: WeightSync, engine_kind: str, gpus_per_worker: float,
                   hf_only: str | None) -> str | None:
    """Why these rollout engines cannot take weights `weight_sync`'s way (None: they can);
    `hf_only` is why vLLM cannot serve the model, when it cannot."""
    if weight_sync != "nccl":
        return None
    if engine_kind != "vllm" or not gpus_per_worker:
        return ("learner.weight_sync='nccl' broadcasts into vLLM engines on GPUs: "
                "it needs engine.kind 'vllm' and cluster.gpus_per_worker >= 1")
    if hf_only:
        return (f"learner.weight_sync: 'nccl' needs vLLM rollout engines, and the HF engine "
                f"serves this model ({hf_only.split(':')[0]}); use 'auto'")
    return None


def resolve(weight_sync: WeightSync, nodes: int) -> Transport:
    """The transport `weight_sync` names; 'auto' on a Ray cluster of `nodes` nodes is
    shared_memory when there is one (every worker then maps rank 0's buffers: the fewest
    copies) and object_store otherwise (one copy per node, where shared_memory would have
    rank 0 ship a copy to every worker of another node). NCCL is never chosen for you: it
    needs GPU learner ranks and vLLM engines on GPUs."""
    if weight_sync != "auto":
        return weight_sync
    return "shared_memory" if nodes == 1 else "object_store"
