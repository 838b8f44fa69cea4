"""What crosses the rollout side's actor boundaries: between a rollout worker and its env
actors (episodes started, answers submitted), and from a worker to the driver (its counters,
its metrics endpoints).

Pydantic only, so the env actor, the worker and the driver share one definition of each and a
field renamed on one side fails at the boundary instead of arriving missing.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from contracts.engine import EngineReport
from contracts.episode import Observation


class EpisodeStart(BaseModel):
    """A started episode: what it is, and its first observation."""

    model_config = ConfigDict(frozen=True)

    episode_id: str
    task: str
    variant: str
    observation: Observation


class Answer(BaseModel):
    """A model answer, as text, for one episode in play."""

    model_config = ConfigDict(frozen=True)

    episode_id: str
    text: str


class WorkerStats(BaseModel):
    """Counters since the worker started."""

    model_config = ConfigDict(frozen=True)

    worker_id: str
    pid: int
    """The worker's process (to inspect or signal it on its node)."""
    episodes: int
    successes: int
    turns: int
    engine_calls: int
    generated_tokens: int
    record_batches: int
    rollout_seconds: float
    """Wall time of `rollouts` calls (playing and shipping)."""
    engine_seconds: float
    """Time inside engine.generate."""
    env_seconds: float
    """Time decoding answers and waiting for the verifier."""
    policy_version: int
    env_actor_restarts: int = 0
    """Env/verifier actors of this worker found dead, restarted, their episodes replayed."""
    engine: EngineReport


class WorkerEndpoints(BaseModel):
    """A worker's and its env actors' metrics endpoints ("host:port"), by role, for the
    Prometheus target file the driver writes."""

    model_config = ConfigDict(frozen=True)

    rollout: list[str] = []
    env: list[str] = []
