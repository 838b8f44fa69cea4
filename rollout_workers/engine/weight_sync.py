"""Loading new policy weights into a running vLLM engine.

The class below is mixed into vLLM's worker (`worker_extension_cls`), so its method runs
next to the model: in this process for an in-process engine, else in vLLM's worker process.
A whole update is one call that carries every tensor, in checkpoint naming (the names of a
Hugging Face `state_dict()`); vLLM's reload path fuses q/k/v and gate/up projections as it
does at start-up. In-process the tensors are passed by reference; across processes they
travel as one safetensors blob (vLLM's RPC does not rebuild tensors nested in arguments).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from weight_transport.nccl_receiver import NcclWeightReceiver

WORKER_EXTENSION = "rollout_workers.engine.weight_sync.RevisorWorkerExtension"
Weights = list[tuple[str, torch.Tensor]]


class RevisorWorkerExtension(NcclWeightReceiver):
    """Methods vLLM adds to its worker class; `self` is the vLLM worker. The NCCL path's
    methods (weight_sync='nccl') come from NcclWeightReceiver."""

    def revisor_load_weights(self, weights: Weights | bytes) -> int:
        """Copy `weights` into the model in place; returns the number of tensors loaded."""
        if isinstance(weights, (bytes, bytearray, memoryview)):
            weights = list(load_safetensors(bytes(weights)).items())
        self.reload_weights(weights_iterator=iter(weights))  # type: ignore[attr-defined]
        return len(weights)


def as_weight_list(weights: Iterable[tuple[str, Any]]) -> Weights:
    return [(name, torch.as_tensor(tensor).detach()) for name, tensor in weights]


def pack(weights: Weights) -> bytes:
    """All tensors in one safetensors blob (tied tensors are copied: the format forbids
    tensors that share memory)."""
    seen: set[int] = set()
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in weights:
        tensor = tensor.cpu().contiguous()
        tensors[name] = tensor.clone() if tensor.data_ptr() in seen else tensor
        seen.add(tensor.data_ptr())
    return save_safetensors(tensors)


def total_bytes(weights: Weights) -> int:
    return sum(tensor.numel() * tensor.element_size() for _, tensor in weights)
