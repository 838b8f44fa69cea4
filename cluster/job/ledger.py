"""Episode accounting: every episode is issued with a unique id and counted exactly once.

The ledger is the single authority on which episodes exist. Workers take work from it,
report what they finished, and when a worker dies or is removed, the episodes it still held
go back to the front of the line and are issued again under the same ids. Completed ids are
remembered, so a late duplicate (a worker that finished just before being declared dead) is
rejected instead of being trained on twice. Its position is part of the learner's
checkpoint, so a resumed run continues with the next unseen episode.

With a group size g > 1, episodes g·k ... g·k+g-1 play the same task instance (seed
base + k): a group-relative advantage compares answers to the same question. Episodes are
issued in id order, so a group is issued together and, in synchronous training, trained in
the same update.
"""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, ConfigDict, Field


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


class EpisodeLedger:
    """Issues work items and records completions; plain Python, wrapped in an actor by the driver."""

    def __init__(self, base_seed: int = 0, state: LedgerState | None = None,
                 group_size: int = 1) -> None:
        state = state or LedgerState(base_seed=base_seed, group_size=group_size)
        self.base_seed = state.base_seed
        self.group_size = state.group_size
        self.next_episode = state.next_episode
        self.pending: deque[WorkItem] = deque(state.pending)
        self.in_flight: dict[int, tuple[str, WorkItem]] = {}
        self.completed: set[int] = set(state.completed_ids)
        self.counts = state.counts.model_copy()

    def issue(self, worker: str, count: int, min_version: int = 0) -> list[WorkItem]:
        """Up to `count` episodes for `worker`: re-runs first, then new episodes."""
        items = []
        while len(items) < count:
            if self.pending:
                item = self.pending.popleft().model_copy(update={"min_version": min_version})
            else:
                item = self._item(self.next_episode, min_version)
                self.next_episode += 1
            self.in_flight[item.episode_id] = (worker, item)
            items.append(item)
        self.counts.issued += len(items)
        return items

    def complete(self, episode_id: int) -> bool:
        """Record a finished episode; False (and counted) for an id already completed or unknown."""
        if episode_id in self.completed or episode_id not in self.in_flight:
            self.counts.duplicates_rejected += 1
            return False
        del self.in_flight[episode_id]
        self.completed.add(episode_id)
        self.counts.completed += 1
        return True

    def release(self, worker: str) -> list[int]:
        """Put every episode `worker` still holds back in line; returns their ids."""
        returned = [item for owner, item in self.in_flight.values() if owner == worker]
        for item in returned:
            del self.in_flight[item.episode_id]
        self.pending.extendleft(reversed(returned))
        self.counts.reissued += len(returned)
        return [item.episode_id for item in returned]

    def reopen(self, episode_ids: list[int]) -> None:
        """Completed episodes whose data was lost before training: play them again first."""
        items = [self._item(i) for i in episode_ids if i in self.completed]
        for item in items:
            self.completed.discard(item.episode_id)
        self.pending.extendleft(reversed(items))
        self.counts.completed -= len(items)
        self.counts.reissued += len(items)

    def drop_stale(self, episode_ids: list[int]) -> None:
        """Completed episodes the learner refused as too stale: counted, never re-run."""
        self.counts.dropped_stale += len(episode_ids)

    def state(self, untrained: list[int] = ()) -> LedgerState:
        """A resumable snapshot. Episodes in flight, and the completed ones listed in
        `untrained` (their data waits in a queue a checkpoint does not keep), are treated as
        never issued: a resumed run issues them again, in their first order, and counts each
        once, as an uninterrupted run does."""
        completed = [i for i in untrained if i in self.completed]
        replayed = [item for _, item in self.in_flight.values()]
        replayed += [self._item(i) for i in completed]
        replayed.sort(key=lambda item: item.episode_id)
        counts = self.counts.model_copy(update={"issued": self.counts.issued - len(replayed),
                                                "completed": self.counts.completed - len(completed)})
        return LedgerState(next_episode=self.next_episode, base_seed=self.base_seed,
                           group_size=self.group_size,
                           pending=[*replayed, *self.pending],
                           completed_ids=sorted(self.completed.difference(completed)), counts=counts)

    def _item(self, episode_id: int, min_version: int = 0) -> WorkItem:
        """Episode `episode_id` plays the task instance of its group."""
        seed = self.base_seed + episode_id // self.group_size
        return WorkItem(episode_id=episode_id, seed=seed, min_version=min_version)
