"""The metrics of the rollout side (workers, env actors) and the helpers that record them.

They are declared in `telemetry.metrics.CATALOGUE`, the catalogue every process serves (its
series carry labels, so they show only once recorded); the machinery, the endpoint and the
actor start time are telemetry.metrics's.
"""

from __future__ import annotations

from collections.abc import Sequence

from telemetry.metrics import CATALOGUE, SECONDS_BUCKETS, MetricSpec

# --- the rollout catalogue ------------------------------------------------------------------

PHASES = ("train", "eval")
"""Why an episode was played: to train on (sampled, any policy lag) or to evaluate (fixed seeds,
greedy). Evaluation episodes get series of their own so they never move training curves."""
EPISODE = ("task", "variant", "worker", "phase")
TURN = (*EPISODE, "turn")
TURN_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
LAG_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64)

EPISODES = CATALOGUE.counter(
    "revisor_rollout_episodes_total", "Episodes finished by a rollout worker.", EPISODE)
EPISODE_SUCCESSES = CATALOGUE.counter(
    "revisor_rollout_episode_successes_total", "Episodes that ended solved.", EPISODE)
EPISODE_TURNS = CATALOGUE.histogram(
    "revisor_rollout_episode_turns", "Verification steps an episode took.", EPISODE, TURN_BUCKETS)
TURN_REWARD = CATALOGUE.summary(
    "revisor_rollout_turn_reward",
    "Reward of each verification step; _sum/_count is the mean reward at that turn.", TURN)
TURN_SUCCESSES = CATALOGUE.counter(
    "revisor_rollout_turn_successes_total",
    "Episodes solved at this turn; divided by the turn's reward count it is the success rate "
    "of that attempt.", TURN)
TURN_OUTCOMES = CATALOGUE.counter(
    "revisor_rollout_turn_outcomes_total",
    "Verifier outcomes (success, illegal, wrong_value, ...) of every verification step.",
    (*EPISODE, "outcome"))
GENERATED_TOKENS = CATALOGUE.counter(
    "revisor_rollout_generated_tokens_total", "Tokens sampled by the engine.", EPISODE)
PROMPT_TOKENS = CATALOGUE.counter(
    "revisor_rollout_prompt_tokens_total", "Prompt tokens the engine read.", EPISODE)
POLICY_LAG = CATALOGUE.histogram(
    "revisor_rollout_policy_lag",
    "Versions between the oldest policy that played a training episode and the one the worker "
    "serves when the episode ends.", ("worker",), LAG_BUCKETS)
POLICY_VERSION = CATALOGUE.gauge(
    "revisor_rollout_policy_version", "Policy version the worker's engine serves.", ("worker",))
EPISODES_IN_FLIGHT = CATALOGUE.gauge(
    "revisor_rollout_episodes_in_flight", "Episodes a worker is playing at once.", ("worker",))
GENERATE_SECONDS = CATALOGUE.histogram(
    "revisor_rollout_generate_seconds", "Wall time of one batched engine call.", ("worker",),
    SECONDS_BUCKETS)
GENERATE_SEQUENCES = CATALOGUE.counter(
    "revisor_rollout_generate_sequences_total", "Sequences generated (one per live episode per "
    "engine call).", ("worker",))
WEIGHT_SYNC_SECONDS = CATALOGUE.histogram(
    "revisor_weight_sync_seconds", "Time a worker took to load a new policy version.",
    ("worker",), SECONDS_BUCKETS)
WEIGHT_SYNC_BYTES = CATALOGUE.counter(
    "revisor_weight_sync_bytes_total", "Bytes of weights a worker loaded.", ("worker",))
ENV_STEP_SECONDS = CATALOGUE.histogram(
    "revisor_env_step_seconds", "Time an env actor took to verify one answer.",
    ("task", "variant"), SECONDS_BUCKETS)


def catalogue() -> list[MetricSpec]:
    """Every metric the rollout side (and any process, for the actor start time) exports."""
    return list(CATALOGUE.specs)


def record_episode(task: str, variant: str, worker: str, turn_rewards: Sequence[float], *,
                   success: bool, generated_tokens: int, prompt_tokens: int = 0,
                   policy_lag: int = 0, outcomes: Sequence[str] = (),
                   phase: str = "train") -> None:
    """Everything a finished episode tells the dashboards, in one call.

    `turn_rewards[t]` is the reward of verification step t; a successful episode is solved at
    its last turn. `outcomes` (optional) are the verifier's outcome names per turn. Policy lag
    is a property of training data only: evaluation episodes do not add to it.
    """
    if not turn_rewards:
        raise ValueError("a finished episode has at least one turn")
    if phase not in PHASES:
        raise ValueError(f"unknown episode phase {phase!r}; expected one of {PHASES}")
    labels = (task, variant, worker, phase)
    last = len(turn_rewards) - 1
    for turn, reward in enumerate(turn_rewards):
        TURN_REWARD.labels(*labels, str(turn)).observe(reward)
        # inc(0) still creates the series: a variant never solved shows a rate of 0, not no data
        TURN_SUCCESSES.labels(*labels, str(turn)).inc(int(success and turn == last))
    for outcome in outcomes:
        TURN_OUTCOMES.labels(*labels, outcome).inc()
    EPISODES.labels(*labels).inc()
    EPISODE_SUCCESSES.labels(*labels).inc(int(success))
    EPISODE_TURNS.labels(*labels).observe(len(turn_rewards))
    GENERATED_TOKENS.labels(*labels).inc(generated_tokens)
    PROMPT_TOKENS.labels(*labels).inc(prompt_tokens)
    if phase == "train":
        POLICY_LAG.labels(worker).observe(policy_lag)


def record_generate(worker: str, seconds: float, sequences: int) -> None:
    """One batched engine call: its latency and how many episodes it advanced."""
    GENERATE_SECONDS.labels(worker).observe(seconds)
    GENERATE_SEQUENCES.labels(worker).inc(sequences)


def set_episodes_in_flight(worker: str, episodes: int) -> None:
    EPISODES_IN_FLIGHT.labels(worker).set(episodes)


def record_weight_sync(worker: str, version: int, seconds: float, nbytes: int) -> None:
    """A worker switched to policy `version`, loading `nbytes` of weights in `seconds`."""
    WEIGHT_SYNC_SECONDS.labels(worker).observe(seconds)
    WEIGHT_SYNC_BYTES.labels(worker).inc(nbytes)
    POLICY_VERSION.labels(worker).set(version)


def set_policy_version(worker: str, version: int) -> None:
    """The version a worker serves from the start (later versions come with weight syncs)."""
    POLICY_VERSION.labels(worker).set(version)


def record_env_step(task: str, variant: str, seconds: float) -> None:
    """One verification by an env actor (render feedback, check the answer)."""
    ENV_STEP_SECONDS.labels(task, variant).observe(seconds)
