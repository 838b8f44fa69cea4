"""The optimizer and learning-rate schedule, owned by Revisor rather than by DeepSpeed.

The study's original grad-clip and schedule settings were silently replaced by the distributed
engine's own configuration. Here the schedule is a plain torch LambdaLR handed to DeepSpeed
(its config carries no 'scheduler' or 'optimizer' block to override it), and the clip value is
written into DeepSpeed's 'gradient_clipping', the one place DeepSpeed applies it at every stage.
"""

from __future__ import annotations

import math

import torch

from learner.config import OptimConfig, schedule_needs_length


def lr_multiplier(step: int, total_steps: int | None, config: OptimConfig) -> float:
    """The factor on `lr` after `step` optimizer steps. A decay or warm-up with no known
    length is an error: a constant rate in its place would go unnoticed."""
    if total_steps is None:
        if schedule_needs_length(config):
            raise ValueError(f"the '{config.schedule}' schedule (warmup_ratio "
                             f"{config.warmup_ratio}) needs the run's total optimizer steps")
        return 1.0
    warmup = int(config.warmup_ratio * total_steps)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    if config.schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        decay = 1.0 - progress
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * decay


def make_optimizer(model: torch.nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over four groups: (backbone | value head) x (decayed | not decayed)."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (name.startswith("value_head."), param.ndim >= 2)
            groups.setdefault(key, []).append(param)
    param_groups = [
        {"params": params, "weight_decay": config.weight_decay if decayed else 0.0,
         "lr": config.lr * (config.value_head_lr_scale if head else 1.0)}
        for (head, decayed), params in sorted(groups.items())
    ]
    return torch.optim.AdamW(param_groups, lr=config.lr, betas=config.betas, eps=config.eps)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int | None
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, total_steps, config))
