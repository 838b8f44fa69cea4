"""The NCCL weight path's transport on a GPU machine: pack, broadcast, unpack, compare.

`weight_sync: "nccl"` moves a publication from learner rank 0 to every engine as one
broadcast per dtype buffer (weight_transport.nccl_broadcast). In a job the
group is formed with vLLM's StatelessProcessGroup and PyNcclCommunicator; this script runs the very same
`send_packed` / `receive_packed` over a torch.distributed group instead, so it needs only
torch and transformers (no Ray, vLLM, DeepSpeed or pydantic, hence plain dataclass settings).

Rank 0 builds a Llama model (by default the shape of the 50m tiny preset, some tensors in
bfloat16 so that two buffers travel), packs its state dict and broadcasts it `repeats`
times; every other rank builds the same model from the same seed, receives, and checks that
each tensor arrived bit for bit (the layout reaches them by broadcast_object_list, as the
fleet's RPC would carry it). Reported: bytes, median seconds per broadcast, GB/s, all equal.

Backends (`--backend`):
- nccl: one GPU per rank (cuda:0, cuda:1, ...); needs as many GPUs as ranks. NCCL refuses two
  ranks of one communicator on the same GPU ("Duplicate GPU detected"), so on a one-GPU
  machine nccl fails by design, not by a bug here;
- gloo: CUDA tensors through gloo on a one-GPU machine (the GPU-side buffers, views and
  copies run; the wire is gloo's), or CPU tensors with `--device cpu` (what the tests run);
- auto (default): nccl when there are at least `world` GPUs, else gloo on cuda:0.

Usage: python benchmarks/weight_sync_gpu.py [--world 2] [--backend auto] [--out runs/benchmarks/weight_sync_gpu.json]
"""
# ruff: noqa: E402  (the checkout goes on sys.path before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import json
import socket
import statistics
import tempfile
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import LlamaConfig, LlamaForCausalLM

from contracts.packed_weights import WeightLayout
from weight_transport.nccl_broadcast import (
    TorchBroadcaster,
    receive_packed,
    send_packed,
)
from weight_transport.packing import pack_weights


@dataclasses.dataclass(frozen=True)
class GpuSyncSettings:
    world: int = 2
    """Processes: rank 0 sends, the others receive (stand-ins for engines)."""
    backend: str = "auto"
    device: str = "auto"
    """'auto': CUDA when available, else CPU."""
    repeats: int = 5
    hidden_size: int = 768
    num_layers: int = 8
    num_heads: int = 12
    num_kv_heads: int = 4
    intermediate_size: int = 2048
    vocab_size: int = 1044
    seed: int = 0
    out: str = "runs/benchmarks/weight_sync_gpu.json"


def resolve(settings: GpuSyncSettings) -> tuple[str, str]:
    """(backend, device kind) the run will use."""
    cuda = settings.device != "cpu" and torch.cuda.is_available()
    if settings.device == "cuda" and not cuda:
        raise RuntimeError("--device cuda, but torch.cuda.is_available() is False here")
    backend = settings.backend
    if backend == "auto":
        backend = "nccl" if cuda and torch.cuda.device_count() >= settings.world else "gloo"
    if backend == "nccl" and not cuda:
        raise RuntimeError("--backend nccl needs CUDA, which this machine lacks")
    return backend, "cuda" if cuda else "cpu"


def state_dict(settings: GpuSyncSettings) -> dict[str, torch.Tensor]:
    """The same weights on every rank (same seed): a Llama model, its norms in bfloat16."""
    torch.manual_seed(settings.seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=settings.vocab_size, hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size, num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads, num_key_value_heads=settings.num_kv_heads,
        tie_word_embeddings=True))
    return {name: (p.detach().to(torch.bfloat16) if "norm" in name else p.detach())
            for name, p in model.named_parameters()}


def run_rank(rank: int, settings: GpuSyncSettings, port: int, out_dir: str) -> None:
    """One process of the group: rank 0 sends, the others receive and compare."""
    backend, kind = resolve(settings)
    device = torch.device("cpu")
    if kind == "cuda":
        device = torch.device("cuda", rank if backend == "nccl" else 0)
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=settings.world)
    try:
        result = _send(settings, device) if rank == 0 else _receive(settings, device)
    finally:
        dist.destroy_process_group()
    result.update(rank=rank, backend=backend, device=str(device))
    Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(result))


def _send(settings: GpuSyncSettings, device: torch.device) -> dict[str, Any]:
    packed = pack_weights(state_dict(settings), version=1)
    dist.broadcast_object_list([packed.layout.to_dict()], src=0)
    seconds = []
    for _ in range(settings.repeats + 1):  # the first one warms up
        dist.barrier()
        began = time.perf_counter()
        send_packed(TorchBroadcaster(), packed, device)
        seconds.append(time.perf_counter() - began)
    return {"bytes": packed.nbytes, "buffers": dict(packed.layout.sizes), "seconds": seconds[1:]}


def _receive(settings: GpuSyncSettings, device: torch.device) -> dict[str, Any]:
    expected = state_dict(settings)
    message: list[Any] = [None]
    dist.broadcast_object_list(message, src=0)
    layout = WeightLayout.from_dict(message[0])
    seconds, mismatched = [], []
    for repeat in range(settings.repeats + 1):
        dist.barrier()
        began = time.perf_counter()
        received = receive_packed(TorchBroadcaster(), layout, device)
        seconds.append(time.perf_counter() - began)
        if repeat == 0:
            mismatched = [name for name, tensor in received
                          if not torch.equal(tensor.cpu(), expected[name])]
            names_match = [name for name, _ in received] == list(expected)
    return {"seconds": seconds[1:], "mismatched": mismatched, "names_match": names_match,
            "on_device": all(t.device == device for _, t in received)}


def run(settings: GpuSyncSettings) -> dict[str, Any]:
    """All ranks as processes on this machine; the summary of their reports."""
    with tempfile.TemporaryDirectory(prefix="rv-gpu-sync-") as out_dir:
        mp.spawn(run_rank, args=(settings, _free_port(), out_dir), nprocs=settings.world)
        ranks = [json.loads(Path(out_dir, f"rank-{r}.json").read_text())
                 for r in range(settings.world)]
    sender, receivers = ranks[0], ranks[1:]
    median = statistics.median(sender["seconds"])
    return {
        "backend": sender["backend"], "devices": [r["device"] for r in ranks],
        "bytes": sender["bytes"], "buffers": sender["buffers"],
        "broadcast_s": round(median, 5), "gb_per_s": round(sender["bytes"] / median / 1e9, 2),
        "all_equal": all(not r["mismatched"] and r["names_match"] and r["on_device"]
                         for r in receivers),
        "mismatched": sorted({name for r in receivers for name in r["mismatched"]}),
        "ranks": ranks, "settings": dataclasses.asdict(settings),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in dataclasses.fields(GpuSyncSettings):
        parser.add_argument(f"--{field.name.replace('_', '-')}", default=field.default,
                            type=type(field.default))
    settings = GpuSyncSettings(**vars(parser.parse_args()))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = run(settings)
    out = Path(settings.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("backend", "devices", "bytes", "broadcast_s",
                                             "gb_per_s", "all_equal")}))
    print(f"written to {out}")
    if not result["all_equal"]:
        raise SystemExit(f"weights arrived wrong: {result['mismatched'][:5]}")


if __name__ == "__main__":
    main()
