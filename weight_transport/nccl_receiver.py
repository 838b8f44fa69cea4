"""The engine side of `weight_sync: "nccl"`: methods mixed into vLLM's worker.

They run where the model is (see rollout_workers.engine.weight_sync): join the weight group
under a rank given by the fleet plus the worker's own rank inside its engine, then receive
each publication by broadcast and load it through the same reload path as the object-store
path. Arguments are plain dicts, which every vLLM RPC carries.
"""

from __future__ import annotations

from typing import Any

from contracts.packed_weights import WeightLayout
from weight_transport.nccl_broadcast import (
    close_group,
    open_group,
    receive_packed,
    require_cuda,
)
from weight_transport.nccl_deadline import AckBoard
from weight_transport.nccl_group import Rendezvous


class NcclWeightReceiver:
    """Mixed into the vLLM worker; `self` is the worker."""

    _revisor_weight_group: Any = None
    _revisor_acks: AckBoard | None = None
    _revisor_rank: int = 0

    def revisor_join_weight_group(self, rendezvous: dict[str, Any], rank_offset: int) -> int:
        """Join the group as rank `rank_offset` + this worker's rank in its engine."""
        from vllm.distributed.parallel_state import get_world_group

        device = require_cuda("rollout engine")
        self.revisor_leave_weight_group()
        rank = rank_offset + get_world_group().rank
        meeting = Rendezvous(**rendezvous)
        if meeting.ack_port:
            self._revisor_acks = AckBoard(meeting.host, meeting.ack_port, serve=False)
        self._revisor_weight_group = open_group(meeting.host, meeting.port,
                                                meeting.world_size, rank, device)
        self._revisor_rank = rank
        return rank

    def revisor_receive_weights(self, layout: dict[str, Any], version: int = 0) -> int:
        """Receive one publication from rank 0, confirm it on the ack board (rank 0 waits for
        that, within its time limit) and load it; returns the tensors loaded."""
        if self._revisor_weight_group is None:
            raise RuntimeError("this engine has not joined a weight group; the fleet forms one "
                               "before the first NCCL publication")
        device = require_cuda("rollout engine")
        weights = receive_packed(self._revisor_weight_group, WeightLayout.from_dict(layout),
                                 device)
        if self._revisor_acks is not None:
            self._revisor_acks.confirm(self._revisor_rank, version)
        self.reload_weights(weights_iterator=iter(weights))  # type: ignore[attr-defined]
        return len(weights)

    def revisor_leave_weight_group(self) -> None:
        if self._revisor_weight_group is not None:
            close_group(self._revisor_weight_group)
            self._revisor_weight_group = None
