"""What the learner's rank actors return to the driver: one PPO update's statistics, one SFT
step's and a whole SFT run's, and the counters that make a run resumable.

One model per message, shared by the trainers that make them, the driver that logs them and
the telemetry that turns them into metrics, so a field renamed on one side cannot silently go
missing on the other. Pydantic only: importing them loads no torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

PACK_FALLBACK_REASONS = ("not_extending", "vision", "disabled")
"""Why an episode is read one row per turn instead of one sequence (learner.packing): a turn's
prompt is not the previous prompt + answer + more ids; a turn's images are not the first
images of the episode's last turn (whose image tensors the packed row reads); packing is off
(learner.ppo.pack_episodes)."""


class UpdateStats(BaseModel):
    """What one PPO update did, averaged over all ranks (token- or turn-weighted)."""

    model_config = ConfigDict(frozen=True)

    policy_version: int
    """The version the weights have after this update."""
    loss: float
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    value_clip_fraction: float = 0.0
    kl_ref: float = 0.0
    stale_weight: float = 1.0
    stale_dropped: float = 0.0
    grad_norm: float | None = None
    """Mean pre-clip gradient norm of the optimizer steps (None at ZeRO 0: not measured)."""
    lr: float
    optimizer_steps: int
    episodes: int
    turns: int
    tokens: int
    """Tokens (prompt + answer) in the batch."""
    mean_reward: float
    """Mean reward per turn."""
    success_rate: float
    """Share of episodes solved."""
    mean_staleness: float
    """Mean (learner version - version that sampled the turn)."""
    max_staleness: int
    behaviour_logprob_gap: float
    """Mean |learner log-prob - sampler log-prob| of the answer tokens before the update: ~0
    on-policy (sampler and learner agree), grows with staleness or a temperature mismatch."""
    behaviour_logprob_gap_max: float
    guard_gap: float = 0.0
    """The mean gap over the turns sampled by the learner's own current weights, the ones
    that must agree up to numerics: what learner.max_behaviour_gap bounds."""
    guard_gap_max: float = 0.0
    guard_turns: int = 0
    """Turns those two cover (0: none fresh, nothing to check)."""
    skipped: Literal["gap"] | None = None
    """'gap': the sync-divergence guard refused the batch (its guard gap exceeded
    learner.max_behaviour_gap): no optimiser step, the policy version unchanged."""
    seconds: float
    score_seconds: float = 0.0
    """Of `seconds`, the forwards for old log-probs, values and advantages before the epochs."""
    epoch_losses: list[float]
    """The full-batch loss of each epoch's minibatches, averaged: comparable across rank counts."""
    tokens_read_per_answer_token: float = 0.0
    """Tokens the learner forwards (without padding) per answer token it trains on, over the
    whole batch: 1.0 is the floor; one row per turn re-reads the dialogue for every turn."""
    packed_share: float = 0.0
    """Share of the batch's episodes read as one sequence (learner.packing)."""
    pack_fallback_not_extending: int = 0
    """Episodes not read as one sequence because a turn's prompt does not extend the previous
    prompt + answer (a restarted dialogue, re-tokenised ids): each run of turns that do
    extend is read as one sequence instead (a run of one turn as its own row)."""
    pack_fallback_vision: int = 0
    """Episodes read one row per turn because a turn's images are not the first images of the
    last turn's (other images, or in another order), or its image tensors disagree with the
    last turn's over its tokens: the packed row, which reads the last turn's, would show that
    turn other images than it was sampled with."""
    pack_fallback_disabled: int = 0
    """Episodes read one row per turn because learner.ppo.pack_episodes is off."""

    @property
    def pack_fallback(self) -> dict[str, int]:
        """Episodes read one row per turn, by reason (those with any)."""
        counts = {reason: getattr(self, f"pack_fallback_{reason}") for reason in PACK_FALLBACK_REASONS}
        return {reason: count for reason, count in counts.items() if count}


class SFTStepStats(BaseModel):
    """One optimizer step, over all ranks."""

    model_config = ConfigDict(frozen=True)

    step: int
    loss: float
    """Mean negative log-likelihood per answer token."""
    lr: float
    grad_norm: float | None
    tokens: int
    """Tokens through the model (prompts and answers, all ranks)."""
    answer_tokens: int
    """Tokens the loss covers."""
    seconds: float


class SFTResult(BaseModel):
    """A whole SFT run: every step, every evaluation, every checkpoint directory."""

    steps: list[SFTStepStats]
    evaluations: list[dict[str, Any]]
    checkpoints: list[str]


class LearnerState(BaseModel):
    """Counters that make a run resumable (everything except tensors)."""

    policy_version: int = 0
    """Updates applied so far; the version of the current weights."""
    updates: int = 0
    turns_trained: int = 0
    tokens_trained: int = 0
    extra: dict[str, Any] = {}
    """Whatever the driver needs back on resume (e.g. its episode sampler's position)."""
