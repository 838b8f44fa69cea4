"""What crosses the rollout broker's actor boundary: the work it hands out (as
`contracts.episode_spec.EpisodeSpec`s), the batches it hands the driver for an update, its
ledger's checkpoint state (driver -> broker on resume, broker -> driver to save) and its
counters.

Pydantic only: the broker, the driver and the workers share one definition of each, so a field
renamed on one side fails at the boundary instead of arriving missing from a dict.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.trajectory import BatchMeta


class WorkItem(BaseModel):
    """One episode to play: its id, the seed that fixes its task instance, and the oldest
    policy version allowed to play it."""

    model_config = ConfigDict(frozen=True)

    episode_id: int
    seed: int
    min_version: int = 0


class LedgerCounts(BaseModel):
    issued: int = 0
    completed: int = 0
    reissued: int = 0
    duplicates_rejected: int = 0
    dropped_stale: int = 0


class LedgerState(BaseModel):
    """What a checkpoint needs to resume the ledger exactly."""

    next_episode: int = 0
    base_seed: int = 0
    group_size: int = Field(1, ge=1)
    pending: list[WorkItem] = Field(default_factory=list)
    completed_ids: list[int] = Field(default_factory=list)
    counts: LedgerCounts = Field(default_factory=LedgerCounts)


class Taken(BaseModel):
    """The result of one `take`: fresh batches (with their data references) and stale ids."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    batches: list[tuple[BatchMeta, list[Any]]] = Field(default_factory=list)
    stale_ids: list[str] = Field(default_factory=list)

    @property
    def episodes(self) -> int:
        return sum(meta.episodes for meta, _ in self.batches)


class QueueStats(BaseModel):
    """The trajectory queue now: batches waiting, room for them, duplicates refused so far."""

    model_config = ConfigDict(frozen=True)

    depth: int
    capacity: int
    duplicates: int = 0


class BrokerStats(BaseModel):
    """The broker's counters, as the driver records them each loop."""

    model_config = ConfigDict(frozen=True)

    version: int
    """The learner version the broker issues work for."""
    in_flight: int
    """Episodes issued and not yet completed."""
    queue: QueueStats
    ledger: LedgerCounts
