"""The messages of the NCCL weight path (`weight_sync: "nccl"`; rollout_workers.weight_broadcast)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WeightSync = Literal["object_store", "nccl"]
"""How published weights reach the rollout engines (`LearnerConfig.weight_sync`)."""


class Rendezvous(BaseModel):
    """Where a weight group meets: rank 0 (learner rank 0) serves the TCP store."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int
    world_size: int = Field(ge=2)
    """1 (the learner) + every engine's tensor-parallel workers."""
    generation: int = 0
    """Counts re-formations: a group is formed again whenever the workers change."""


class BroadcastPublication(BaseModel):
    """What a publication carries on the NCCL path instead of an object-store reference."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    layout: dict[str, Any]
    """WeightLayout.to_dict() of the buffers rank 0 will broadcast."""
    sender: Any
    """Learner rank 0's actor: open_weight_group, broadcast_weights, latest_weights."""
