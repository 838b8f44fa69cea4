"""Where episodes live while they are played: in-process, or in a pool of Ray actors.

Both clients offer the same three batch calls (start, submit, release), and a rollout worker
makes one call per engine step for all of its episodes; the pool turns that into one call per
actor. Environments and verifiers are plain Python (envs/, verifier/) and know nothing of Ray.

The pool keeps each episode's spec and answers so far. When an env actor dies, Ray restarts
it and the pool replays its episodes there (same spec and answers give the same state), so
no episode in flight is lost or counted twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import ray
from pydantic import BaseModel, ConfigDict
from ray.exceptions import RayActorError

from contracts.episode import Episode, Observation, Transition
from contracts.episode_spec import EpisodeSpec
from contracts.telemetry import MetricsConfig, mark_actor_started, start_metrics_endpoint
from envs.registry import make_episode
from rollout_workers import telemetry
from rollout_workers.ray_runtime import actor_runtime_env

T = TypeVar("T")
ActorCall = Callable[[Any, list[Any]], Any]
"""(env actor, its share of a batch) -> the ref of one of the actor's method calls."""

RECOVERY_SECONDS = 120.0
"""How long the pool waits for a dead env actor to come back before giving up."""


class EpisodeStart(BaseModel):
    """A started episode: what it is, and its first observation."""

    model_config = ConfigDict(frozen=True)

    episode_id: str
    task: str
    variant: str
    observation: Observation


class Answer(BaseModel):
    """A model answer, as text, for one episode in play."""

    model_config = ConfigDict(frozen=True)

    episode_id: str
    text: str


class EnvClient(Protocol):
    """The batch interface a rollout worker plays episodes through."""

    def start(self, specs: Sequence[EpisodeSpec]) -> list[EpisodeStart]: ...

    def submit(self, answers: Sequence[Answer]) -> list[Transition]: ...

    def release(self, episode_ids: Sequence[str]) -> None: ...

    def endpoints(self) -> list[str]: ...

    def restarts_seen(self) -> int: ...

    def close(self) -> None: ...


EpisodeFactory = Callable[[EpisodeSpec], Episode]


def registered_episode(spec: EpisodeSpec) -> Episode:
    """The registered task's episode for `spec` (envs.registry)."""
    return make_episode(spec.task, spec.seed)


class UnknownEpisode(KeyError):
    """An answer for an episode this table does not hold: on an env actor, the sign that Ray
    restarted it between two calls (its episodes died with the old process)."""


class EpisodeTable:
    """Episodes in play, by id: the in-process client, and the body of each env actor."""

    def __init__(self, factory: EpisodeFactory = registered_episode) -> None:
        self._factory = factory
        self._episodes: dict[str, Episode] = {}

    def start(self, specs: Sequence[EpisodeSpec]) -> list[EpisodeStart]:
        return [self._start(spec) for spec in specs]

    def submit(self, answers: Sequence[Answer]) -> list[Transition]:
        transitions = []
        for answer in answers:
            episode = self._episodes.get(answer.episode_id)
            if episode is None:
                raise UnknownEpisode(f"episode {answer.episode_id!r} is not in play here")
            began = time.perf_counter()
            transition = episode.submit(answer.text)
            telemetry.record_env_step(episode.task, episode.variant, time.perf_counter() - began)
            if transition.done:
                del self._episodes[answer.episode_id]
            transitions.append(transition)
        return transitions

    def release(self, episode_ids: Sequence[str]) -> None:
        for episode_id in episode_ids:
            self._episodes.pop(episode_id, None)

    def restore(self, played: Sequence[tuple[EpisodeSpec, list[str]]]) -> None:
        """Rebuild episodes from their specs and the answers already submitted (replacing
        any copy held here, so restoring twice is harmless)."""
        for spec, answers in played:
            self._start(spec)
            for text in answers:
                self._episodes[spec.episode_id].submit(text)

    def in_play(self) -> int:
        return len(self._episodes)

    def endpoints(self) -> list[str]:
        """None of its own: in-process, verification is measured by the worker's endpoint."""
        return []

    def restarts_seen(self) -> int:
        """None: in-process episodes live and die with the rollout worker."""
        return 0

    def close(self) -> None:
        self._episodes.clear()

    def _start(self, spec: EpisodeSpec) -> EpisodeStart:
        """Start (or, when a call is retried, start afresh) the episode of `spec`."""
        episode = self._factory(spec)
        self._episodes[spec.episode_id] = episode
        return EpisodeStart(episode_id=spec.episode_id, task=episode.task,
                            variant=episode.variant, observation=episode.observe())


class EnvActor(EpisodeTable):
    """The body of an env actor: an episode table that serves its own metrics endpoint."""

    def __init__(self, name: str, metrics: MetricsConfig) -> None:
        super().__init__()
        self.address = start_metrics_endpoint(metrics)
        mark_actor_started("env", name)

    def endpoint(self) -> str | None:
        return self.address

    def pid(self) -> int:
        return os.getpid()


