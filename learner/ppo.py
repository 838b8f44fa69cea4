"""The clipped PPO objective with turn advantages, value clipping, entropy and optional KL.

Every choice that the study's original code made implicitly is a field of `PPOConfig`, with the
reason to pick each value. Loss terms come out already divided by the *global* number of tokens
(or turns) of the minibatch, so summing them over micro-batches and ranks gives exactly the
full-batch mean: how the batch is split across ranks never changes the update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field


class PPOConfig(BaseModel):
    """PPO settings; defaults are the study's values at 11B unless a field says otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    advantage: Literal["gae", "group"] = "gae"
    """'gae': turn-level GAE with the value head as baseline (the study). 'group': each turn's
    return-to-go minus the mean of its group's at the same turn, the group being the episodes
    of one task instance (needs training.group_size >= 2; see learner.group_advantage). The
    value head is still trained, on the Monte-Carlo returns, but unused as a baseline."""
    gamma: float = Field(0.9, ge=0.0, le=1.0)
    """Discount between verification steps: a later success is worth less than an early one."""
    lam: float = Field(0.95, ge=0.0, le=1.0)
    """GAE lambda over verification steps; 1 gives Monte-Carlo returns, 0 one-step TD (unused by
    the 'group' advantage)."""
    clip_ratio: float = Field(0.1, gt=0.0)
    """PPO clip range for the policy ratio (the study: 0.1)."""
    value_clip: float | None = Field(0.1, gt=0.0)
    """Clip range of the value change around the old value (the study clips it like the ratio).
    None turns value clipping off, which helps when rewards are large relative to 0.1."""
    value_coef: float = Field(0.5, ge=0.0)
    """Weight of the value loss in the shared-backbone loss."""
    ppo_epochs: int = Field(4, ge=1)
    """Passes over each batch of trajectories."""
    num_minibatches: int = Field(4, ge=1)
    """Optimizer steps per epoch; each takes an equal share of the batch."""
    normalize_advantages: bool = True
    """Standardise turn advantages over the whole batch (all ranks), as the study does."""
    ratio_level: Literal["token", "sequence"] = "token"
    """'token': one ratio per answer token, each carrying its turn's advantage (standard PPO for
    LMs, low variance). 'sequence': one ratio per answer, exp of the summed token log-ratios, as
    the study's code did; use it to reproduce the study exactly. The study also weighted tokens
    before the answer field by 0.5 in that sum; Revisor does not, because the weighted sum is no
    longer the answer's log-probability and the ratio stops measuring a policy change."""
    temperature: float = Field(0.2, gt=0.0)
    """The rollout sampling temperature: log-probs are log_softmax(logits / temperature) so
    that they match the sampler's. In a job it is one setting with rollout.sampling.temperature
    (either fills the other; set apart, they are refused)."""
    entropy_coef: float = Field(0.0, ge=0.0)
    """Entropy bonus. The study computed no entropy; Revisor always measures it (a collapse
    warning) and adds a bonus only when this is > 0."""
    kl_coef: float = Field(0.0, ge=0.0)
    """KL penalty to a frozen reference model (the SFT init); 0 as in the study. A reference
    model is loaded only when this is > 0."""
    max_staleness: int = Field(0, ge=0)
    """How many policy versions a trajectory may lag behind the learner (set from the cluster's
    setting). 0 is synchronous on-policy PPO and applies no correction; above 0 the
    `stale_correction` reweights stale samples."""
    stale_correction: Literal["truncated_is", "decoupled"] = "truncated_is"
    """How stale samples are corrected, with w = pi_old / pi_behaviour (pi_old: this learner's
    policy at the start of the update, pi_behaviour: the sampler's). The ratio is always taken
    against pi_old, so clipping bounds the change of *this* update.
    'truncated_is': multiply the loss by min(w, is_cap) (bounded variance, slight bias).
    'decoupled': multiply by w but drop samples with w > is_cap (decoupled PPO with a cap;
    unbiased on the kept samples, fewer samples when the lag is large)."""
    is_cap: float = Field(2.0, gt=1.0)
    """Cap on the stale-sample weight w."""
    pack_episodes: bool = True
    """Read an episode whose turns extend each other (each prompt = the previous prompt + answer
    + feedback, checked on the ids) as one sequence, its last turn's: one forward gives every
    turn's log-probs and values, the loss stays per turn (learner.packing). False: one row per
    turn, each re-reading the dialogue so far."""

    @property
    def uses_stale_correction(self) -> bool:
        return self.max_staleness > 0


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
