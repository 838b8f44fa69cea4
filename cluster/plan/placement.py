"""Which GPUs the learner ranks and the rollout workers take, as their resource requests imply.

The learner's ranks are placed together (one placement group, PACK) and the rollout workers
after them; a fractional request shares a GPU with the next one that fits. Ray picks the real
device indices at launch; this packing is what the requests ask for, and the plan checks the
memory of every process that lands on each GPU.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict


class GpuRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    node: int
    gpu: int

    def __str__(self) -> str:
        return f"node {self.node} GPU {self.gpu}"


class ProcessPlacement(BaseModel):
    """One process and the GPUs it holds (none on CPU)."""

    model_config = ConfigDict(frozen=True)

    role: str
    """'learner' or 'rollout'."""
    index: int
    gpus: list[GpuRef]
    share: float
    """GPUs it asks Ray for (fractional: it shares its GPU)."""

    @property
    def label(self) -> str:
        return f"{'learner rank' if self.role == 'learner' else 'rollout worker'} {self.index}"


class Placement(BaseModel):
    """Every process of the RL phase and the GPUs of the cluster."""

    model_config = ConfigDict(frozen=True)

    nodes: int
    gpus_per_node: int
    learner: list[ProcessPlacement]
    rollout: list[ProcessPlacement]
    tensor_parallel_size: int = 1

    @property
    def processes(self) -> list[ProcessPlacement]:
        return [*self.learner, *self.rollout]

    @property
    def gpus_available(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def gpus_used(self) -> list[GpuRef]:
        return sorted({gpu for p in self.processes for gpu in p.gpus},
                      key=lambda g: (g.node, g.gpu))

    def on(self, gpu: GpuRef) -> list[ProcessPlacement]:
        return [p for p in self.processes if gpu in p.gpus]


def place(requests: list[tuple[str, int, float]], gpus_per_node: int, nodes: int,
          tensor_parallel_size: int = 1) -> Placement:
    """Pack (role, index, GPUs asked) in order: whole GPUs for requests of 1 or more, the
    current GPU's free share for fractional ones. GPUs past the cluster still get indices
    (node numbers beyond `nodes`) so that the plan can say how many are missing."""
    placed: list[ProcessPlacement] = []
    cursor, free = 0, 0.0  # next untouched GPU index; free share of the GPU before it
    for role, index, share in requests:
        if share <= 0:
            gpus = []
        elif share >= 1:
            count = math.ceil(share)
            gpus, cursor, free = list(range(cursor, cursor + count)), cursor + count, 0.0
        elif free + 1e-9 >= share:
            gpus, free = [cursor - 1], free - share
        else:
            gpus, cursor, free = [cursor], cursor + 1, 1.0 - share
        placed.append(ProcessPlacement(
            role=role, index=index, share=share,
            gpus=[GpuRef(node=g // gpus_per_node, gpu=g % gpus_per_node) for g in gpus]))
    return Placement(nodes=nodes, gpus_per_node=gpus_per_node,
                     learner=[p for p in placed if p.role == "learner"],
                     rollout=[p for p in placed if p.role == "rollout"],
                     tensor_parallel_size=tensor_parallel_size)


def describe_gpus(gpus: list[GpuRef]) -> str:
    """'node 0 GPU 0-3' for a run of GPUs of one node, comma-joined otherwise."""
    if not gpus:
        return "CPU"
    runs: list[list[GpuRef]] = []
    for gpu in gpus:
        if runs and runs[-1][-1].node == gpu.node and runs[-1][-1].gpu + 1 == gpu.gpu:
            runs[-1].append(gpu)
        else:
            runs.append([gpu])
    return ", ".join(f"node {r[0].node} GPU {r[0].gpu}" + (f"-{r[-1].gpu}" if len(r) > 1 else "")
                     for r in runs)
