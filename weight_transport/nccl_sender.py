"""Learner rank 0's half of `weight_sync: "nccl"`: its place in the weight group, and the send.

The packed weights are kept by rank 0's WeightKeeper, whatever the transport; this holds only
rank 0's communicator, opened again whenever the driver forms the group again (a new
rendezvous generation), and broadcasts the kept buffers through it.
"""

from __future__ import annotations

from typing import Any

from contracts.packed_weights import PackedWeights
from weight_transport.nccl_broadcast import (
    close_group,
    open_group,
    require_cuda,
    send_packed,
)
from weight_transport.nccl_group import Rendezvous


class WeightSender:
    def __init__(self) -> None:
        self._group: Any = None
        self.generation: int | None = None
        """The rendezvous generation of the group it is in (None: none)."""

    def open(self, rendezvous: dict[str, Any]) -> None:
        """Form the weight group as its rank 0 (the workers join at the same time)."""
        device = require_cuda("learner rank 0")
        self.close()
        meeting = Rendezvous(**rendezvous)
        self._group = open_group(meeting.host, meeting.port, meeting.world_size, 0, device)
        self.generation = meeting.generation

    def send(self, packed: PackedWeights, rendezvous: dict[str, Any]) -> int:
        """Broadcast `packed` to the group of `rendezvous`, joining it first when it is a new
        one; returns the bytes sent."""
        if Rendezvous(**rendezvous).generation != self.generation:
            self.open(rendezvous)
        return send_packed(self._group, packed, require_cuda("learner rank 0"))

    def close(self) -> None:
        if self._group is not None:
            close_group(self._group)
            self._group = None
            self.generation = None
