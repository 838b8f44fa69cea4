"""Metrics every Revisor process exports, and those of the rollout side (workers, env actors).

Each Ray actor is its own process, so each one serves its own Prometheus endpoint with
`prometheus_client` and the driver lists the endpoints in a file Prometheus discovers
(`cluster.telemetry.write_prometheus_targets`). This keeps metrics independent of Ray's
dashboard agent (absent in tests and laptops started with `include_dashboard=False`) and makes
every series carry exactly the labels Revisor gives it: task, variant, worker, phase (episodes
played for training or for evaluation, never mixed) and, for per-attempt quality, turn (the
0-based verification step, as in the trajectory schema).

Metrics are declared once, in a `Catalogue`, so the list of exported names that the dashboard
test checks against is the list the code registers, never a copy of it. A process serves the
catalogue of its role only (`mark_actor_started`): the driver imports the learner's modules,
and without this it would export the learner's unlabelled gauges as zeros beside the real ones.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram, Summary
from pydantic import BaseModel, ConfigDict, Field

MetricKind = Literal["counter", "gauge", "histogram", "summary"]

SERIES_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}
"""The sample names Prometheus stores for each kind of metric family."""

ROLES = ("driver", "rollout", "learner", "env")
"""Kinds of Revisor process; each is a Prometheus job of its own."""


class MetricsConfig(BaseModel):
    """Where a process serves its metrics. The default is loopback on a free port: safe on a
    shared machine, and the only choice that works with several actors on one node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    """Interface to bind. On a multi-node cluster use "0.0.0.0" so that Prometheus on the head
    node can scrape workers; the address advertised is then the node's IP."""
    port: int = Field(0, ge=0, le=65535)
    """0 picks a free port per process; a fixed port suits a single process (the driver)."""


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family: what the dashboards may query."""

    name: str
    """Family name as declared (a counter's ends in `_total`)."""
    kind: MetricKind
    labels: tuple[str, ...]
    help: str

    def series(self) -> tuple[str, ...]:
        """The names of the samples Prometheus stores for this family."""
        base = self.name.removesuffix("_total") if self.kind == "counter" else self.name
        return tuple(base + suffix for suffix in SERIES_SUFFIXES[self.kind])


@dataclass(eq=False)
class Catalogue:
    """Declares the metrics of one role; they are exported once the catalogue is served.

    The metrics live outside the process-wide registry until `serve()` adds the catalogue to
    it (as one collector), so importing a module never exports its metrics by itself.
    """

    role: str
    specs: list[MetricSpec] = field(default_factory=list)
    metrics: list[Any] = field(default_factory=list)
    served: bool = False

    def __post_init__(self) -> None:
        _check_role(self.role)
        CATALOGUES.setdefault(self.role, []).append(self)
        if self.role in SERVED_ROLES:  # the process declared its role before this import
            self.serve()

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return self._keep(name, "counter", labels, doc, Counter(name, doc, labels, registry=None))

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return self._keep(name, "gauge", labels, doc, Gauge(name, doc, labels, registry=None))

    def histogram(self, name: str, doc: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS) -> Histogram:
        return self._keep(name, "histogram", labels, doc,
                          Histogram(name, doc, labels, registry=None, buckets=buckets))

    def summary(self, name: str, doc: str, labels: Sequence[str] = ()) -> Summary:
        return self._keep(name, "summary", labels, doc, Summary(name, doc, labels, registry=None))

    def serve(self) -> None:
        """Export this catalogue from this process (idempotent)."""
        if not self.served:
            prometheus_client.REGISTRY.register(self)
            self.served = True

    def describe(self) -> Iterator[Any]:
        for metric in self.metrics:
            yield from metric.describe()

    def collect(self) -> Iterator[Any]:
        for metric in self.metrics:
            yield from metric.collect()

    def _keep(self, name: str, kind: MetricKind, labels: Sequence[str], doc: str,
              metric: Any) -> Any:
        if not name.startswith("revisor_"):
            raise ValueError(f"Revisor metric {name!r} must start with 'revisor_'")
        self.specs.append(MetricSpec(name, kind, tuple(labels), doc))
        self.metrics.append(metric)
        return metric


CATALOGUES: dict[str, list[Catalogue]] = {}
"""Every declared catalogue, by the role whose processes serve it."""
SERVED_ROLES: set[str] = set()
"""The roles this process has declared; catalogues imported later are served at once."""


def serve_role(role: str) -> None:
    """Export the metrics of `role`, now and when its module is imported later, and the
    rollout side's, which every process may record (they all carry labels, so they show only
    once recorded)."""
    _check_role(role)
    SERVED_ROLES.update((role, "rollout"))
    for catalogue in [*CATALOGUES.get(role, []), *CATALOGUES.get("rollout", [])]:
        catalogue.serve()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown Revisor role {role!r}; expected one of {ROLES}")


# --- the endpoint ---------------------------------------------------------------------------

_endpoint: str | None = None
_endpoint_lock = threading.Lock()


def start_metrics_endpoint(config: MetricsConfig | None = None, **settings: object) -> str | None:
    """Serve this process's metrics over HTTP once; returns the address to scrape ("host:port").

    Idempotent per process: actors may call it from every constructor and restart path and
    always get the same address (the first call's settings decide where it listens).
    `settings` override fields of `config` (e.g. `port=9100`). Returns None when metrics are
    disabled.
    """
    global _endpoint
    config = MetricsConfig.model_validate({**(config or MetricsConfig()).model_dump(), **settings})
    if not config.enabled:
        return None
    with _endpoint_lock:
        if _endpoint is None:
            prometheus_client.disable_created_metrics()
            server, _ = prometheus_client.start_http_server(config.port, addr=config.host)
            _endpoint = advertised_address(config.host, server.server_port)
        return _endpoint


def advertised_address(host: str, port: int) -> str:
    """The address others reach a server on: a wildcard bind is reached at the node's IP."""
    if host in ("", "0.0.0.0", "::"):
        host = _node_ip()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _node_ip() -> str:
    try:
        import ray.util

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray: the name this host resolves to
        return socket.gethostbyname(socket.gethostname())


# --- the rollout catalogue ------------------------------------------------------------------

CATALOGUE = Catalogue("rollout")
PHASES = ("train", "eval")
"""Why an episode was played: to train on (sampled, any policy lag) or to evaluate (fixed seeds,
greedy). Evaluation episodes get series of their own so they never move training curves."""
EPISODE = ("task", "variant", "worker", "phase")
TURN = (*EPISODE, "turn")
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TURN_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
LAG_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64)

ACTOR_START_TIME = CATALOGUE.gauge(
    "revisor_actor_start_time_seconds",
    "Unix time the process started; a change means the actor was restarted.", ("role", "worker"))
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


def mark_actor_started(role: str, worker: str) -> None:
    """Declare this process's role: serve its metrics, and record its start (Prometheus sees a
    restart as a change of the value)."""
    serve_role(role)
    ACTOR_START_TIME.labels(role, worker).set(time.time())


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
