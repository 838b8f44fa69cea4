"""The sequential-revision episode runner: many episodes, one engine call per turn of all.

Each engine call carries the next turn of every live episode. After it, every answer goes to
the environment in one batch call, each episode's dialogue grows by the answer and the
verifier's feedback (or restarts from a fresh prompt), finished episodes leave and new ones
from the seed source take their slots, so the engine's batch stays full.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from contracts.engine import Engine, Generation, GenerationRequest, SamplingSettings
from contracts.episode import Observation, Transition
from contracts.episode_spec import EpisodeSpec
from contracts.rollout_config import RolloutConfig
from contracts.rollout_messages import Answer
from contracts.trajectory import EpisodeRecord, TurnRecord
from model_inputs.dialogue import DialogueTokens
from rollout_workers.env_pool import EnvClient
from rollout_workers.episodes.seeds import take_specs

Decode = Callable[[list[int]], str]


@dataclass(slots=True)
class PlayCounters:
    """What a runner has done so far; the rollout worker reports these as its stats."""

    engine_calls: int = 0
    turns: int = 0
    episodes: int = 0
    successes: int = 0
    generated_tokens: int = 0
    engine_seconds: float = 0.0
    env_seconds: float = 0.0


@dataclass(slots=True)
class LiveEpisode:
    """An episode in play: its record so far and the prompt of its next turn."""

    record: EpisodeRecord
    prompt_ids: list[int]
    images: tuple[Any, ...]
    image_refs: tuple[str, ...]


class EpisodeRunner:
    """Plays episodes through an engine and an env client, turn by turn, all at once."""

    def __init__(self, engine: Engine, envs: EnvClient, dialogue: DialogueTokens,
                 decode: Decode, config: RolloutConfig) -> None:
        self.engine = engine
        self.envs = envs
        self.dialogue = dialogue
        self.decode = decode
        self.config = config
        self.live: dict[str, LiveEpisode] = {}
        self.counters = PlayCounters()

    def start(self, specs: list[EpisodeSpec]) -> None:
        """Put new episodes in play; their first turn comes with the next step."""
        seeds = {spec.episode_id: spec.seed for spec in specs}
        repeated = set(self.live).intersection(seeds)
        if repeated or len(seeds) < len(specs):
            raise ValueError(f"episode ids must be unique among episodes in play: {sorted(repeated)}")
        for start in self.envs.start(specs):
            record = EpisodeRecord(episode_id=start.episode_id, task=start.task,
                                   variant=start.variant, seed=seeds[start.episode_id])
            self.live[start.episode_id] = self._with_prompt(record, start.observation)
            if not self._fits(self.live[start.episode_id].prompt_ids):
                raise ValueError(f"episode {start.episode_id!r}: the first prompt alone does not "
                                 "fit max_dialogue_tokens with max_tokens to answer")

    def step(self) -> list[EpisodeRecord]:
        """Play one turn of every live episode; return the episodes that ended."""
        live = list(self.live.values())
        if not live:
            return []
        sampling = self._sampling()
        # One engine call for every live episode's next answer: batching across episodes is
        # where the rollout's speed comes from. Each turn has its own seed (reproducible runs).
        requests = [GenerationRequest(prompt_ids=e.prompt_ids, images=e.images,
                                      seed=_turn_seed(self.config.sampling.seed, e.record))
                    for e in live]
        began = time.perf_counter()
        generations = self.engine.generate(requests, sampling)
        generated = time.perf_counter()
        # The verifier sees text only; it parses the answer, never runs it.
        answers = [Answer(episode_id=e.record.episode_id, text=self.decode(g.token_ids))
                   for e, g in zip(live, generations, strict=True)]
        transitions = self.envs.submit(answers)
        self._count(generations, generated - began, time.perf_counter() - generated)
        # Record each turn with the exact ids and log-probs the engine sampled (what the learner
        # trains on), and extend the dialogue with the verifier's feedback for the next attempt.
        turns = zip(live, generations, transitions, strict=True)
        finished = [e for e, g, t in turns if self._advance(e, g, t)]
        cut_short = [e.record.episode_id for e in finished if e.record.turns[-1].out_of_context]
        if cut_short:
            self.envs.release(cut_short)
        for episode in finished:
            del self.live[episode.record.episode_id]
            self.counters.episodes += 1
            self.counters.successes += episode.record.success
        return [episode.record for episode in finished]

    def play(self, source: Any, max_episodes: int | None = None) -> Iterator[list[EpisodeRecord]]:
        """Keep `episodes_in_flight` episodes in play from `source` until it runs dry (or
        `max_episodes` have started); yield the episodes finished by each step."""
        started = 0
        while True:
            free = self.config.episodes_in_flight - len(self.live)
            if max_episodes is not None:
                free = min(free, max_episodes - started)
            specs = take_specs(source, free)
            self.start(specs)
            started += len(specs)
            if not self.live:
                return
            yield self.step()

    def _advance(self, episode: LiveEpisode, generation: Generation, transition: Transition) -> bool:
        """Record the turn and build the next prompt; True when the episode has ended."""
        turn = _turn(episode, generation, transition, self.dialogue.ends_turn(generation.token_ids))
        episode.record.turns.append(turn)
        if transition.done:
            return True
        if transition.restart:
            self._set_prompt(episode, transition.next)
        else:
            # The next prompt extends this one token for token (no re-tokenising of the
            # dialogue), so the learner's ids are the ids the engine saw.
            continuation = self.dialogue.continuation(generation.token_ids, transition.next.text)
            episode.prompt_ids = episode.prompt_ids + generation.token_ids + continuation
        if self._fits(episode.prompt_ids):
            return False
        turn.done = turn.out_of_context = True
        return True

    def _sampling(self) -> SamplingSettings:
        """The configured sampling; a seeded one moves its seed on with every engine call, so
        a run stays reproducible without two calls drawing the same random numbers."""
        sampling = self.config.sampling
        if sampling.seed is None:
            return sampling
        offset = self.counters.engine_calls * self.config.episodes_in_flight
        return sampling.model_copy(update={"seed": sampling.seed + offset})

    def _count(self, generations: list[Generation], engine_seconds: float, env_seconds: float) -> None:
        c = self.counters
        c.engine_calls += 1
        c.turns += len(generations)
        c.generated_tokens += sum(len(g.token_ids) for g in generations)
        c.engine_seconds += engine_seconds
        c.env_seconds += env_seconds

    def _with_prompt(self, record: EpisodeRecord, observation: Observation) -> LiveEpisode:
        episode = LiveEpisode(record=record, prompt_ids=[], images=(), image_refs=())
        self._set_prompt(episode, observation)
        return episode

    def _set_prompt(self, episode: LiveEpisode, observation: Observation) -> None:
        episode.prompt_ids = self.dialogue.opening(observation)
        episode.images = observation.images
        episode.image_refs = observation.image_refs

    def _fits(self, prompt_ids: list[int]) -> bool:
        limit = self.config.max_dialogue_tokens
        return limit is None or len(prompt_ids) + self.config.sampling.max_tokens <= limit


def _turn_seed(seed: int | None, record: EpisodeRecord) -> int | None:
    """The sampling seed of an episode's next turn: a function of the configured seed, the
    episode's id and the turn alone. An episode then samples the same answers whichever
    worker plays it, in whatever company, after however many engine calls: a resumed run, a
    rescaled fleet and the synchronous loop all draw the same samples (engines that seed
    per request; the others use the call's seed). The id, not the task seed: the episodes of
    a group play one task instance and must still sample different answers."""
    if seed is None:
        return None
    episode = zlib.crc32(record.episode_id.encode())
    return ((seed * 1_000_003 + episode) * 1009 + len(record.turns)) % 2**62


def _turn(episode: LiveEpisode, generation: Generation, transition: Transition,
          closed: bool) -> TurnRecord:
    verdict = transition.verdict
    return TurnRecord(
        prompt_ids=episode.prompt_ids,
        response_ids=list(generation.token_ids),
        response_logprobs=list(generation.logprobs),
        policy_version=generation.policy_version,
        truncated=not closed,
        reward=verdict.reward,
        done=transition.done,
        success=transition.success,
        outcome=verdict.outcome,
        feedback=verdict.feedback,
        parsed_answer=verdict.parsed_answer,
        recognition_ok=verdict.recognition_ok,
        restart=transition.restart,
        image_refs=episode.image_refs,
    )
