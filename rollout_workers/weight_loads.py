"""What a worker's engine was handed at each weight load, fingerprinted on the way in.

The transports load weights by calling `update_weights` on the engine they are given
(weight_transport). The worker gives them this recorder in front of its engine: every load
passes through it whole, and its fingerprint (weight_transport.fingerprint, the function
learner rank 0 uses) is what the worker reports with its batches. Measured here, at the
engine's door, it covers every way the load can go wrong before the engine: a load that never
happened keeps the old fingerprint; bytes damaged on the way change it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from weight_transport.fingerprint import NOT_FROM_PUBLICATION, fingerprint


class LoadRecorder:
    """The engine as the transports see it; any other attribute is the engine's own."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.fingerprint: str | None = NOT_FROM_PUBLICATION
        """Of the last load (None: the last one loaded inside the engine, unseen here)."""

    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        pairs = list(weights)
        self._engine.update_weights(pairs, version)
        self.fingerprint = fingerprint(pairs)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._engine, name)
        if name == "receive_weights":  # NCCL: the broadcast lands inside vLLM's workers
            def receive(*args: Any, **kwargs: Any) -> Any:
                result = value(*args, **kwargs)
                self.fingerprint = None
                return result
            return receive
        return value
