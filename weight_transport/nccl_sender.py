"""Learner rank 0's half of `weight_sync: "nccl"`: its place in the weight group, and the send.

The packed weights are kept by rank 0's WeightKeeper, whatever the transport; this holds only
rank 0's communicator, opened again whenever the driver forms the group again (a new
rendezvous generation), and broadcasts the kept buffers through it.
"""

from __future__ import annotations

from typing import Any

from contracts.packed_weights import PackedWeights
from weight_transport.nccl_broadcast import close_group, open_group, require_cuda
from weight_transport.nccl_deadline import AckBoard, StreamBroadcaster, send_within
from weight_transport.nccl_group import BroadcastReport, Rendezvous


class WeightSender:
    def __init__(self) -> None:
        self._group: Any = None
        self._acks: AckBoard | None = None
        """The board the group's receivers confirm each broadcast on (served here)."""
        self.generation: int | None = None
        """The rendezvous generation of the group it is in (None: none)."""

    def open(self, rendezvous: dict[str, Any]) -> None:
        """Form the weight group as its rank 0 (the workers join at the same time)."""
        device = require_cuda("learner rank 0")
        self.close()
        meeting = Rendezvous(**rendezvous)
        self._acks = AckBoard(meeting.host, meeting.ack_port, serve=True) if meeting.ack_port else None
        self._group = open_group(meeting.host, meeting.port, meeting.world_size, 0, device)
        self.generation = meeting.generation

    def send(self, packed: PackedWeights, rendezvous: dict[str, Any],
             timeout_s: float | None) -> BroadcastReport:
        """Broadcast `packed` to the group of `rendezvous`, joining it first when it is a new
        one, and wait at most `timeout_s` for every receiver to confirm; the ranks that did
        not are reported, and this rank leaves the group (the next publication forms another)."""
        meeting = Rendezvous(**rendezvous)
        if meeting.generation != self.generation:
            self.open(rendezvous)
        device = require_cuda("learner rank 0")
        receivers = list(range(1, meeting.world_size))
        missing = send_within(StreamBroadcaster(self._group, device), packed, device,
                              self._acks, receivers, timeout_s)
        if missing:
            self.close()
        return BroadcastReport(nbytes=packed.nbytes, missing_ranks=missing)

    def close(self) -> None:
        if self._group is not None:
            close_group(self._group)
            self._group = None
            self.generation = None
        self._acks = None
