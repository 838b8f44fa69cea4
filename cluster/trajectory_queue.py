"""The bounded queue between rollout workers and the learner.

Workers put finished episodes (metadata plus a reference to their Arrow record batch in the
object store); the learner takes references and fetches the data itself, so trajectories never
pass through the driver or this queue. A full queue makes `put` wait: workers slow down instead
of piling up stale samples. `take` drops episodes played by a policy older than the learner
allows and reports their ids, so the ledger can count them.

The class is plain asyncio; `ray.remote(TrajectoryQueue)` makes it an async actor.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EpisodeMeta(BaseModel):
    """What the queue and the driver know of an episode: counts, never tokens."""

    model_config = ConfigDict(frozen=True)

    episode_id: int
    worker: str
    task: str
    variant: str
    oldest_version: int
    """The oldest policy version that sampled any of the episode's turns."""
    turns: int = Field(ge=1)
    prompt_tokens: int = 0
    generated_tokens: int = 0
    total_reward: float = 0.0
    success: bool = False


class Taken(BaseModel):
    """The result of one `take`: fresh episodes (with their data references) and stale ids."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    episodes: list[tuple[EpisodeMeta, list[Any]]] = Field(default_factory=list)
    stale_ids: list[int] = Field(default_factory=list)


class TrajectoryQueue:
    """Bounded, de-duplicating, staleness-aware queue of finished episodes."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the trajectory queue needs a capacity of at least 1 episode")
        self.capacity = capacity
        self.items: deque[tuple[EpisodeMeta, list[Any]]] = deque()
        self.seen: set[int] = set()
        self.changed = asyncio.Condition()
        self.duplicates = 0

    async def put(self, meta: EpisodeMeta, refs: list[Any]) -> bool:
        """Wait for room, then enqueue; False for an episode id already queued once."""
        async with self.changed:
            if meta.episode_id in self.seen:
                self.duplicates += 1
                return False
            await self.changed.wait_for(lambda: len(self.items) < self.capacity)
            self.seen.add(meta.episode_id)
            self.items.append((meta, refs))
            self.changed.notify_all()
            return True

    async def take(self, count: int, min_version: int, timeout_s: float | None = None) -> Taken:
        """Up to `count` episodes no older than `min_version`, waiting up to `timeout_s` for them."""
        taken = Taken()
        deadline = None if timeout_s is None else asyncio.get_running_loop().time() + timeout_s
        async with self.changed:
            while len(taken.episodes) < count:
                self._move(taken, count, min_version)
                if len(taken.episodes) >= count or not await self._wait(deadline):
                    break
            self.changed.notify_all()
        return taken

    def depth(self) -> int:
        return len(self.items)

    def stats(self) -> dict[str, int]:
        return {"depth": len(self.items), "capacity": self.capacity, "duplicates": self.duplicates}

    def _move(self, taken: Taken, count: int, min_version: int) -> None:
        while self.items and len(taken.episodes) < count:
            meta, refs = self.items.popleft()
            if meta.oldest_version < min_version:
                taken.stale_ids.append(meta.episode_id)
            else:
                taken.episodes.append((meta, refs))

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
