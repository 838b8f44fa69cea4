"""Full policy weights for the rollout workers, gathered from ZeRO shards, published once.

A publication is one object in the Ray object store (the backbone's tensors in its own Hugging
Face naming, value head left out, packed by rollout_workers.weights) plus its version: a worker
fetches it with one `ray.get` and hands the unpacked pairs to its engine's reload path; nobody
makes one call per tensor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from rollout_workers.broadcast_messages import BroadcastPublication

_GATHER_NUMEL = 1 << 26
"""Elements gathered at once under ZeRO-3 (256 MiB in fp32): bounds the peak memory."""


class WeightPublication(BaseModel):
    """A published set of policy weights."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    version: int
    """Policy version: the number of PPO updates these weights have had."""
    ref: Any = None
    """ray.ObjectRef of a rollout_workers.weights.PackedWeights; `unpack_weights` gives the
    (name, tensor) pairs in the backbone's naming. None on the NCCL path."""
    num_tensors: int
    num_bytes: int
    broadcast: BroadcastPublication | None = None
    """weight_sync='nccl': the layout and sender to broadcast from, instead of `ref`."""


def gathered_state_dict(module: nn.Module, keep: bool = True) -> dict[str, torch.Tensor]:
    """Every parameter and persistent buffer of `module` as full CPU tensors.

    Under ZeRO-3 parameters are sharded and gathering them is a collective: every rank must
    call this, and ranks with `keep=False` join the gathers but copy nothing. Tied weights
    appear once, under the name named_parameters() gives them.
    """
    out: dict[str, torch.Tensor] = {}
    for chunk in _chunks(list(module.named_parameters())):
        with _gathered([param for _, param in chunk]):
            if keep:
                out.update((name, p.detach().to("cpu", copy=True)) for name, p in chunk)
    if keep:
        out.update(_persistent_buffers(module))
    return out


def with_tied_aliases(module: nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`weights` plus every other name of a tied parameter (say lm_head.weight for a model
    whose output layer shares the input embeddings), bound to the same tensor.

    Inference engines do not re-tie on a reload: vLLM keeps the output layer it loaded at
    start-up unless the reload names it, and the sampler would drift away from the learner.
    pack_weights stores a tensor listed twice only once.
    """
    canonical: dict[int, str] = {}
    aliased = dict(weights)
    for name, param in module.named_parameters(remove_duplicate=False):
        first = canonical.setdefault(id(param), name)
        if first != name and first in weights:
            aliased[name] = weights[first]
    return aliased


def _chunks(named: list[tuple[str, nn.Parameter]]) -> Iterator[list[tuple[str, nn.Parameter]]]:
    chunk: list[tuple[str, nn.Parameter]] = []
    size = 0
    for name, param in named:
        chunk.append((name, param))
        size += getattr(param, "ds_numel", param.numel())
        if size >= _GATHER_NUMEL:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _gathered(params: list[nn.Parameter]) -> contextlib.AbstractContextManager[Any]:
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    return contextlib.nullcontext()


def _persistent_buffers(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    for name, buffer in module.named_buffers():
        owner, _, attr = name.rpartition(".")
        if attr not in module.get_submodule(owner)._non_persistent_buffers_set:
            yield name, buffer.detach().to("cpu", copy=True)

