"""Rollout settings: the one place their defaults live."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.engine import SamplingSettings
from contracts.metrics import MetricsConfig

WeightFault = Literal["skip_load", "corrupt", "skip_first_load"]
"""TEST ONLY: how a worker mishandles weight publications (rollout_workers.faults).
'skip_load': its engine is handed no tensors, so it takes the new version number and keeps
its old weights. 'corrupt': its engine is handed the weights with the second half of every
floating-point tensor zeroed. 'skip_first_load': 'skip_load' for the first publication only
(a transient fault, which the guard's re-publication repairs)."""


class RolloutConfig(BaseModel):
    """How a rollout worker plays episodes and ships them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episodes_in_flight: int = Field(64, ge=1)
    """Episodes played at once; every engine call carries the next turn of each of them."""
    sampling: SamplingSettings = SamplingSettings()
    """Sampling for every turn (temperature, top_p, max_tokens per answer, seed)."""
    episodes_per_batch: int = Field(16, ge=1)
    """Finished episodes per shipped Arrow record batch (all turns of an episode stay together)."""
    max_dialogue_tokens: int | None = Field(None, ge=2)
    """The model's context length: an episode whose next prompt plus max_tokens would not fit
    ends after its current turn (marked out_of_context). None: the engine's max_model_len (a job
    fills it in from engine.max_model_len and refuses a larger value)."""
    env_actors: int = Field(0, ge=0)
    """Ray actors that hold the episodes and run the verifier; 0 plays them in-process."""
    env_actor_cpus: float = Field(0.25, gt=0)
    """CPUs Ray reserves for each env actor (verification is light)."""
    metrics: MetricsConfig = MetricsConfig()
    """Where the worker and its env actors serve their Prometheus metrics."""
    test_faults: dict[str, WeightFault] = {}
    """TEST ONLY, never in a real run: worker id -> how it mishandles weight loads
    ('skip_load', 'corrupt' or 'skip_first_load'), to see the sync-divergence guard catch it."""
