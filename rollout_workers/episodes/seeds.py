"""Where episodes come from: (task config, seed, episode id) triples, handed out in order.

A rollout worker pulls as many specs as it has free episode slots. A spec fixes its episode
completely (the same task config and seed give the same episode), so an episode lost with a
failed worker can be played again elsewhere under the same id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from contracts.episode import TaskInputError
from contracts.episode_spec import EpisodeSpec
from contracts.tasks import TaskConfig


@runtime_checkable
class SeedSource(Protocol):
    """Anything that hands out episode specs; an empty list means it has run dry."""

    def take(self, count: int) -> list[EpisodeSpec]: ...


class SeedRange(BaseModel):
    """Seeds start, start+1, ... of one task, each played `group_size` times in a row; `count`
    (episodes) None means endless."""

    model_config = ConfigDict(extra="forbid")

    task: TaskConfig
    start: int = 0
    count: int | None = Field(None, ge=0)
    id_prefix: str = "ep"
    """Episode ids are '<id_prefix>-<seed>' ('<id_prefix>-<seed>-<replica>' in groups): give
    each source its own prefix."""
    group_size: int = Field(1, ge=1)
    """Episodes per seed, for group-relative advantages (learner.ppo.advantage 'group')."""
    _taken: int = PrivateAttr(0)

    def take(self, count: int) -> list[EpisodeSpec]:
        if self.count is not None:
            count = min(count, self.count - self._taken)
        episodes = range(self._taken, self._taken + max(count, 0))
        self._taken += len(episodes)
        return [self._spec(i) for i in episodes]

    def _spec(self, episode: int) -> EpisodeSpec:
        seed, replica = self.start + episode // self.group_size, episode % self.group_size
        name = f"{self.id_prefix}-{seed}" if self.group_size == 1 else f"{self.id_prefix}-{seed}-{replica}"
        return EpisodeSpec(episode_id=name, task=self.task, seed=seed)


class SeedList(BaseModel):
    """A fixed list of specs (evaluation sets, episodes to play again), handed out in order."""

    model_config = ConfigDict(extra="forbid")

    specs: list[EpisodeSpec]
    _taken: int = PrivateAttr(0)

    def take(self, count: int) -> list[EpisodeSpec]:
        chunk = self.specs[self._taken : self._taken + max(count, 0)]
        self._taken += len(chunk)
        return chunk


def take_specs(source: Any, count: int) -> list[EpisodeSpec]:
    """Take from a local source or from a Ray actor that offers the same `take` method."""
    if count <= 0:
        return []
    remote_take = getattr(getattr(source, "take", None), "remote", None)
    if remote_take is not None:
        import ray

        return ray.get(remote_take(count))
    return source.take(count)


class BrokerSource:
    """Specs from a broker actor offering `take_work(worker, count, worker_version)`, checked
    again here (`EpisodeSpec.checked_here`). The worker's policy version goes with every request, so
    the broker can hold back work from a worker whose policy is too stale."""

    def __init__(self, broker: Any, worker_id: str, version: Callable[[], int],
                 stopping: Callable[[], bool], publication: Callable[[], int] = lambda: 0) -> None:
        self.broker = broker
        self.worker_id = worker_id
        self.version = version
        self.stopping = stopping
        self.publication = publication
        self.taken_under: dict[str, int] = {}
        """Episode id -> the weight publication loaded when the episode was taken: its first
        turn can be no older (the sync-divergence guard's stamp, taken_publication)."""

    def take(self, count: int) -> list[EpisodeSpec]:
        if count <= 0 or self.stopping():
            return []
        import ray

        publication = self.publication()
        items = ray.get(self.broker.take_work.remote(self.worker_id, count, self.version()))
        try:
            specs = [item.checked_here() for item in items]
        except ValidationError as error:  # valid at launch: an input has changed since
            problem = error.errors()[0]
            raise TaskInputError(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}") from None
        self.taken_under.update((spec.episode_id, publication) for spec in specs)
        return specs

    def taken_publication(self, episode_ids: list[str]) -> int | None:
        """The oldest publication under which any of `episode_ids` was taken (and forget
        them); None when none was taken here."""
        found = [self.taken_under.pop(e) for e in episode_ids if e in self.taken_under]
        return min(found, default=None)
