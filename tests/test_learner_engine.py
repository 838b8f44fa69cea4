"""The DeepSpeed wrapper applies Revisor's own schedule and gradient clipping at every ZeRO stage.

The study's original run had both silently replaced by the distributed engine's settings; these
tests replay a few steps in plain torch (AdamW + clip + LambdaLR) and demand the same weights.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learner.config import DeepSpeedConfig, OptimConfig
from learner.engine import TrainEngine, deepspeed_config, resolve_dtype
from learner.export import gathered_state_dict
from learner.optim import lr_multiplier, make_optimizer, make_scheduler

torch.set_num_threads(1)


def _module(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))


def _batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    # growing targets give growing gradients, so clipping bites on some steps and not others
    return [(torch.randn(8, 6, generator=g), 3.0 * k * torch.randn(8, 1, generator=g))
            for k in range(1, steps + 1)]


def _reference(optim: OptimConfig, total: int, batches, clip: bool) -> dict[str, torch.Tensor]:
    model = _module()
    optimizer = make_optimizer(model, optim)
    scheduler = make_scheduler(optimizer, optim, total)
    for x, y in batches:
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    return {k: v.detach() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("stage,offload", [(0, False), (2, False), (3, False), (2, True)])
def test_clipping_optimizer_and_schedule_match_plain_torch(stage: int, offload: bool) -> None:
    optim = OptimConfig(lr=0.05, max_grad_norm=0.5, schedule="cosine", warmup_ratio=0.25,
                        weight_decay=0.01)
    total, batches = 8, _batches(6)
    engine = TrainEngine(_module(), optim, DeepSpeedConfig(zero_stage=stage, offload_optimizer=offload),
                         total_steps=total)
    norms = []
    for step, (x, y) in enumerate(batches, start=1):
        loss = ((engine(x) - y) ** 2).mean()
        engine.backward(loss)
        norms.append(engine.step())
        assert engine.lr == pytest.approx(optim.lr * lr_multiplier(step, total, optim), rel=1e-9)
    weights = gathered_state_dict(engine.module)
    clipped = _reference(optim, total, batches, clip=True)
    unclipped = _reference(optim, total, batches, clip=False)
    for name, value in clipped.items():
        assert torch.allclose(weights[name], value, atol=1e-6), name
    assert any(not torch.allclose(weights[n], v, atol=1e-4) for n, v in unclipped.items())
    if stage > 0:  # DeepSpeed reports the pre-clip norm from ZeRO 1 on
        assert max(norms) > optim.max_grad_norm


def test_deepspeed_config_carries_no_optimizer_or_scheduler_of_its_own() -> None:
    config = deepspeed_config(OptimConfig(max_grad_norm=0.3), DeepSpeedConfig(zero_stage=3))
    assert "optimizer" not in config and "scheduler" not in config
    assert config["gradient_clipping"] == 0.3
    assert config["zero_optimization"]["stage"] == 3
    assert config["bf16"]["enabled"] is False  # CPU trains in fp32
    assert resolve_dtype(DeepSpeedConfig()) == torch.float32
    assert "offload_optimizer" not in config["zero_optimization"]
    offloaded = deepspeed_config(OptimConfig(), DeepSpeedConfig(zero_stage=2, offload_optimizer=True))
    assert offloaded["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    with pytest.raises(ValueError, match="offload_optimizer needs zero_stage >= 1"):
        DeepSpeedConfig(zero_stage=0, offload_optimizer=True)


def test_warmup_then_cosine_shape() -> None:
    optim = OptimConfig(lr=1.0, schedule="cosine", warmup_ratio=0.1, min_lr_ratio=0.1)
    values = [lr_multiplier(step, 100, optim) for step in range(101)]
    assert values[0] == pytest.approx(1 / 11) and values[9] == pytest.approx(10 / 11)
    assert values[10] == pytest.approx(1.0)
    assert values[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))
