"""The time limit of a weight broadcast (`learner.weight_sync_timeout_s`), and who missed it.

A broadcast has no time limit of its own: a member that never takes part (a worker dead or
stuck) keeps the sender waiting for ever, and the job with it. So rank 0 queues its
broadcasts without waiting on them (`Broadcaster.done` says when they finished), and every
receiver confirms its copy on an ack board, a small TCP key-value store that rank 0 serves
next to the weight group. Rank 0 waits until the broadcast is done and every receiver has
confirmed, or the limit passes; then it returns the ranks that did not confirm, and the
driver replaces those workers, forming the next group without them. Those are the members
that never joined and any held up behind them (a broadcast runs through its members, and
gloo's rank 0 sends one buffer at a time): none of them has the weights.

Only torch here: the same functions run over NCCL (vLLM's PyNcclCommunicator, on a CUDA
stream) in a job and over a gloo process group in the CPU tests.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any, Protocol

import torch

from contracts.packed_weights import PackedWeights

POLL_S = 0.01
"""How often rank 0 looks at the broadcast and the acks while it waits."""


class Broadcaster(Protocol):
    """A group that queues broadcasts and says when all queued ones have finished."""

    def broadcast(self, tensor: torch.Tensor, src: int) -> Any: ...

    def done(self) -> bool: ...


class StreamBroadcaster:
    """A communicator with `broadcast(tensor, src)` that queues on the current CUDA stream
    (vLLM's PyNcclCommunicator): done once an event recorded after the last one has passed."""

    def __init__(self, communicator: Any, device: torch.device) -> None:
        self.communicator, self.device = communicator, device
        self._event: Any = None

    def broadcast(self, tensor: torch.Tensor, src: int) -> None:
        self.communicator.broadcast(tensor, src=src)
        self._event = torch.cuda.Event()
        self._event.record(torch.cuda.current_stream(self.device))

    def done(self) -> bool:
        return self._event is None or bool(self._event.query())


class AckBoard:
    """Receivers' confirmations, one key per rank, on a TCP store that rank 0 serves."""

    def __init__(self, host: str, port: int, serve: bool, timeout_s: float = 60.0) -> None:
        self.store = torch.distributed.TCPStore(
            host, port, None, serve, timedelta(seconds=timeout_s), wait_for_workers=False)

    def clear(self, ranks: list[int]) -> None:
        """Before a broadcast: forget the confirmations of the previous one."""
        for rank in ranks:
            self.store.delete_key(_key(rank))

    def confirm(self, rank: int, version: int) -> None:
        """A receiver: its copy of `version` has arrived."""
        self.store.set(_key(rank), str(version))

    def missing(self, ranks: list[int]) -> list[int]:
        """The ranks that have not confirmed since the last `clear`."""
        return [rank for rank in ranks if not self.store.check([_key(rank)])]


def _key(rank: int) -> str:
    return f"revisor-weights-ack/{rank}"


def send_within(broadcaster: Broadcaster, packed: PackedWeights, device: torch.device,
                acks: AckBoard | None, receivers: list[int], timeout_s: float | None) -> list[int]:
    """Rank 0: broadcast each dtype's buffer of `packed` (layout order) and wait at most
    `timeout_s` (None: without limit) for the broadcast to finish and every rank of
    `receivers` to confirm; returns the receivers that did not (empty: all did). Without an
    ack board, a broadcast not done in time names every receiver."""
    if acks is not None:
        acks.clear(receivers)
    sent = []  # the device copies must live until the broadcast is done
    for dtype in packed.layout.sizes:
        buffer = packed.buffers[dtype]
        if buffer.nbytes:
            sent.append(torch.from_numpy(buffer).to(device))
            broadcaster.broadcast(sent[-1], src=0)
    deadline = time.monotonic() + (math.inf if timeout_s is None else timeout_s)
    while True:
        done = broadcaster.done()
        missing = acks.missing(receivers) if acks else ([] if done else list(receivers))
        if (done and not missing) or time.monotonic() >= deadline:
            return missing
        time.sleep(POLL_S)
