"""What a plan says: where each process goes, its memory, and what does not fit."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cluster.plan.memory import ProcessEstimate
from cluster.plan.model_shape import ModelShape
from cluster.plan.placement import GpuRef, Placement


class GpuLoad(BaseModel):
    """Everything that runs on one GPU during the RL phase."""

    model_config = ConfigDict(frozen=True)

    gpu: GpuRef
    processes: list[str]
    bytes: int
    capacity_bytes: int


class Plan(BaseModel):
    """Placement and memory of one configuration; `problems` is empty when it fits."""

    model_config = ConfigDict(frozen=True)

    name: str
    model_path: str
    model: ModelShape
    placement: Placement
    learner: ProcessEstimate
    sft_learner: ProcessEstimate | None = None
    """The SFT warm start's ranks (on the learner's GPUs, before RL), when sized differently."""
    rollout: ProcessEstimate
    rollout_engine: str
    """'vllm' or 'hf': the engine the workers will run."""
    rollout_engine_note: str
    """What chose that engine (HF: the setting, or why vLLM cannot serve the model)."""
    sft_as_learner: bool = False
    """There is an SFT phase and its ranks need no more than the RL learner's."""
    gpu_loads: list[GpuLoad]
    gpu_memory_bytes: int
    problems: list[str]

    @property
    def fits(self) -> bool:
        return not self.problems
