"""A thin wrapper around a DeepSpeed engine: our optimizer, schedule and clipping, our batching.

Revisor feeds DeepSpeed its own micro-batches (turns differ in number and length every update),
so gradient accumulation is unmanaged: `backward` accumulates, `step` is the boundary. Every
rank must run the same number of forwards and backwards (ZeRO gathers and reduces inside
them); the trainers pad with zero-weight micro-batches to keep ranks in step.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from learner.config import DeepSpeedConfig, OptimConfig
from learner.optim import make_optimizer, make_scheduler

DEFAULT_EXTENSIONS_DIR = Path(__file__).resolve().parents[1] / ".cache" / "torch_extensions"

# DeepSpeed 0.19 still calls the collectives torch 2.13 renamed; the warning repeats every step.
warnings.filterwarnings("ignore", category=FutureWarning,
                        message=r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)`")


def use_gpu() -> bool:
    return torch.cuda.is_available() and os.environ.get("DS_ACCELERATOR", "cuda") != "cpu"


def resolve_dtype(config: DeepSpeedConfig) -> torch.dtype:
    if config.dtype == "auto":
        return torch.bfloat16 if use_gpu() else torch.float32
    return getattr(torch, config.dtype)


def prepare_environment() -> None:
    """Settings DeepSpeed reads at import: the CPU accelerator when there is no GPU, and the
    project's prebuilt extension cache so that nothing compiles at start-up."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(DEFAULT_EXTENSIONS_DIR))


def init_distributed() -> None:
    """Join the process group described by RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT
    (a single-process group when they are unset): NCCL on GPU, gloo on CPU."""
    prepare_environment()
    import deepspeed

    if dist.is_initialized():
        return
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    if use_gpu():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    deepspeed.init_distributed(dist_backend="nccl" if use_gpu() else "gloo")


def deepspeed_config(optim: OptimConfig, config: DeepSpeedConfig) -> dict[str, Any]:
    """DeepSpeed's JSON config. No 'optimizer' or 'scheduler' block: ours are passed as objects,
    so nothing in here can replace them."""
    zero: dict[str, Any] = {"stage": config.zero_stage}
    if config.zero_stage < 2:
        zero["overlap_comm"] = False
    if config.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if config.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": use_gpu()}
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "gradient_clipping": optim.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": resolve_dtype(config) == torch.bfloat16},
        "zero_allow_untested_optimizer": True,
        # offloaded, DeepSpeed would insist on its own CPU Adam; ours keeps Revisor's schedule
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


class TrainEngine:
    """One rank's DeepSpeed engine with the few operations the trainers need."""

    def __init__(self, model: torch.nn.Module, optim: OptimConfig, config: DeepSpeedConfig,
                 total_steps: int | None = None) -> None:
        init_distributed()
        import deepspeed

        optimizer = make_optimizer(model, optim)
        scheduler = make_scheduler(optimizer, optim, total_steps)
        self.ds, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler,
            config=deepspeed_config(optim, config))
        self.config = config
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    @property
    def module(self) -> torch.nn.Module:
        return self.ds.module

    @property
    def device(self) -> torch.device:
        return self.ds.device

    @property
    def lr(self) -> float:
        return float(self.ds.get_lr()[0])

    @property
    def steps(self) -> int:
        return int(self.ds.global_steps)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Onto this rank's device; floating inputs (pixels) in the training dtype."""
        if tensor.is_floating_point():
            return tensor.to(self.device, resolve_dtype(self.config))
        return tensor.to(self.device)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.ds(*args, **kwargs)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate gradients of a loss already divided by the *global* batch size.

        DeepSpeed averages gradients over ranks; scaling by the world size turns that average
        into the sum over ranks, i.e. the full-batch gradient, whatever the rank count."""
        self.ds.backward(loss * self.world_size, scale_wrt_gas=False)

    def step(self) -> float | None:
        """Apply one optimizer step (clip, Adam, schedule); the pre-clip gradient norm when
        DeepSpeed measures it (ZeRO 1-3), else None."""
        self.ds.step()
        norm = self.ds.get_global_grad_norm()
        return None if norm is None else float(norm)

    def all_reduce(self, values: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Sum or max over ranks (float64 on CPU keeps token counts exact)."""
        out = values.detach().to(self.device).clone()
        if self.world_size > 1:
            dist.all_reduce(out, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return out.cpu()

    def train(self, mode: bool = True) -> None:
        self.ds.train(mode)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
