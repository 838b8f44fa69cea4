"""TEST ONLY: a worker that mishandles weight loads on purpose (`rollout.test_faults`).

It sits between the worker's transport and its LoadRecorder (rollout_workers.weight_loads),
so the real transport delivers the real publication and the fault happens where a real one
would: the load is skipped, or the engine is handed damaged bytes. Tests and the docs' guard
demonstration use it to see the sync-divergence guard catch each; nothing else sets it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from contracts.rollout_config import WeightFault


class FaultyLoads:
    """The recorder as the transport sees it, with `fault` applied to every load."""

    def __init__(self, recorder: Any, fault: WeightFault) -> None:
        self._recorder, self.fault = recorder, fault
        self._loads = 0

    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        self._loads += 1
        if self.fault == "skip_load" or (self.fault == "skip_first_load" and self._loads == 1):
            self._recorder.update_weights([], version)  # `version` with the old weights
        elif self.fault == "corrupt":
            self._recorder.update_weights([(name, damaged(t)) for name, t in weights], version)
        else:  # skip_first_load, after the first: loads as it should
            self._recorder.update_weights(weights, version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recorder, name)


def damaged(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of a floating-point tensor with its second half zeroed (a torn copy)."""
    if not tensor.is_floating_point() or tensor.numel() < 2:
        return tensor
    copy = tensor.detach().clone().reshape(-1)
    copy[copy.numel() // 2 :] = 0
    return copy.reshape(tensor.shape)
