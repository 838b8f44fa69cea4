"""The weight fingerprint: a cheap checksum of a publication, the same on learner rank 0 and
on every worker (the sync-divergence guard compares the two; cluster.job.sync_guard).

It reads a fixed, strided sample of every tensor's bytes (SAMPLES blocks of BLOCK_BYTES, evenly
spaced, plus the name, dtype and shape), never the whole tensor: a few hundred kilobytes for
any model, so every publication and every load can afford it. Rank 0 computes it over the
tensors it packed, a worker over the tensors its engine was handed; both see the same
(name, tensor) pairs in the same order (weight_transport.packing.unpack_weights). A load that
did not happen, another version, or a buffer damaged on a large scale (zeros, a torn or
truncated copy, the wrong bytes) changes it; a flipped bit outside the sample does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch

SAMPLES = 16
"""Blocks read per tensor."""
BLOCK_BYTES = 64
"""Bytes per block: a cache line."""
NOT_FROM_PUBLICATION = "initial"
"""A worker's fingerprint before it has loaded any publication (its engine's own weights)."""


def fingerprint(weights: Iterable[tuple[str, torch.Tensor]]) -> str:
    """The fingerprint of named tensors, in their order (16 hex digits)."""
    digest = hashlib.blake2b(digest_size=8)
    for name, tensor in weights:
        digest.update(f"{name}|{str(tensor.dtype).removeprefix('torch.')}|"
                      f"{tuple(tensor.shape)}|".encode())
        digest.update(_sample(tensor))
    return digest.hexdigest()


def _sample(tensor: torch.Tensor) -> bytes:
    """SAMPLES evenly spaced blocks of the tensor's bytes (all of them when it is smaller)."""
    flat = tensor.detach().reshape(-1)
    if flat.numel() == 0:
        return b""
    raw = flat.contiguous().view(torch.uint8)
    size = raw.numel()
    block = min(BLOCK_BYTES, size)
    starts = torch.linspace(0, size - block, SAMPLES).long().unique()
    index = (starts[:, None] + torch.arange(block)).reshape(-1).to(raw.device)
    return raw[index].cpu().numpy().tobytes()
