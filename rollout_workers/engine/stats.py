"""Engine counters, kept the same way by every engine (into `contracts.engine.EngineReport`,
what a worker reports across the actor boundary)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from contracts.engine import EngineReport, Generation, GenerationRequest


class StatsRecorder:
    """Accumulates counters; engines call `generating` and `updating` around their work."""

    def __init__(self, kind: str, model: str) -> None:
        self.report = EngineReport(kind=kind, model=model)

    def describe(self, backend: str) -> None:
        self.report = self.report.model_copy(update={"backend": backend})

    def started(self, seconds: float) -> None:
        self.add(start_seconds=seconds)

    @contextmanager
    def generating(self, requests: list[GenerationRequest]) -> Iterator[list[Generation]]:
        """Time one generate call; the caller fills the yielded list with its results."""
        results: list[Generation] = []
        start = time.perf_counter()
        yield results
        self.add(
            requests=len(requests),
            prompt_tokens=sum(len(r.prompt_ids) for r in requests),
            generated_tokens=sum(len(g.token_ids) for g in results),
            generate_seconds=time.perf_counter() - start,
        )

    @contextmanager
    def updating(self, version: int, num_bytes: int) -> Iterator[None]:
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.add(weight_updates=1, weight_update_seconds=seconds, weight_update_bytes=num_bytes)
        self.report = self.report.model_copy(
            update={"policy_version": version, "last_weight_update_seconds": seconds})

    def add(self, **increments: float) -> None:
        current = self.report.model_dump(include=set(increments))
        self.report = self.report.model_copy(
            update={name: current[name] + value for name, value in increments.items()})
