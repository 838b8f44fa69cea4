"""The unit of work a rollout worker is handed: (task config, seed, episode id).

A spec fixes its episode completely (the same task config and seed give the same episode),
so an episode lost with a failed worker can be played again elsewhere under the same id. The
broker hands them out (`take_work`); evaluation and the fleet build them directly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contracts.tasks import TaskConfig


class EpisodeSpec(BaseModel):
    """Everything needed to start one episode, and the id it is known by everywhere."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str = Field(min_length=1)
    task: TaskConfig
    seed: int

    def checked_here(self) -> EpisodeSpec:
        """This spec validated again in the process that plays it. Task settings name files
        (a route file, a prompt template) that the driver found when it loaded the config; on
        another node, or later, they may be gone, and the worker should say so naming the
        setting (a ValidationError) rather than fail deep inside the environment."""
        return EpisodeSpec.model_validate(self.model_dump())
