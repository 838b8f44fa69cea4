"""Which rollout workers are alive but no longer working: hung engines, stopped processes.

A worker that dies ends its calls with an error, which Ray reports at once. A worker that
hangs (a process stopped by the OS, an engine stuck inside a step, a deadlock) ends nothing:
every call to it waits forever. So the driver keeps one cheap `pulse` call in flight to
each worker, served in its own concurrency group (never queued behind a weight load), and
declares a worker hung when a pulse goes unanswered for `timeout_s`, or when the answer says
that one engine step (or weight load) has been running for longer than that.

All checks are non-blocking: the driver calls `hung` whenever it looks at its workers, and
seconds it spends elsewhere (a PPO update) are not held against a worker whose pulse was
answered meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ray


@dataclass
class _Pending:
    ref: Any
    sent: float


class LivenessWatch:
    """Pulse bookkeeping for a set of workers, by worker id."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.pending: dict[str, _Pending] = {}

    def hung(self, handles: dict[str, Any]) -> dict[str, str]:
        """Worker id -> why it counts as hung (or dead), among `handles`; sends the next pulse
        to every other worker whose last one was answered."""
        now = time.monotonic()
        found: dict[str, str] = {}
        for worker_id, handle in handles.items():
            why = self._check(worker_id, handle, now)
            if why:
                found[worker_id] = why
        return found

    def forget(self, worker_ids: set[str]) -> None:
        for worker_id in worker_ids:
            self.pending.pop(worker_id, None)

    def _check(self, worker_id: str, handle: Any, now: float) -> str | None:
        pending = self.pending.get(worker_id)
        if pending is None:
            self.pending[worker_id] = _Pending(handle.pulse.remote(), now)
            return None
        done, _ = ray.wait([pending.ref], timeout=0)
        if not done:
            silent = now - pending.sent
            return f"no answer for {silent:.0f} s" if silent > self.timeout_s else None
        del self.pending[worker_id]
        try:
            busy_s = ray.get(pending.ref)
        except ray.exceptions.RayError:
            return "died"
        if busy_s > self.timeout_s:
            return f"one engine step has run for {busy_s:.0f} s"
        return None
