"""The learner's metrics: step time, tokens trained, policy version, PPO and SFT statistics.

Statistics from the trainers are already averaged over all DeepSpeed ranks, so only rank 0
serves an endpoint and records: a gauge served by every rank would show one real value and
several zeros. The recording helpers take the trainers' own messages (contracts.learner_messages: PPO's
update stats, SFT's step stats) or mappings of their fields, so instrumenting a trainer is
one call after each step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.learner_messages import PACK_FALLBACK_REASONS, SFTStepStats, UpdateStats
from telemetry.metrics import SECONDS_BUCKETS, Catalogue, MetricSpec

CATALOGUE = Catalogue("learner")
STEP_BUCKETS = (*SECONDS_BUCKETS, 600, 1200)

STEP_SECONDS = CATALOGUE.histogram(
    "revisor_learner_step_seconds", "Wall time of one learner update (stage: ppo or sft).",
    ("stage",), STEP_BUCKETS)
TOKENS = CATALOGUE.counter(
    "revisor_learner_tokens_total", "Tokens (prompt and answer) trained on.", ("stage",))
EPISODES = CATALOGUE.counter(
    "revisor_learner_episodes_total", "Episodes consumed by PPO updates.")
POLICY_VERSION = CATALOGUE.gauge(
    "revisor_learner_policy_version", "Policy version of the learner's weights.")
LEARNING_RATE = CATALOGUE.gauge(
    "revisor_learner_learning_rate", "Learning rate of the last optimizer step.", ("stage",))
GRAD_NORM = CATALOGUE.gauge(
    "revisor_learner_grad_norm", "Pre-clip gradient norm of the last update.", ("stage",))
PPO_LOSS = CATALOGUE.gauge("revisor_ppo_loss", "Total PPO loss of the last update.")
PPO_POLICY_LOSS = CATALOGUE.gauge("revisor_ppo_policy_loss", "Clipped policy loss.")
PPO_VALUE_LOSS = CATALOGUE.gauge("revisor_ppo_value_loss", "Value-head loss.")
PPO_ENTROPY = CATALOGUE.gauge(
    "revisor_ppo_entropy", "Mean entropy of the policy on answer tokens; a fall warns of collapse.")
PPO_APPROX_KL = CATALOGUE.gauge(
    "revisor_ppo_approx_kl", "Approximate KL between the policy before and after the update.")
PPO_KL_REF = CATALOGUE.gauge(
    "revisor_ppo_kl_ref", "KL to the frozen reference (SFT) policy; 0 when no penalty is set.")
PPO_CLIP_FRACTION = CATALOGUE.gauge(
    "revisor_ppo_clip_fraction", "Share of ratios outside the clip range.")
PPO_VALUE_CLIP_FRACTION = CATALOGUE.gauge(
    "revisor_ppo_value_clip_fraction", "Share of value predictions clipped.")
PPO_STALENESS_MEAN = CATALOGUE.gauge(
    "revisor_ppo_staleness_mean", "Mean policy lag (learner version - sampling version) of the "
    "turns in the last batch.")
PPO_STALENESS_MAX = CATALOGUE.gauge(
    "revisor_ppo_staleness_max", "Largest policy lag of a turn in the last batch.")
PPO_STALE_WEIGHT = CATALOGUE.gauge(
    "revisor_ppo_stale_weight", "Mean importance weight applied to stale samples (1: none).")
PPO_STALE_DROPPED = CATALOGUE.gauge(
    "revisor_ppo_stale_dropped", "Share of samples the stale-sample correction dropped.")
PPO_BEHAVIOUR_GAP = CATALOGUE.gauge(
    "revisor_ppo_behaviour_logprob_gap", "Mean |learner - sampler| log-prob per answer token "
    "before the update: ~0 on-policy; grows with staleness or a sampler/learner mismatch.")
PPO_BEHAVIOUR_GAP_MAX = CATALOGUE.gauge(
    "revisor_ppo_behaviour_logprob_gap_max", "Largest |learner - sampler| log-prob of one "
    "answer token in the last batch.")
PPO_TOKENS_READ = CATALOGUE.gauge(
    "revisor_ppo_tokens_read_per_answer_token", "Tokens the learner forwards per answer token it "
    "trains on, last update (1 is the floor; per-turn rows re-read every earlier turn).")
PPO_PACKED_SHARE = CATALOGUE.gauge(
    "revisor_ppo_packed_share", "Share of the last update's episodes read as one sequence.")
PPO_PACK_FALLBACK = CATALOGUE.counter(
    "revisor_ppo_pack_fallback_episodes_total", "Episodes read one row per turn instead of one "
    "sequence, by reason.", ("reason",))
for _reason in PACK_FALLBACK_REASONS:
    PPO_PACK_FALLBACK.labels(_reason)  # every reason from 0, so increase() sees the first ones
SFT_LOSS = CATALOGUE.gauge(
    "revisor_sft_loss", "Mean negative log-likelihood per answer token of the last SFT step.")
PUBLISH_SECONDS = CATALOGUE.histogram(
    "revisor_weight_publish_seconds", "Time to pack and publish one policy version.", (),
    SECONDS_BUCKETS)
PUBLISH_BYTES = CATALOGUE.counter(
    "revisor_weight_publish_bytes_total", "Bytes of weights published.")


def catalogue() -> list[MetricSpec]:
    """Every metric the learner exports."""
    return list(CATALOGUE.specs)


def record_ppo_update(stats: UpdateStats | Mapping[str, Any]) -> None:
    """One PPO update: the trainer's update stats, or a mapping of its fields."""
    s = UpdateStats.model_validate(stats)
    _record_step("ppo", s.seconds, s.tokens, s.lr, s.grad_norm)
    EPISODES.inc(s.episodes)
    POLICY_VERSION.set(s.policy_version)
    for gauge, value in ((PPO_LOSS, s.loss), (PPO_POLICY_LOSS, s.policy_loss),
                         (PPO_VALUE_LOSS, s.value_loss), (PPO_ENTROPY, s.entropy),
                         (PPO_APPROX_KL, s.approx_kl), (PPO_KL_REF, s.kl_ref),
                         (PPO_CLIP_FRACTION, s.clip_fraction),
                         (PPO_VALUE_CLIP_FRACTION, s.value_clip_fraction),
                         (PPO_STALENESS_MEAN, s.mean_staleness),
                         (PPO_STALENESS_MAX, s.max_staleness),
                         (PPO_STALE_WEIGHT, s.stale_weight), (PPO_STALE_DROPPED, s.stale_dropped),
                         (PPO_BEHAVIOUR_GAP, s.behaviour_logprob_gap),
                         (PPO_BEHAVIOUR_GAP_MAX, s.behaviour_logprob_gap_max),
                         (PPO_TOKENS_READ, s.tokens_read_per_answer_token),
                         (PPO_PACKED_SHARE, s.packed_share)):
        gauge.set(value)
    for reason, count in s.pack_fallback.items():
        PPO_PACK_FALLBACK.labels(reason).inc(count)


def record_sft_step(stats: SFTStepStats | Mapping[str, Any]) -> None:
    """One SFT optimizer step: the trainer's step stats, or a mapping of its fields."""
    s = SFTStepStats.model_validate(stats)
    _record_step("sft", s.seconds, s.tokens, s.lr, s.grad_norm)
    SFT_LOSS.set(s.loss)


def set_policy_version(version: int) -> None:
    """The version the learner starts from (a fresh run: 0; a resumed one: the checkpoint's)."""
    POLICY_VERSION.set(version)


def record_weight_publish(version: int, seconds: float, nbytes: int) -> None:
    """One packed, versioned publication of the policy for the rollout workers."""
    PUBLISH_SECONDS.observe(seconds)
    PUBLISH_BYTES.inc(nbytes)
    POLICY_VERSION.set(version)


def _record_step(stage: str, seconds: float, tokens: int, lr: float,
                 grad_norm: float | None) -> None:
    STEP_SECONDS.labels(stage).observe(seconds)
    TOKENS.labels(stage).inc(tokens)
    LEARNING_RATE.labels(stage).set(lr)
    if grad_norm is not None:
        GRAD_NORM.labels(stage).set(grad_norm)
