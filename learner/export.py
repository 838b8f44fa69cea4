"""Full policy weights for the rollout workers, gathered from ZeRO shards.

Rank 0 gathers the backbone's tensors (in its own Hugging Face naming, value head left out)
straight into the buffers it packs them in (weight_transport.packing.WeightPacker): after the
first publication, one memory copy per publication. How they then travel is the business of
weight_transport.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

_GATHER_NUMEL = 1 << 26
"""Elements gathered at once under ZeRO-3 (256 MiB in fp32): bounds the peak memory."""


def gathered_state_dict(module: nn.Module, keep: bool = True,
                        into: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Every parameter and persistent buffer of `module` as full CPU tensors: copied into the
    tensor of its name in `into` when given (the packer's buffers), else into new ones.

    Under ZeRO-3 parameters are sharded and gathering them is a collective: every rank must
    call this, and ranks with `keep=False` join the gathers but copy nothing. Tied weights
    appear once, under the name named_parameters() gives them.
    """
    out: dict[str, torch.Tensor] = {}
    for chunk in _chunks(list(module.named_parameters())):
        with _gathered([param for _, param in chunk]):
            if keep:
                out.update((name, _cpu_copy(p, name, into)) for name, p in chunk)
    if keep:
        out.update((name, _cpu_copy(b, name, into)) for name, b in _persistent_buffers(module))
    return out


def _cpu_copy(tensor: torch.Tensor, name: str, into: Mapping[str, torch.Tensor] | None
              ) -> torch.Tensor:
    if into is None:
        return tensor.detach().to("cpu", copy=True)
    return into[name].copy_(tensor.detach().reshape(into[name].shape))


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
            yield name, buffer