class EnvPool:
    """Episodes spread over `size` env actors; one remote call per actor per batch call."""

    def __init__(self, size: int, cpus_per_actor: float = 0.25, name: str = "env",
                 metrics: MetricsConfig | None = None) -> None:
        if size < 1:
            raise ValueError("an env pool needs at least one actor")
        actor_class = ray.remote(EnvActor).options(
            num_cpus=cpus_per_actor, max_restarts=-1, runtime_env=actor_runtime_env()
        )
        metrics = metrics or MetricsConfig()
        self._actors = [actor_class.remote(f"{name}-{k}", metrics) for k in range(size)]
        self._home: dict[str, int] = {}
        self._played: dict[str, tuple[EpisodeSpec, list[str]]] = {}
        self._pids: list[int | None] = [None] * size
        self._restarts = 0
        self.restarts_seen()  # each actor's first process, to tell a restart by

    def start(self, specs: Sequence[EpisodeSpec]) -> list[EpisodeStart]:
        load = [0] * len(self._actors)
        for home in self._home.values():
            load[home] += 1
        homes = []
        for _ in specs:
            homes.append(load.index(min(load)))
            load[homes[-1]] += 1
        starts = self._scatter(lambda actor, share: actor.start.remote(share), list(specs), homes)
        for spec, home in zip(specs, homes, strict=True):
            self._home[spec.episode_id] = home
            self._played[spec.episode_id] = (spec, [])
        return starts

    def submit(self, answers: Sequence[Answer]) -> list[Transition]:
        homes = [self._home[answer.episode_id] for answer in answers]
        transitions = self._scatter(lambda actor, share: actor.submit.remote(share), list(answers), homes)
        for answer, transition in zip(answers, transitions, strict=True):
            if transition.done:
                self._forget(answer.episode_id)
            else:
                self._played[answer.episode_id][1].append(answer.text)
        return transitions

    def release(self, episode_ids: Sequence[str]) -> None:
        by_actor = _group(list(episode_ids), [self._home[i] for i in episode_ids])
        for ref in [self._actors[k].release.remote(ids) for k, ids in by_actor.items()]:
            try:
                ray.get(ref)
            except RayActorError:
                pass  # a restarted actor holds none of them; the next call restores the rest
        for episode_id in episode_ids:
            self._forget(episode_id)

    def restarts_seen(self) -> int:
        """Env actors Ray restarted so far, seen as a new process behind the same actor
        (whether or not it held episodes when it died)."""
        for k, ref in enumerate([actor.pid.remote() for actor in self._actors]):
            try:
                pid = ray.get(ref)
            except RayActorError:
                continue  # restarting now: counted next time
            self._restarts += self._pids[k] is not None and pid != self._pids[k]
            self._pids[k] = pid
        return self._restarts

    def endpoints(self) -> list[str]:
        """The env actors' metrics endpoints (host:port), for Prometheus' target list (an actor
        restarting now is listed next time)."""
        found = []
        for ref in [actor.endpoint.remote() for actor in self._actors]:
            try:
                found.append(ray.get(ref))
            except RayActorError:
                pass
        return [a for a in found if a]

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors.clear()

    def _forget(self, episode_id: str) -> None:
        del self._home[episode_id]
        del self._played[episode_id]

    def _scatter(self, call: ActorCall, items: list[T], homes: list[int]) -> list[Any]:
        """`call(actor, share)` once per actor with its share of `items` (it returns the ref
        of one of the actor's method calls); results in `items` order."""
        shares = _group(items, homes)
        refs = {k: call(self._actors[k], share) for k, share in shares.items()}
        results = {k: self._result(k, ref, call, shares[k]) for k, ref in refs.items()}
        cursor = dict.fromkeys(shares, 0)
        ordered = []
        for home in homes:
            ordered.append(results[home][cursor[home]])
            cursor[home] += 1
        return ordered

    def _result(self, k: int, ref: Any, call: ActorCall, share: list[Any]) -> Any:
        """The call's result; if the actor died (during the call, or before it and was
        restarted empty), replay its episodes on the restarted actor and make the call again."""
        try:
            return ray.get(ref)
        except (RayActorError, UnknownEpisode):
            pass
        played = [self._played[i] for i, home in self._home.items() if home == k]
        actor = self._actors[k]
        deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            try:
                ray.get(actor.restore.remote(played))
                return ray.get(call(actor, share))
            except RayActorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _group(items: list[T], homes: list[int]) -> dict[int, list[T]]:
    groups: dict[int, list[T]] = {}
    for item, home in zip(items, homes, strict=True):
        groups.setdefault(home, []).append(item)
    return groups


def make_env_client(actors: int, cpus_per_actor: float = 0.25, name: str = "env",
                    metrics: MetricsConfig | None = None) -> EnvClient:
    """An in-process table when `actors` is 0, otherwise a pool of that many env actors
    (named '<name>-<k>' in their metrics)."""
    if actors == 0:
        return EpisodeTable()
    return EnvPool(actors, cpus_per_actor, name, metrics)
