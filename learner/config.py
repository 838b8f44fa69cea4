"""The learner's settings: the one place their defaults live."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from learner.engine import DeepSpeedConfig
from learner.model import ModelConfig
from learner.optim import OptimConfig, schedule_needs_length
from learner.ppo import PPOConfig
from weight_transport.choices import WeightSync, learner_refusal


class LearnerConfig(BaseModel):
    """Model, optimisation, sharding and PPO settings of the learner ranks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelConfig
    optim: OptimConfig = OptimConfig()
    engine: DeepSpeedConfig = DeepSpeedConfig()
    ppo: PPOConfig = PPOConfig()
    num_ranks: int = Field(1, ge=1)
    """Data-parallel DeepSpeed ranks, one Ray actor each, placed together."""
    cpus_per_rank: float = Field(1.0, gt=0)
    gpus_per_rank: float = Field(0.0, ge=0)
    """1 on a GPU cluster (one rank per GPU); 0 runs on CPU with gloo."""
    total_updates: int | None = Field(None, ge=0)
    """Planned PPO updates: the length of a decaying LR schedule (cosine, linear) or a warm-up,
    total_updates x ppo_epochs x num_minibatches optimizer steps. A job fills it in from
    training.updates; on its own, a schedule that needs it and lacks it is an error."""
    publish_every: int = Field(1, ge=1)
    """Export weights for the rollout workers after every this many updates."""
    seed: int = 0
    """Seeds value-head init and minibatch shuffling."""
    weight_sync: WeightSync = "auto"
    """How published weights reach the rollout engines. 'auto' (the default): the fastest way
    that works wherever the workers run, chosen when the job starts on its Ray cluster:
    'shared_memory' on a one-node cluster, else 'object_store' (never 'nccl').
    'object_store': rank 0 packs them into the Ray object store and every worker loads them
    from there (CPU and GPU, any nodes). 'shared_memory': rank 0 packs them into a
    shared-memory segment that the workers on its node map (fewest copies; workers on other
    nodes each fetch rank 0's copy through the object store). 'nccl': rank 0 broadcasts the
    packed buffers to every vLLM engine over NCCL, GPU to GPU (needs GPU learner ranks and GPU
    vLLM workers). See weight_transport (the choice: weight_transport.choices.resolve)."""

    @model_validator(mode="after")
    def _schedule_has_a_length(self) -> LearnerConfig:
        if self.total_updates is None and schedule_needs_length(self.optim):
            raise ValueError(
                f"learner.optim.schedule '{self.optim.schedule}' (warmup_ratio "
                f"{self.optim.warmup_ratio}) needs learner.total_updates, the length it runs "
                "over; a job sets it from training.updates")
        return self

    @model_validator(mode="after")
    def _ranks_can_send(self) -> LearnerConfig:
        if refusal := learner_refusal(self.weight_sync, self.gpus_per_rank):
            raise ValueError(refusal)
        return self

    @property
    def total_optimizer_steps(self) -> int | None:
        if self.total_updates is None:
            return None
        return self.total_updates * self.ppo.ppo_epochs * self.ppo.num_minibatches
