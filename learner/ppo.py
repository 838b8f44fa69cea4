"""The clipped PPO objective with turn advantages, value clipping, entropy and optional KL.

Every choice that the study's original code made implicitly is a field of `PPOConfig`, with the
reason to pick each value. Loss terms come out already divided by the *global* number of tokens
(or turns) of the minibatch, so summing them over micro-batches and ranks gives exactly the
full-batch mean: how the batch is split across ranks never changes the update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from learner.config import PPOConfig


@dataclass
class PPOInputs:
    """One micro-batch, flattened: N answer tokens of B turns."""

    new_logprobs: torch.Tensor  # (N,) with grad
    entropy: torch.Tensor  # (N,)
    values: torch.Tensor  # (B,) with grad
    old_logprobs: torch.Tensor  # (N,) this learner, start of the update
    behaviour_logprobs: torch.Tensor  # (N,) the sampler's
    old_values: torch.Tensor  # (B,)
    returns: torch.Tensor  # (B,)
    advantages: torch.Tensor  # (B,)
    token_turn: torch.Tensor  # (N,) long: the turn (0..B-1) of each token
    turn_weight: torch.Tensor  # (B,) 1, or 0 for padding turns that keep ranks in step
    ref_logprobs: torch.Tensor | None = None  # (N,) when a KL term is configured

    @property
    def token_weight(self) -> torch.Tensor:
        return self.turn_weight[self.token_turn]


def ppo_loss(
    x: PPOInputs, config: PPOConfig, num_tokens: float, num_turns: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total loss of one micro-batch and its statistics, both divided by the minibatch's
    global token / turn counts (so that sums over micro-batches and ranks are means)."""
    policy, stats = _policy_loss(x, config, num_tokens, num_turns)
    value, value_stats = _value_loss(x, config, num_turns)
    token_w = x.token_weight
    # Entropy is always measured (a collapsing policy shows here first); its bonus is 0 by
    # default, as in the study.
    entropy = (x.entropy * token_w).sum() / num_tokens
    loss = policy + config.value_coef * value - config.entropy_coef * entropy
    # Optional KL to a frozen reference (the study uses none): k3 is unbiased and never negative.
    if x.ref_logprobs is not None and config.kl_coef > 0:
        kl = (_k3(x.ref_logprobs - x.new_logprobs) * token_w).sum() / num_tokens
        loss = loss + config.kl_coef * kl
        stats["kl_ref"] = kl.detach()
    stats.update(value_stats, policy_loss=policy.detach(), value_loss=value.detach(),
                 entropy=entropy.detach(), loss=loss.detach())
    return loss, stats


def _policy_loss(
    x: PPOInputs, config: PPOConfig, num_tokens: float, num_turns: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    # The ratio is taken against the learner's own log-probs at the start of the update ("old"),
    # not the engine's: the two differ by numerics, and staleness is corrected separately below.
    log_ratio = x.new_logprobs - x.old_logprobs.detach()
    stale_log_w = (x.old_logprobs - x.behaviour_logprobs).detach()
    # Token level: every answer token is a sample with its turn's advantage. Turn level: one
    # ratio per answer (the sum of its tokens' log-ratios), as when the answer is one action.
    if config.ratio_level == "token":
        advantages, weight, norm = x.advantages[x.token_turn], x.token_weight, num_tokens
    else:
        log_ratio, stale_log_w = _per_turn(log_ratio, x), _per_turn(stale_log_w, x)
        advantages, weight, norm = x.advantages, x.turn_weight, num_turns
    # Clipped surrogate: the pessimistic (larger) of the two losses, so that moving the ratio
    # beyond 1 +- clip earns nothing more on the advantage's side.
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1.0 - config.clip_ratio, 1.0 + config.clip_ratio)
    per_sample = torch.maximum(-advantages * ratio, -advantages * clipped)
    stats: dict[str, torch.Tensor] = {}
    # Samples played with older weights (max_staleness > 0) are reweighted by how much likelier
    # the learner's start-of-update policy makes them than the policy that played them.
    if config.uses_stale_correction:
        stale_w, dropped = _stale_weight(stale_log_w, config)
        per_sample = per_sample * stale_w
        stats["stale_weight"] = (stale_w * weight).sum() / norm
        stats["stale_dropped"] = (dropped * weight).sum() / norm
    with torch.no_grad():
        outside = ((ratio - 1.0).abs() > config.clip_ratio).float()
        stats["clip_fraction"] = (outside * weight).sum() / norm
        stats["approx_kl"] = (_k3(log_ratio) * weight).sum() / norm
    return (per_sample * weight).sum() / norm, stats


def _value_loss(
    x: PPOInputs, config: PPOConfig, num_turns: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    # One value per turn (at its last prompt token), regressed on the GAE returns.
    error = (x.values - x.returns) ** 2
    stats: dict[str, torch.Tensor] = {}
    # Value clipping, as the study's PPO did: the new value may not win by leaving the old one
    # by more than value_clip; the worse of the two errors counts.
    if config.value_clip is not None:
        change = torch.clamp(x.values - x.old_values, -config.value_clip, config.value_clip)
        error_clipped = (x.old_values + change - x.returns) ** 2
        with torch.no_grad():
            used = (error_clipped > error).float()
            stats["value_clip_fraction"] = (used * x.turn_weight).sum() / num_turns
        error = torch.maximum(error, error_clipped)
    return 0.5 * (error * x.turn_weight).sum() / num_turns, stats


def _stale_weight(log_w: torch.Tensor, config: PPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.exp(log_w)
    over = (w > config.is_cap).float()
    if config.stale_correction == "truncated_is":
        return torch.clamp(w, max=config.is_cap), over
    return w * (1.0 - over), over


def _per_turn(per_token: torch.Tensor, x: PPOInputs) -> torch.Tensor:
    summed = torch.zeros(len(x.advantages), dtype=per_token.dtype, device=per_token.device)
    return summed.index_add(0, x.token_turn, per_token)


def _k3(log_ratio: torch.Tensor) -> torch.Tensor:
    """Schulman's low-variance, never-negative estimator of KL(p || q) from log_ratio = log q/p,
    x ~ p."""
    return torch.exp(log_ratio) - log_ratio - 1.0
