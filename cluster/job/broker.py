"""The rollout broker: the one actor that hands out episodes and takes back their data.

Keeping episode accounting (the ledger) and the trajectory queue in one actor makes every
accounting step atomic: a batch is accepted into the queue and its episodes are marked
complete in the same call. A record batch lives in the object store owned by the worker that
made it, so when a worker dies the broker replays, under the same ids, both the episodes it
still held and those of its batches nobody has taken yet; a batch already taken but
unreadable is reported back with `data_lost`. Every episode is trained on exactly once.

It also enforces bounded staleness at the source. With `max_staleness` s and E episodes per
update, a worker gets new episodes only while its policy is at most s versions behind the
learner, and no more than E·(v+s+1) episodes exist when the learner is at version v. With
s = 0 that is exactly synchronous on-policy PPO: E episodes, all played by the current policy,
per update.
"""

from __future__ import annotations

from typing import Any

from cluster.job.ledger import EpisodeLedger, LedgerState
from cluster.job.trajectory_queue import Taken, TrajectoryQueue
from cluster.settings.experiment import TrainingConfig
from contracts.trajectory import BatchMeta
from envs.registry import TaskConfig


class RolloutBroker:
    """Async Ray actor body (see `ray.remote`); plain asyncio, so it is testable without Ray."""

    def __init__(self, task: TaskConfig, training: TrainingConfig, max_staleness: int,
                 ledger: LedgerState | None = None, version: int = 0) -> None:
        """`training` gives the episodes per update, the queue's capacity, the episode seeds
        and group size, and the run's number of updates (no episodes are played beyond what
        they consume); `ledger` and `version` resume a run."""
        self.task = task
        self.episodes_per_update = training.episodes_per_update
        self.max_staleness = max_staleness
        self.ledger = EpisodeLedger(training.seed, ledger, training.group_size)
        self.queue = TrajectoryQueue(training.queue_capacity)
        self.version = version
        self.updates = training.updates
        self.finished = False

    async def take_work(self, worker: str, count: int, worker_version: int) -> list[dict]:
        """Up to `count` episode specs for `worker` (empty: none may be played right now)."""
        if self.finished or worker_version < self.version - self.max_staleness:
            return []
        count = min(count, self._budget())
        items = self.ledger.issue(worker, count, min_version=worker_version) if count > 0 else []
        return [{"episode_id": str(item.episode_id), "task": self.task.model_dump(),
                 "seed": item.seed} for item in items]

    async def put(self, meta: BatchMeta, refs: list[Any]) -> bool:
        """Queue a record batch (waits while the queue is full) and complete its episodes."""
        accepted = await self.queue.put(meta, refs)
        if accepted:
            for episode_id in meta.episode_ids:
                self.ledger.complete(int(episode_id))
        else:
            self.ledger.counts.duplicates_rejected += meta.episodes
        return accepted

    async def take_batches(self, episodes: int, timeout_s: float | None = None) -> Taken:
        """Batches for the next update: fresh enough for the current version, stale ones dropped."""
        taken = await self.queue.take(episodes, self.version - self.max_staleness, timeout_s)
        self.ledger.drop_stale([int(i) for i in taken.stale_ids])
        return taken

    async def set_version(self, version: int) -> None:
        self.version = version

    async def worker_lost(self, worker: str) -> list[str]:
        """Episodes the lost worker still held, and those in its batches nobody took yet (their
        data died with it), go back in line under the same ids; returns those ids."""
        held = self.ledger.release(worker)
        queued = [int(i) for i in await self.queue.discard_worker(worker)]
        self.ledger.reopen(queued)
        return [str(i) for i in sorted(held + queued)]

    async def data_lost(self, episode_ids: list[str]) -> None:
        """Taken batches whose data could not be read (their worker died first): replay them."""
        self.ledger.reopen([int(i) for i in episode_ids])
        self.queue.seen.difference_update(episode_ids)

    async def accept_all(self, on: bool) -> None:
        """While on, a full queue still takes batches (the fleet pauses for an evaluation)."""
        await self.queue.set_unbounded(on)

    async def queued_workers(self) -> set[str]:
        """Workers with batches not yet taken (a retiring worker must outlive them)."""
        return self.queue.workers()

    async def finish(self) -> None:
        """Issue no more episodes (the run is over); workers drain what they hold."""
        self.finished = True

    async def state(self) -> LedgerState:
        """The ledger to checkpoint: episodes whose batches still wait in the queue count as
        unplayed (the queue is not checkpointed), so a resumed run plays them again."""
        queued = [int(i) for meta, _ in self.queue.items for i in meta.episode_ids]
        return self.ledger.state(untrained=queued)

    async def stats(self) -> dict[str, Any]:
        return {"version": self.version, "in_flight": len(self.ledger.in_flight),
                "queue": self.queue.stats(), "ledger": self.ledger.counts.model_dump()}

    def _budget(self) -> int:
        horizon = min(self.version + self.max_staleness + 1, self.updates)
        allowed = self.episodes_per_update * horizon
        allowed += self.ledger.counts.dropped_stale
        return allowed - self.ledger.next_episode + len(self.ledger.pending)
