"""The RolloutWorker: one engine, many episodes in flight, finished episodes out as Arrow.

A worker pulls episode specs, plays them with the episode runner and ships finished
episodes as validated record batches, in one of two ways:
- `rollouts(source)`: a streaming generator (as a Ray actor): each batch goes to the object
  store when it is complete and the engine moves straight on while the caller fetches it;
- `serve(broker)`: work comes from the rollout broker and each batch is put back into its
  queue, one put in flight while the engine plays on, until `stop()`.
Weight updates, stats and stop run in a separate concurrency group, so they are served while
episodes play; the engine switches policy version between two engine steps, never inside one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import ray
from transformers import AutoTokenizer

from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.episode_spec import EpisodeSpec
from contracts.packed_weights import WeightPublication
from contracts.rollout_config import RolloutConfig
from contracts.rollout_messages import WorkerEndpoints, WorkerStats
from contracts.trajectory import BatchMeta, EpisodeRecord, to_record_batch
from model_inputs.dialogue import DialogueTokens
from model_inputs.vision import load_processor
from rollout_workers import telemetry
from rollout_workers.engine import make_engine
from rollout_workers.env_pool import make_env_client
from rollout_workers.episodes.runner import EpisodeRunner
from rollout_workers.episodes.seeds import BrokerSource, SeedList
from rollout_workers.faults import FaultyLoads
from rollout_workers.ray_runtime import actor_runtime_env
from rollout_workers.weight_loads import LoadRecorder
from telemetry.metrics import mark_actor_started, start_metrics_endpoint
from weight_transport import WeightSync, make_transport

CONTROL_GROUP = "control"
"""Concurrency group of the calls served while rollouts stream (stats, weight updates)."""
LIVENESS_GROUP = "liveness"
"""Concurrency group of `pulse` alone: answered even while a weight load waits for the engine."""


class RolloutWorker:
    """Owns one engine and plays episodes with it; usable in-process or as a Ray actor."""

    def __init__(self, worker_id: str, engine_config: RolloutEngineConfig, config: RolloutConfig,
                 weight_sync: WeightSync = "auto") -> None:
        self.worker_id = worker_id
        self.transport = make_transport(weight_sync, engine_config.tensor_parallel_size)
        """How this worker receives weights: one transport for its life (it may hold state,
        such as the NCCL group its engine is in); the fleet names the same as the learner's."""
        if config.max_dialogue_tokens is None:
            config = config.model_copy(update={"max_dialogue_tokens": engine_config.max_model_len})
        self.config = config
        self.engine = make_engine(engine_config)
        self.loads = LoadRecorder(self.engine)
        """What the transport loads into: the engine, each load fingerprinted."""
        fault = config.test_faults.get(worker_id)
        self._load_target = self.loads if fault is None else FaultyLoads(self.loads, fault)
        tokenizer = AutoTokenizer.from_pretrained(engine_config.model)
        dialogue = DialogueTokens.from_tokenizer(tokenizer, _chat_template_owner(tokenizer, engine_config))
        self.envs = make_env_client(config.env_actors, config.env_actor_cpus,
                                    f"{worker_id}-env", config.metrics)
        self.endpoint = start_metrics_endpoint(config.metrics)
        mark_actor_started("rollout", worker_id)
        telemetry.set_policy_version(worker_id, 0)

        def decode(ids: list[int]) -> str:
            return tokenizer.decode(ids, skip_special_tokens=True)

        self.runner = EpisodeRunner(self.engine, self.envs, dialogue, decode, config)
        self._engine_lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        """Set by shutdown(): the engine and env actors are gone."""
        self.policy_version = 0
        self.loaded: tuple[int, str | None, int] = (0, self.loads.fingerprint, 0)
        """(version, fingerprint, publication) of the weights loaded, set together: each batch
        carries it."""
        self._phase = "train"
        """What the episodes played now are for (telemetry.PHASES)."""
        self._batches = 0
        self._rollout_seconds = 0.0
        self._busy_since: float | None = None
        """When the engine step (or weight load) now running began; None between them."""

    def rollouts(self, source: Any, max_episodes: int | None = None) -> Iterator[pa.RecordBatch]:
        """Play episodes from `source` (anything with `take(n)`, or an actor offering it) and
        yield their turns in record batches of `episodes_per_batch` finished episodes."""
        size = self.config.episodes_per_batch
        began = time.perf_counter()
        pending: list[EpisodeRecord] = []
        try:
            for finished in self._play(source, max_episodes):
                pending += finished
                while len(pending) >= size:
                    yield self._ship(pending[:size])
                    pending = pending[size:]
            if pending:
                yield self._ship(pending)
        finally:
            self._rollout_seconds += time.perf_counter() - began

    def evaluate(self, specs: list[EpisodeSpec], sampling: SamplingSettings) -> list[pa.RecordBatch]:
        """Play exactly `specs` with `sampling` (greedy, for evaluation) and return their batches.

        Meant for the pauses between updates, while the worker is not serving. The episodes
        are counted under the "eval" phase, apart from the training rollouts."""
        config = self.runner.config
        self.runner.config = config.model_copy(update={"sampling": sampling})
        self._phase = "eval"
        try:
            return list(self.rollouts(SeedList(specs=specs)))
        finally:
            self.runner.config = config
            self._phase = "train"

    def serve(self, broker: Any, idle_seconds: float = 0.05) -> WorkerStats:
        """Play the episodes `broker` hands out and put each record batch into it, until
        `stop()`; then finish the episodes in play, ship them and return the stats.

        The broker offers take_work(worker, count, worker_version) and put(meta, refs), which
        waits while its queue is full; at most one put is on its way while the engine plays
        on. The batch's reference is owned by this worker (Ray 2.56+ cannot hand ownership
        over at put time): a broker that must keep batches past this worker's death copies
        them into the object store itself.
        """
        source = BrokerSource(broker, self.worker_id, lambda: self.policy_version,
                              self._stopping.is_set, lambda: self.loaded[2])
        shipping = None
        try:
            while not self._stopping.is_set():
                idle = True
                for batch in self.rollouts(source):
                    ref = ray.put(batch)
                    if shipping is not None:
                        ray.get(shipping)
                    shipping = broker.put.remote(self._stamped(BatchMeta.of(batch), source), [ref])
                    idle = False
                if idle:
                    time.sleep(idle_seconds)
        except Exception:
            if not self._closed.is_set():
                raise
            # shutdown() overtook a stop() still finishing its episodes: the job is over, and
            # the engine and env actors it closed end the play here, not as a failure.
        # Cleared on the way out, not on the way in: a stop() that overtook this call (they
        # run in different concurrency groups) must still end it.
        self._stopping.clear()
        if shipping is not None:
            ray.get(shipping)
        return self.stats()

    def _stamped(self, meta: BatchMeta, source: BrokerSource) -> BatchMeta:
        """`meta` with the version and fingerprint of the weights loaded now, and the oldest
        publication its episodes can have been played under (the one loaded when the first
        of them was taken)."""
        version, loaded, publication = self.loaded
        taken = source.taken_publication(meta.episode_ids)
        return meta.model_copy(update={
            "loaded_version": version, "loaded_fingerprint": loaded,
            "loaded_publication": publication if taken is None else taken})

    @ray.method(concurrency_group=CONTROL_GROUP)
    def stop(self) -> None:
        """Make `serve` take no new episodes, finish those in play and return."""
        self._stopping.set()

    def _play(self, source: Any, max_episodes: int | None) -> Iterator[list[EpisodeRecord]]:
        """The runner's steps, each under the engine lock (weight updates wait for it)."""
        steps = self.runner.play(source, max_episodes)
        counters = self.runner.counters
        while True:
            engine_seconds, turns = counters.engine_seconds, counters.turns
            with self._engine_lock, self._busy():
                finished = next(steps, None)
            if finished is None:
                return
            telemetry.record_generate(self.worker_id, counters.engine_seconds - engine_seconds,
                                      counters.turns - turns)
            telemetry.set_episodes_in_flight(self.worker_id, len(self.runner.live))
            for episode in finished:
                self._record(episode)
            yield finished

    def _record(self, episode: EpisodeRecord) -> None:
        turns = episode.turns
        telemetry.record_episode(
            episode.task, episode.variant, self.worker_id, [t.reward for t in turns],
            success=episode.success,
            generated_tokens=sum(len(t.response_ids) for t in turns),
            prompt_tokens=sum(len(t.prompt_ids) for t in turns),
            policy_lag=self.policy_version - min(t.policy_version for t in turns),
            outcomes=[t.outcome for t in turns], phase=self._phase,
        )

    def _ship(self, episodes: list[EpisodeRecord]) -> pa.RecordBatch:
        self._batches += 1
        return to_record_batch(episodes, self.worker_id)

    @ray.method(concurrency_group=CONTROL_GROUP)
    def receive_weights(self, publication: WeightPublication) -> int:
        """Load one publication through this worker's transport (weight_transport), between
        two engine steps, as policy `publication.version`; returns the version now served."""
        with self._loading(publication.version, publication.publication) as loaded:
            loaded.append(self.transport.receive(self._load_target, publication))
        return publication.version

    @ray.method(concurrency_group=CONTROL_GROUP)
    def update_weights(self, weights: Any, version: int) -> int:
        """Load `weights` (name -> tensor, or (name, tensor) pairs) as policy `version`,
        between two engine steps; returns the version now served."""
        pairs = list(weights.items() if isinstance(weights, dict) else weights)
        with self._loading(version) as loaded:
            self.loads.update_weights(pairs, version)
            loaded.append(sum(tensor.numel() * tensor.element_size() for _, tensor in pairs))
        return version

    @contextmanager
    def _loading(self, version: int, publication: int | None = None) -> Iterator[list[int]]:
        """A weight load, under the engine lock (generation waits for it) and timed; the
        body appends the bytes it loaded. `publication`: its WeightPublication.publication
        (None: a direct load, which keeps the count)."""
        loaded: list[int] = []
        with self._engine_lock, self._busy():
            began = time.perf_counter()
            yield loaded
            self.policy_version = version
            count = self.loaded[2] if publication is None else publication
            self.loaded = (version, self.loads.fingerprint, count)
        telemetry.record_weight_sync(self.worker_id, version, time.perf_counter() - began,
                                     sum(loaded))

    @ray.method(concurrency_group=LIVENESS_GROUP)
    def pulse(self) -> float:
        """Seconds the current engine step or weight load has been running (0 between them):
        the driver's liveness check (cluster.job.liveness). An unanswered pulse means a process
        that cannot run at all; a long answer, an engine stuck inside one step."""
        began = self._busy_since
        return 0.0 if began is None else time.monotonic() - began

    @contextmanager
    def _busy(self) -> Iterator[None]:
        self._busy_since = time.monotonic()
        try:
            yield
        finally:
            self._busy_since = None

    @ray.method(concurrency_group=CONTROL_GROUP)
    def metrics_endpoints(self) -> WorkerEndpoints:
        """This worker's and its env actors' metrics endpoints, by role, for Prometheus."""
        return WorkerEndpoints(rollout=[self.endpoint] if self.endpoint else [],
                               env=self.envs.endpoints())

    @ray.method(concurrency_group=CONTROL_GROUP)
    def stats(self) -> WorkerStats:
        c = self.runner.counters
        engine = self.engine.stats()
        return WorkerStats(
            worker_id=self.worker_id, pid=os.getpid(), episodes=c.episodes, successes=c.successes, turns=c.turns,
            engine_calls=c.engine_calls, generated_tokens=c.generated_tokens,
            record_batches=self._batches, rollout_seconds=self._rollout_seconds,
            engine_seconds=c.engine_seconds, env_seconds=c.env_seconds,
            policy_version=engine.policy_version, engine=engine,
            env_actor_restarts=self.envs.restarts_seen(),
        )

    @ray.method(concurrency_group=CONTROL_GROUP)
    def shutdown(self) -> None:
        """Release the engine (and its shared memory) and the env actors; call before killing."""
        self._closed.set()
        with self._engine_lock:
            self.engine.shutdown()
            self.envs.close()


def remote_worker(worker_id: str, engine_config: RolloutEngineConfig, config: RolloutConfig,
                  num_cpus: float = 1, weight_sync: WeightSync = "auto", **options: Any) -> Any:
    """Start a RolloutWorker actor (a handle) receiving weights `weight_sync`'s way; extra
    `options` go to Ray (resources, name)."""
    actor_class = ray.remote(concurrency_groups={CONTROL_GROUP: 1, LIVENESS_GROUP: 1})(RolloutWorker).options(
        num_cpus=num_cpus, runtime_env=actor_runtime_env(), **options
    )
    return actor_class.remote(worker_id, engine_config, config, weight_sync)


def _chat_template_owner(tokenizer: Any, engine_config: RolloutEngineConfig) -> Any:
    """The tokenizer when it carries the chat template; else the model's processor (vision
    models often keep the template there)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer
    return load_processor(engine_config.model)
