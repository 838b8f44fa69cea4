"""Weights by NCCL broadcast (`weight_sync: "nccl"`): learner rank 0's GPU straight into every
vLLM engine's GPUs, nothing through the object store or the workers' host memory.

The parts: nccl_broadcast (the torch send/receive of packed buffers and vLLM's group helper),
nccl_group (the driver's weight group, formed again whenever the workers change), nccl_sender
(rank 0's half) and nccl_receiver (the methods mixed into vLLM's worker). Each publication a
worker receives names the group's rendezvous: a worker (its transport, kept for its life)
joins a group it is not in yet before it takes the broadcast, and rank 0 does the same. A
worker started between two publications receives one without a rendezvous and loads rank 0's
kept copy through the object store; it joins the group when the next publication forms it
again. Ray and torch are imported where they are used: a config naming this transport is
checked without them.
"""

from __future__ import annotations

from typing import Any

from contracts.packed_weights import PackedWeights, WeightExport, WeightPublication
from weight_transport.base import CallAll, WeightTransport
from weight_transport.nccl_group import BroadcastReport, WeightGroup


class NcclPublication(WeightPublication):
    layout: dict[str, Any]
    """WeightLayout.to_dict() of the buffers rank 0 broadcasts."""
    sender: Any
    """Learner rank 0's actor: `send_weights`, `latest_weights`."""
    rendezvous: dict[str, Any] | None = None
    """The weight group this broadcast goes through (nccl_group.Rendezvous); None: load rank
    0's kept copy through the object store instead (a worker catching up)."""
    rank_offset: int = 0
    """The receiving engine's first rank in that group."""


class NcclTransport(WeightTransport):
    kind = "nccl"
    publication_type = NcclPublication
    ships_weights = False

    def __init__(self, ranks_per_engine: int = 1) -> None:
        super().__init__(ranks_per_engine)
        self.group = WeightGroup(ranks_per_engine)
        """The driver's: which workers the group holds."""
        self._sender: Any = None
        """Rank 0's place in the group (nccl_sender.WeightSender), made at its first send."""
        self._joined: int | None = None
        """A worker's: the generation of the group its engine is in."""

    def publication(self, export: WeightExport, packed_ref: Any, sender: Any) -> NcclPublication:
        return NcclPublication(layout=export.layout, sender=sender, version=export.version,
                               num_tensors=export.num_tensors, num_bytes=export.num_bytes)

    def deliver(self, publication: NcclPublication, members: dict[str, Any],
                call_all: CallAll) -> list[str]:
        return self.group.publish(self.check(publication), members)

    def send(self, packed: PackedWeights, message: NcclPublication) -> BroadcastReport:
        from weight_transport.nccl_sender import WeightSender

        self._sender = self._sender or WeightSender()
        return self._sender.send(packed, message.rendezvous, message.sync_timeout_s)

    def receive(self, engine: Any, publication: NcclPublication) -> int:
        """By broadcast from rank 0, in the group the publication names (joined first when
        new); without a group, rank 0's kept copy from the object store."""
        from contracts.packed_weights import WeightLayout

        if publication.rendezvous is None:
            import ray

            from weight_transport.object_store import load_packed

            packed = ray.get(publication.sender.latest_weights.remote())
            return load_packed(engine, packed, publication.version)
        engine = broadcast_engine(engine)
        generation = publication.rendezvous.get("generation", 0)
        if generation != self._joined:
            engine.join_weight_group(publication.rendezvous, publication.rank_offset)
            self._joined = generation
        engine.receive_weights(publication.layout, publication.version)
        return WeightLayout.from_dict(publication.layout).nbytes


def broadcast_engine(engine: Any) -> Any:
    """`engine` when it can join a weight group (vLLM's); else why not."""
    if not hasattr(engine, "receive_weights"):
        raise RuntimeError(f"weight_sync='nccl' needs the vLLM engine; this worker runs "
                           f"{type(engine).__name__}")
    return engine
