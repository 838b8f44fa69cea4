"""How published weights travel from the learner to the rollout engines.

One WeightTransport per way (`learner.weight_sync`), made by `make_transport`, the only place
that chooses: object_store (the Ray object store; CPU and GPU, any number of nodes),
shared_memory (rank 0's packed buffers mapped by the workers of its node; CPU) and nccl (a GPU
broadcast from learner rank 0 into vLLM). The learner group, the fleet and the workers call the transport's
methods and never branch on the way themselves (see base.WeightTransport). Implementations are
imported when made, so importing this package (or nccl_broadcast, the torch-only part that
benchmarks/weight_sync_gpu.py runs) pulls in neither Ray, pydantic nor vLLM.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rollout_workers.weight_transport.base import WeightTransport

WeightSync = Literal["object_store", "shared_memory", "nccl"]
"""How published weights reach the rollout engines (`LearnerConfig.weight_sync`)."""

_TRANSPORTS = {"object_store": ("object_store", "ObjectStoreTransport"),
               "shared_memory": ("shared_memory", "SharedMemoryTransport"),
               "nccl": ("nccl", "NcclTransport")}


def make_transport(weight_sync: WeightSync, ranks_per_engine: int = 1) -> WeightTransport:
    """The transport of `weight_sync`; `ranks_per_engine` counts an engine's tensor-parallel
    processes (each takes weights)."""
    module, name = _TRANSPORTS[weight_sync]
    transport = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return transport(ranks_per_engine)
