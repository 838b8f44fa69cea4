"""Weights by NCCL broadcast: learner rank 0 sends the packed buffers straight to every engine.

The GPU alternative to the object-store path (`weight_sync: "nccl"` in the learner config).
The publication is the same packed form, one flat buffer per dtype (contracts.packed_weights),
so the receiver needs only the layout (names, dtypes, shapes, offsets, buffer sizes) to
allocate its buffers, take one broadcast per dtype from rank 0 of the weight group, and cut
them into tensors for the engine's usual reload path. Nothing passes through the object store
or host memory of the workers. Only torch here (and vLLM inside `open_group`), so the
broadcast runs on machines without Ray; the rest of the path is in
weight_transport.nccl.

The weight group is separate from the learner's own process group and from vLLM's: learner
rank 0 is its rank 0, engine k's tensor-parallel workers follow. It is formed with vLLM's
`StatelessProcessGroup` (a TCP-store rendezvous) and `PyNcclCommunicator`, the pattern vLLM
documents for RLHF (checked against vLLM 0.32, which the CPU extra pins; the GPU extra's
0.33 was not available to check here). The send and receive functions
take any communicator with `broadcast(tensor, src)`: `TorchBroadcaster` adapts a
torch.distributed group, which is how they are tested without vLLM (gloo on CPU; NCCL in
benchmarks/weight_sync_gpu.py).

Costs and limits: an engine holds one extra copy of the weights on its GPU during an update
(the received buffers, until the reload has copied them); splitting the buffers into chunks
would bound that, and is not done. NCCL has no timeout of its own: in a job rank 0 sends
through weight_transport.nccl_deadline instead of `send_packed`, which gives up on members that
do not take the broadcast within learner.weight_sync_timeout_s and names them.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from contracts.packed_weights import PackedWeights, WeightLayout
from weight_transport.packing import tensor_views


class Broadcaster(Protocol):
    def broadcast(self, tensor: torch.Tensor, src: int) -> Any: ...


class TorchBroadcaster:
    """A torch.distributed process group (the default one unless `group` is given). With
    `async_op` a broadcast is only queued, and `done` says when all queued ones finished
    (weight_transport.nccl_deadline waits on it with a time limit)."""

    def __init__(self, group: Any = None, async_op: bool = False) -> None:
        self.group, self.async_op = group, async_op
        self._works: list[Any] = []

    def broadcast(self, tensor: torch.Tensor, src: int) -> None:
        work = torch.distributed.broadcast(tensor, src=src, group=self.group,
                                           async_op=self.async_op)
        if work is not None:
            self._works.append(work)

    def done(self) -> bool:
        return all(work.is_completed() for work in self._works)


def require_cuda(who: str) -> torch.device:
    """The current CUDA device, or an error saying why the NCCL path cannot run here."""
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"weight_sync='nccl' needs CUDA on the {who}, but torch.cuda.is_available() is "
            "False here; NCCL broadcasts between GPUs only. Use weight_sync='object_store' or "
            "'auto' (the default) on CPU machines.")
    return torch.device("cuda", torch.cuda.current_device())


def open_group(host: str, port: int, world_size: int, rank: int, device: torch.device) -> Any:
    """Join the weight group as `rank` (every rank must call this at the same time; rank 0
    serves the rendezvous at host:port); returns vLLM's PyNcclCommunicator, which offers
    `broadcast(tensor, src)`.

    vLLM's own helper is preferred where it exists (vLLM 0.32 on): it creates the
    communicator without the NCCL settings vLLM pins for its own groups, which a peer
    outside vLLM (the learner) does not set and which would otherwise hang the group."""
    try:
        from vllm.distributed.weight_transfer.nccl_common import stateless_init_process_group
    except ImportError:
        stateless_init_process_group = _stateless_group
    return stateless_init_process_group(host, port, rank, world_size, device)


def _stateless_group(host: str, port: int, rank: int, world_size: int,
                     device: torch.device) -> Any:
    """The pattern of vLLM's RLHF example, for vLLM versions without the helper."""
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    group = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size)
    return PyNcclCommunicator(group, device=device)


def close_group(communicator: Any) -> None:
    """Release a communicator (before the group is formed again)."""
    destroy = getattr(communicator, "destroy", None)
    if callable(destroy):
        destroy()


def send_packed(communicator: Broadcaster, packed: PackedWeights, device: torch.device) -> int:
    """Rank 0: broadcast each dtype's buffer, in layout order; returns the bytes sent."""
    for dtype in packed.layout.sizes:
        buffer = packed.buffers[dtype]
        if buffer.nbytes == 0:
            continue
        communicator.broadcast(torch.from_numpy(buffer).to(device), src=0)
    _synchronize(device)
    return packed.nbytes


def receive_packed(communicator: Broadcaster, layout: WeightLayout, device: torch.device
                   ) -> list[tuple[str, torch.Tensor]]:
    """Every other rank: receive the buffers of `layout` and view them as named tensors
    (the views keep the buffers alive until the engine has copied them)."""
    buffers: dict[str, torch.Tensor] = {}
    for dtype, size in layout.sizes.items():
        buffers[dtype] = torch.empty(size, dtype=torch.uint8, device=device)
        if size:
            communicator.broadcast(buffers[dtype], src=0)
    _synchronize(device)
    return list(tensor_views(layout.entries, buffers))


def _synchronize(device: torch.device) -> None:
    """Broadcasts are queued on the current stream: wait for them before the buffers are
    read (receiver) or freed (sender)."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
