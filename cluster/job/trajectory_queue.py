"""The bounded queue between rollout workers and the learner.

Workers put record batches of finished episodes (metadata plus a reference to the Arrow
batch in the object store); the learner takes references and fetches the data itself, so
trajectories never pass through the driver or this queue. A full queue makes `put` wait:
workers slow down instead of piling up stale samples. `take` drops batches holding a turn
played by a policy older than the learner allows and reports their episode ids, so the
ledger can count them.

The class is plain asyncio; `ray.remote(TrajectoryQueue)` makes it an async actor.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.trajectory import BatchMeta


class Taken(BaseModel):
    """The result of one `take`: fresh batches (with their data references) and stale ids."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    batches: list[tuple[BatchMeta, list[Any]]] = Field(default_factory=list)
    stale_ids: list[str] = Field(default_factory=list)

    @property
    def episodes(self) -> int:
        return sum(meta.episodes for meta, _ in self.batches)


class TrajectoryQueue:
    """Bounded, de-duplicating, staleness-aware queue of finished episodes' record batches."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the trajectory queue needs a capacity of at least 1 batch")
        self.capacity = capacity
        self.items: deque[tuple[BatchMeta, list[Any]]] = deque()
        self.seen: set[str] = set()
        self.changed = asyncio.Condition()
        self.duplicates = 0
        self.unbounded = False
        """While True, `put` does not wait for room (see `set_unbounded`)."""

    async def put(self, meta: BatchMeta, refs: list[Any]) -> bool:
        """Wait for room, then enqueue; False (nothing queued) when the batch holds an episode
        id that was queued before."""
        async with self.changed:
            if self.seen.intersection(meta.episode_ids):
                self.duplicates += 1
                return False
            await self.changed.wait_for(lambda: self.unbounded or len(self.items) < self.capacity)
            self.seen.update(meta.episode_ids)
            self.items.append((meta, refs))
            self.changed.notify_all()
            return True

    async def set_unbounded(self, unbounded: bool) -> None:
        """Let puts through a full queue while the learner cannot make room: workers paused
        for an evaluation finish what they hold, and their last puts must not wait for an
        update that comes only after the evaluation."""
        async with self.changed:
            self.unbounded = unbounded
            self.changed.notify_all()

    async def take(self, episodes: int, min_version: int, timeout_s: float | None = None) -> Taken:
        """Batches holding at least `episodes` episodes, none sampled before `min_version`,
        waiting up to `timeout_s` for them (fewer when the time runs out)."""
        taken = Taken()
        deadline = None if timeout_s is None else asyncio.get_running_loop().time() + timeout_s
        async with self.changed:
            while taken.episodes < episodes:
                self._move(taken, episodes, min_version)
                if taken.episodes >= episodes or not await self._wait(deadline):
                    break
            self.changed.notify_all()
        return taken

    async def discard_worker(self, worker: str) -> list[str]:
        """Remove the batches `worker` put that nobody took yet (their data dies with the
        worker, which owns it); their episode ids may be queued again."""
        async with self.changed:
            kept = [(meta, refs) for meta, refs in self.items if meta.worker != worker]
            removed = [i for meta, _ in self.items if meta.worker == worker for i in meta.episode_ids]
            self.items = deque(kept)
            self.seen.difference_update(removed)
            self.changed.notify_all()
        return removed

    def workers(self) -> set[str]:
        """The workers some of whose batches wait in the queue."""
        return {meta.worker for meta, _ in self.items}

    def depth(self) -> int:
        return len(self.items)

    def stats(self) -> dict[str, int]:
        return {"depth": len(self.items), "capacity": self.capacity, "duplicates": self.duplicates}

    def _move(self, taken: Taken, episodes: int, min_version: int) -> None:
        while self.items and taken.episodes < episodes:
            meta, refs = self.items.popleft()
            if meta.oldest_version < min_version:
                taken.stale_ids.extend(meta.episode_ids)
            else:
                taken.batches.append((meta, refs))

    async def _wait(self, deadline: float | None) -> bool:
        """Wait for a put; False when the deadline passed."""
        self.changed.notify_all()
        if deadline is None:
            await self.changed.wait()
            return True
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(self.changed.wait(), remaining)
        except TimeoutError:
            return False
        return True
