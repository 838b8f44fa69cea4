"""How published weights travel from learner rank 0 to the rollout engines: its own package,
imported by the learner and the workers alike.

It owns both ends of every way weights travel: packing a state dict into flat buffers and
viewing them as tensors again (packing), rank 0's keeper of the packed buffers (keeper),
the WeightTransport interface (base) and one implementation per way, chosen here by
`make_transport`, the only place that chooses: object_store (the Ray object store; CPU and
GPU, any number of nodes), shared_memory (rank 0's packed buffers mapped by the workers of its
node) and nccl (a GPU broadcast from learner rank 0 into vLLM). The learner, the fleet and the
workers call the transport's methods and never branch on the way themselves. The types that
cross processes (PackedWeights, WeightExport, WeightPublication) are in
contracts.packed_weights; the choices a config names, with their refusals, in choices (no
torch). Implementations are imported when made, so importing this package (or nccl_broadcast,
the torch-only part that benchmarks/weight_sync_gpu.py runs) pulls in neither Ray nor vLLM.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from weight_transport.choices import Transport, WeightSync, resolve

if TYPE_CHECKING:
    from weight_transport.base import WeightTransport

_TRANSPORTS = {"object_store": ("object_store", "ObjectStoreTransport"),
               "shared_memory": ("shared_memory", "SharedMemoryTransport"),
               "nccl": ("nccl", "NcclTransport")}


def make_transport(weight_sync: WeightSync, ranks_per_engine: int = 1) -> WeightTransport:
    """The transport of `weight_sync` ('auto' resolved on the Ray cluster this process is
    connected to: `choices.resolve`); `ranks_per_engine` counts an engine's tensor-parallel
    processes (each takes weights)."""
    module, name = _TRANSPORTS[resolve(weight_sync, _ray_nodes()) if weight_sync == "auto"
                               else weight_sync]
    transport = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return transport(ranks_per_engine)


def _ray_nodes() -> int:
    """Alive nodes of the Ray cluster this process is connected to (1 when it is connected to
    none: whatever runs here runs on this machine)."""
    import ray

    if not ray.is_initialized():
        return 1
    return sum(1 for node in ray.nodes() if node.get("Alive"))


__all__ = ["Transport", "WeightSync", "make_transport"]
