"""The learner's settings: the one place their defaults live."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from learner.engine import EngineConfig
from learner.model import ModelConfig
from learner.optim import OptimConfig
from learner.ppo import PPOConfig


class LearnerConfig(BaseModel):
    """Model, optimisation, sharding and PPO settings of the learner ranks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelConfig
    optim: OptimConfig = OptimConfig()
    engine: EngineConfig = EngineConfig()
    ppo: PPOConfig = PPOConfig()
    num_ranks: int = Field(1, ge=1)
    """Data-parallel DeepSpeed ranks, one Ray actor each, placed together."""
    cpus_per_rank: float = Field(1.0, gt=0)
    gpus_per_rank: float = Field(0.0, ge=0)
    """1 on a GPU cluster (one rank per GPU); 0 runs on CPU with gloo."""
    total_updates: int | None = Field(None, ge=1)
    """Planned PPO updates; needed only by decaying LR schedules (cosine, linear), whose
    length is total_updates x ppo_epochs x num_minibatches optimizer steps."""
    publish_every: int = Field(1, ge=1)
    """Export weights for the rollout workers after every this many updates."""
    seed: int = 0
    """Seeds value-head init and minibatch shuffling."""

    @property
    def total_optimizer_steps(self) -> int | None:
        if self.total_updates is None:
            return None
        return self.total_updates * self.ppo.ppo_epochs * self.ppo.num_minibatches
