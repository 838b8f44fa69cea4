"""PPO arithmetic against values worked out by hand on small fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from learner.config import PPOConfig
from learner.gae import turn_gae
from learner.group_advantage import group_advantages
from learner.logprobs import token_logprobs_and_entropy
from learner.ppo import PPOInputs, ppo_loss


def test_turn_gae_matches_hand_computation() -> None:
    # episode 0: three verification steps, the last one solves it; episode 1: solved at once
    rewards = torch.tensor([-1.0, -2.0, 5.0, 5.0])
    values = torch.tensor([0.5, 0.2, 1.0, 0.3])
    dones = torch.tensor([False, False, True, True])
    advantages, returns = turn_gae(rewards, values, dones, [0, 0, 0, 1], gamma=0.9, lam=0.95)
    a2 = 5.0 - 1.0
    a1 = (-2.0 + 0.9 * 1.0 - 0.2) + 0.9 * 0.95 * a2
    a0 = (-1.0 + 0.9 * 0.2 - 0.5) + 0.9 * 0.95 * a1
    expected = torch.tensor([a0, a1, a2, 5.0 - 0.3])
    assert torch.allclose(advantages, expected, atol=1e-6)
    assert torch.allclose(returns, expected + values, atol=1e-6)
    assert advantages[0].item() == pytest.approx(0.4926, abs=1e-4)


def test_turn_gae_never_bootstraps_across_episodes() -> None:
    # the first episode's last row is not marked done: it still ends there
    rewards = torch.tensor([-1.0, 5.0])
    values = torch.tensor([0.0, 10.0])
    advantages, _ = turn_gae(rewards, values, torch.tensor([False, True]), [7, 8], 0.9, 0.95)
    assert advantages.tolist() == pytest.approx([-1.0, -5.0])


def test_group_advantages_compare_turns_of_one_instance_at_the_same_position() -> None:
    # instance A: episode a1 fails then solves, a2 solves at once, a3 fails twice;
    # instance B: one episode, nothing to compare it with
    episodes = ["a1", "a1", "a2", "a3", "a3", "b1"]
    instances = ["A", "A", "A", "A", "A", "B"]
    turn = [0, 1, 0, 0, 1, 0]
    rewards = torch.tensor([-1.0, 5.0, 5.0, -3.0, -1.0, 5.0])
    advantages, returns = group_advantages(rewards, episodes, instances, turn, gamma=0.9)
    g = [-1.0 + 0.9 * 5.0, 5.0, 5.0, -3.0 + 0.9 * -1.0, -1.0, 5.0]
    assert returns.tolist() == pytest.approx(g)
    first = (g[0] + g[2] + g[3]) / 3
    second = (g[1] + g[4]) / 2
    assert advantages.tolist() == pytest.approx(
        [g[0] - first, g[1] - second, g[2] - first, g[3] - first, g[4] - second, 0.0])
    assert advantages[2] > advantages[0] > 0 > advantages[3]  # at once beats later beats never


def test_logprobs_use_the_sampling_temperature() -> None:
    logits = torch.tensor([[0.0, math.log(2.0)]])
    logprob, entropy = token_logprobs_and_entropy(logits, torch.tensor([1]), temperature=0.5)
    # logits / 0.5 = [0, 2 ln 2] -> probabilities 1/5, 4/5
    assert logprob.item() == pytest.approx(math.log(0.8), abs=1e-6)
    assert entropy.item() == pytest.approx(-(0.2 * math.log(0.2) + 0.8 * math.log(0.8)), abs=1e-6)
    with pytest.raises(ValueError):
        token_logprobs_and_entropy(logits, torch.tensor([1]), temperature=0.0)


def _inputs(shift: tuple[float, ...] = (0.2, -0.05, 0.0), behaviour_gap=(0.0, 0.0, 0.0)) -> PPOInputs:
    old = torch.tensor([-1.0, -2.0, -0.5])
    new = (old + torch.tensor(shift)).requires_grad_(True)
    values = torch.tensor([0.5, -0.5], requires_grad=True)
    return PPOInputs(
        new_logprobs=new, entropy=torch.tensor([1.0, 2.0, 3.0]), values=values,
        old_logprobs=old, behaviour_logprobs=old - torch.tensor(behaviour_gap),
        old_values=torch.tensor([0.3, -0.45]), returns=torch.tensor([1.0, -1.0]),
        advantages=torch.tensor([1.0, -2.0]), token_turn=torch.tensor([0, 0, 1]),
        turn_weight=torch.tensor([1.0, 1.0]),
    )


def test_token_level_loss_matches_hand_computation() -> None:
    x = _inputs()
    loss, stats = ppo_loss(x, PPOConfig(), num_tokens=3, num_turns=2)
    # token 0: ratio e^0.2 > 1.1 is clipped; token 1: e^-0.05 is inside; token 2: ratio 1, A = -2
    policy = (-1.1 - math.exp(-0.05) + 2.0) / 3
    # turn 0: the value moved 0.2 from its old 0.3, clipped to 0.4 -> (0.4 - 1)^2 is the larger
    value = 0.5 * ((0.4 - 1.0) ** 2 + (-0.5 + 1.0) ** 2) / 2
    assert stats["policy_loss"].item() == pytest.approx(policy, abs=1e-6)
    assert stats["value_loss"].item() == pytest.approx(value, abs=1e-6)
    assert loss.item() == pytest.approx(policy + 0.5 * value, abs=1e-6)
    assert stats["clip_fraction"].item() == pytest.approx(1 / 3)
    assert stats["value_clip_fraction"].item() == pytest.approx(1 / 2)
    assert stats["entropy"].item() == pytest.approx(2.0)
    loss.backward()
    # the clipped token gets no gradient; the others get -A * ratio / N
    expected = torch.tensor([0.0, -math.exp(-0.05) / 3, 2.0 / 3])
    assert torch.allclose(x.new_logprobs.grad, expected, atol=1e-6)


def test_sequence_level_ratio_sums_token_log_ratios() -> None:
    loss, stats = ppo_loss(_inputs(), PPOConfig(ratio_level="sequence", value_coef=0.0), 3, 2)
    # turn 0: e^(0.2 - 0.05) = 1.16 is clipped at 1.1; turn 1: ratio 1 with A = -2
    assert stats["policy_loss"].item() == pytest.approx((-1.1 + 2.0) / 2, abs=1e-6)
    assert stats["clip_fraction"].item() == pytest.approx(0.5)


def test_entropy_bonus_and_reference_kl() -> None:
    x = _inputs()
    x.ref_logprobs = x.old_logprobs.clone()
    config = PPOConfig(entropy_coef=0.01, kl_coef=0.1, value_coef=0.0)
    loss, stats = ppo_loss(x, config, 3, 2)
    d = torch.tensor([-0.2, 0.05, 0.0])  # ref - new
    kl = (torch.exp(d) - d - 1).mean().item()
    assert stats["kl_ref"].item() == pytest.approx(kl, abs=1e-6)
    assert loss.item() == pytest.approx(stats["policy_loss"].item() - 0.01 * 2.0 + 0.1 * kl, abs=1e-6)


@pytest.mark.parametrize("correction, weights", [("truncated_is", (2.0, 1.0, 0.5)),
                                                 ("decoupled", (0.0, 1.0, 0.5))])
def test_stale_samples_are_reweighted(correction: str, weights: tuple[float, ...]) -> None:
    # pi_old / pi_behaviour = 3, 1, 0.5 for the three tokens; the cap is 2
    x = _inputs(behaviour_gap=(math.log(3.0), 0.0, math.log(0.5)))
    config = PPOConfig(max_staleness=1, stale_correction=correction, is_cap=2.0)
    _, stats = ppo_loss(x, config, 3, 2)
    per_token = (-1.1, -math.exp(-0.05), 2.0)
    expected = sum(w * p for w, p in zip(weights, per_token, strict=True)) / 3
    assert stats["policy_loss"].item() == pytest.approx(expected, abs=1e-6)
    assert stats["stale_dropped"].item() == pytest.approx(1 / 3)


def test_on_policy_applies_no_stale_weight() -> None:
    x = _inputs(behaviour_gap=(math.log(3.0), 0.0, 0.0))
    _, stats = ppo_loss(x, PPOConfig(max_staleness=0), 3, 2)
    assert stats["policy_loss"].item() == pytest.approx((-1.1 - math.exp(-0.05) + 2.0) / 3, abs=1e-6)
    assert "stale_weight" not in stats


def test_padding_turns_contribute_nothing() -> None:
    x = _inputs()
    x.turn_weight = torch.tensor([1.0, 0.0])
    _, stats = ppo_loss(x, PPOConfig(value_clip=None), num_tokens=2, num_turns=1)
    assert stats["policy_loss"].item() == pytest.approx((-1.1 - math.exp(-0.05)) / 2, abs=1e-6)
    assert stats["value_loss"].item() == pytest.approx(0.5 * 0.25, abs=1e-6)
