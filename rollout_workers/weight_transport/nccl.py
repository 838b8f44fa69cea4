"""Weights by NCCL broadcast (`weight_sync: "nccl"`): learner rank 0's GPU straight into every
vLLM engine's GPUs, nothing through the object store or the workers' host memory.

The parts: nccl_broadcast (the torch send/receive of packed buffers and vLLM's group helper),
nccl_group (the driver's weight group, formed again whenever the workers change), nccl_sender
(rank 0's half) and nccl_receiver (the methods mixed into vLLM's worker). A worker started
between two publications loads rank 0's kept copy through the object store, and joins the
group when the next publication forms it again. Ray and torch are imported where they are
used (nccl_group): a config that names this transport is checked without them.
"""

from __future__ import annotations

from typing import Any

from rollout_workers.weight_transport.base import CallAll, WeightPublication, WeightTransport
from rollout_workers.weight_transport.nccl_group import WeightGroup


class NcclPublication(WeightPublication):
    layout: dict[str, Any]
    """WeightLayout.to_dict() of the buffers rank 0 broadcasts."""
    sender: Any
    """Learner rank 0's actor: open_weight_group, broadcast_weights, latest_weights."""


class NcclTransport(WeightTransport):
    kind = "nccl"
    ships_weights = False

    def __init__(self, ranks_per_engine: int = 1) -> None:
        super().__init__(ranks_per_engine)
        self.group = WeightGroup(ranks_per_engine)

    def learner_refusal(self, gpus_per_rank: float) -> str | None:
        if gpus_per_rank:
            return None
        return ("learner.weight_sync='nccl' broadcasts from learner rank 0's GPU: "
                "set learner.gpus_per_rank (>= 1) or use 'object_store'")

    def engine_refusal(self, engine_kind: str, gpus_per_worker: float,
                       hf_only: str | None) -> str | None:
        if engine_kind != "vllm" or not gpus_per_worker:
            return ("learner.weight_sync='nccl' broadcasts into vLLM engines on GPUs: "
                    "it needs engine.kind 'vllm' and cluster.gpus_per_worker >= 1")
        if hf_only:
            return (f"learner.weight_sync: 'nccl' needs vLLM rollout engines, and the HF engine "
                    f"serves this model ({hf_only.split(':')[0]}); use 'object_store'")
        return None

    def publication(self, info: dict[str, Any], packed_ref: Any, sender: Any) -> NcclPublication:
        return NcclPublication(layout=info["layout"], sender=sender, version=info["version"],
                               num_tensors=info["num_tensors"], num_bytes=info["num_bytes"])

    def deliver(self, publication: NcclPublication, members: dict[str, Any],
                call_all: CallAll) -> None:
        self.group.publish(publication.version, publication.layout, publication.sender, members)

    def catch_up(self, publication: NcclPublication, worker: Any) -> Any:
        """From the object store: rank 0 hands out the copy it keeps."""
        packed = publication.sender.latest_weights.remote()
        return worker.receive_weights.remote("object_store", packed, publication.version)

    def receive(self, engine: Any, message: dict[str, Any], version: int) -> int:
        """`message` is the layout: the bytes come by broadcast from rank 0."""
        from contracts.packed_weights import WeightLayout

        broadcast_engine(engine).receive_weights(message, version)
        return WeightLayout.from_dict(message).nbytes


def broadcast_engine(engine: Any) -> Any:
    """`engine` when it can join a weight group (vLLM's); else why not."""
    if not hasattr(engine, "receive_weights"):
        raise RuntimeError(f"weight_sync='nccl' needs the vLLM engine; this worker runs "
                           f"{type(engine).__name__}")
    return engine
