"""The sequential-revision runner: attempt limits, feedback, exact prompt growth, restarts."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

import pytest

from contracts.engine import (
    Engine,
    EngineStats,
    Generation,
    GenerationRequest,
    SamplingSettings,
)
from contracts.engine_config import RolloutEngineConfig
from contracts.episode import Episode, Observation, Transition
from contracts.episode_spec import EpisodeSpec
from contracts.rollout_config import RolloutConfig
from contracts.tasks import GPConfig, VIRLConfig
from contracts.trajectory import EpisodeRecord, to_record_batch
from contracts.verdict import Verdict
from envs.registry import make_episode
from model_inputs.dialogue import DialogueTokens, TemplateError, template_pieces
from rollout_workers.engine import make_engine
from rollout_workers.env_pool import EpisodeTable
from rollout_workers.episodes.runner import EpisodeRunner
from rollout_workers.episodes.seeds import SeedList, SeedRange
from rollout_workers.tiny_models.tokenizer import build_tokenizer
from tests.fixtures_models import save_model

GP_L = GPConfig(max_attempts=3)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_tokenizer()


@pytest.fixture(scope="module")
def dialogue(tokenizer: Any) -> DialogueTokens:
    return DialogueTokens.from_tokenizer(tokenizer)


class ScriptedEngine(Engine):
    """A stand-in policy: answers each prompt with scripted text, tokenised, then EOS."""

    def __init__(self, tokenizer: Any, answer: Callable[[list[int]], str]) -> None:
        self.tokenizer = tokenizer
        self.answer = answer
        self.batch_sizes: list[int] = []

    def generate(self, requests: list[GenerationRequest], sampling: SamplingSettings) -> list[Generation]:
        self.batch_sizes.append(len(requests))
        return [self._generation(request.prompt_ids) for request in requests]

    def _generation(self, prompt_ids: list[int]) -> Generation:
        ids = self.tokenizer.encode(self.answer(prompt_ids), add_special_tokens=False)
        ids.append(self.tokenizer.eos_token_id)
        return Generation(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason="stop",
                          policy_version=0)

    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        raise NotImplementedError

    def stats(self) -> EngineStats:
        return EngineStats()

    def shutdown(self) -> None:
        pass


def play_all(engine: Engine, dialogue: DialogueTokens, tokenizer: Any, source: Any,
             table: EpisodeTable | None = None, **settings: Any) -> tuple[list[EpisodeRecord], EpisodeRunner]:
    config = RolloutConfig(**settings)
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    runner = EpisodeRunner(engine, table or EpisodeTable(), dialogue, decode, config)
    episodes = [episode for finished in runner.play(source) for episode in finished]
    return episodes, runner


def test_incremental_prompt_equals_rendered_dialogue(tokenizer: Any, dialogue: DialogueTokens) -> None:
    """For the tiny models' tokenizer, ids built turn by turn equal the template's rendering."""
    prompt, answers, feedback = "Make 24 from 3, 8, 3 and 1.", ['{"formula": "3*8"}', "(3+1)*8-3-3"], \
        ["The formula is not legal: 7 is unused.", "Wrong value."]
    messages: list[dict[str, str]] = [{"role": "user", "content": prompt}]
    ids = dialogue.opening(Observation(text=prompt))
    for answer, sentence in zip(answers, feedback, strict=True):
        response = tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]
        ids = ids + response + dialogue.continuation(response, sentence)
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": sentence}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert ids == tokenizer.encode(rendered, add_special_tokens=False)


def test_response_cut_at_max_tokens_is_closed_by_the_template(tokenizer: Any, dialogue: DialogueTokens) -> None:
    cut = tokenizer.encode('{"formula": "3*', add_special_tokens=False)
    stopped = cut + [tokenizer.eos_token_id]
    assert dialogue.ends_turn(stopped) and not dialogue.ends_turn(cut)
    assert dialogue.continuation(cut, "Hm.") == [tokenizer.eos_token_id] + dialogue.continuation(stopped, "Hm.")


def test_template_that_rewrites_history_is_refused() -> None:
    def render(messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        # Shows only the latest user message, as templates that drop earlier turns do.
        last = [m for m in messages if m["role"] == "user"][-1]["content"]
        answers = "".join(f"<a>{m['content']}</a>" for m in messages if m["role"] == "assistant")
        return f"<u>{last}</u>{answers}" + ("<a>" if add_generation_prompt else "")

    with pytest.raises(TemplateError, match="changes earlier turns"):
        template_pieces(render)


def test_expert_policy_succeeds_on_first_turn(tokenizer: Any, dialogue: DialogueTokens) -> None:
    episodes = [make_episode(GP_L, seed) for seed in range(12)]
    expert = {tuple(dialogue.opening(e.observe())): e.expert_answer() for e in episodes}

    def answer(prompt_ids: list[int]) -> str:
        return next(text for opening, text in expert.items() if tuple(prompt_ids[: len(opening)]) == opening)

    engine = ScriptedEngine(tokenizer, answer)
    source = SeedRange(task=GP_L, count=12)
    episodes, runner = play_all(engine, dialogue, tokenizer, source, episodes_in_flight=5)
    assert len(episodes) == 12 and engine.batch_sizes == [5, 5, 2]
    for episode in episodes:
        (turn,) = episode.turns
        assert turn.success and turn.done and turn.reward == GP_L.rewards.success
        assert turn.outcome == "success" and not turn.truncated
    assert runner.counters.successes == 12 and runner.counters.turns == 12


def test_wrong_policy_uses_every_attempt_with_feedback(tokenizer: Any, dialogue: DialogueTokens) -> None:
    engine = ScriptedEngine(tokenizer, lambda ids: '{"cards": ["A"], "formula": "1+1"}')
    episodes, _ = play_all(engine, dialogue, tokenizer, SeedRange(task=GP_L, count=4))
    for episode in episodes:
        assert [t.done for t in episode.turns] == [False, False, True]
        assert [t.outcome for t in episode.turns] == ["wrong_numbers", "wrong_numbers", "step_limit"]
        assert not episode.success
        assert_prompts_grow_by_answer_and_feedback(episode, dialogue, tokenizer)


def assert_prompts_grow_by_answer_and_feedback(episode: EpisodeRecord, dialogue: DialogueTokens,
                                               tokenizer: Any) -> None:
    for before, after in pairwise(episode.turns):
        feedback = tokenizer.encode(before.feedback, add_special_tokens=False)
        appended = after.prompt_ids[len(before.prompt_ids) + len(before.response_ids):]
        assert after.prompt_ids[: len(before.prompt_ids)] == before.prompt_ids
        assert after.prompt_ids[len(before.prompt_ids):][: len(before.response_ids)] == before.response_ids
        assert appended == dialogue.continuation(before.response_ids, before.feedback)
        assert _contains(appended, feedback), "the feedback's ids follow the answer"


def _contains(ids: list[int], part: list[int]) -> bool:
    return any(ids[i : i + len(part)] == part for i in range(len(ids) - len(part) + 1))


class Checkpoints(Episode):
    """V-IRL-shaped: reach checkpoints in order; after a correct answer the dialogue restarts
    from a fresh prompt, after a wrong one the feedback is appended."""

    task, variant = "checkpoints", "id"

    def __init__(self, checkpoints: int = 2) -> None:
        self.checkpoints = checkpoints
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position == self.checkpoints

    def observe(self) -> Observation:
        return Observation(text=f"Checkpoint {self.position}: say go {self.position}.")

    def submit(self, response: str) -> Transition:
        correct = response.strip() == self.expert_answer()
        self.position += correct
        verdict = Verdict(reward=1.0 if correct else -1.0, success=correct,
                          outcome="correct" if correct else "wrong",
                          feedback="Correct." if correct else "Wrong action, try again.")
        if self.done:
            return Transition(verdict=verdict, done=True, success=True)
        next_observation = self.observe() if correct else Observation(text=verdict.feedback)
        return Transition(verdict=verdict, done=False, success=False, next=next_observation,
                          restart=correct)

    def expert_answer(self) -> str:
        return f"go {self.position}"

    def mistaken_answer(self, rng: random.Random) -> str:
        return "stop"


def test_dialogue_restarts_after_a_correct_action(tokenizer: Any, dialogue: DialogueTokens) -> None:
    def wrong_then_right(prompt_ids: list[int]) -> str:
        text = tokenizer.decode(prompt_ids, skip_special_tokens=True)
        position = text.split("Checkpoint ")[-1][0]
        return f"go {position}" if "Wrong action" in text else "stop"

    table = EpisodeTable(factory=lambda spec: Checkpoints())
    engine = ScriptedEngine(tokenizer, wrong_then_right)
    specs = [EpisodeSpec(episode_id=f"c{i}", task=GPConfig(), seed=i) for i in range(3)]
    episodes, _ = play_all(engine, dialogue, tokenizer, SeedList(specs=specs), table)
    for episode in episodes:
        turns = episode.turns
        assert [t.outcome for t in turns] == ["wrong", "correct", "wrong", "correct"]
        assert [t.restart for t in turns] == [False, True, False, False]
        assert turns[2].prompt_ids == dialogue.opening(Observation(text="Checkpoint 1: say go 1."))
        assert_prompts_grow_by_answer_and_feedback(
            EpisodeRecord(episode.episode_id, "", "", 0, turns[:2]), dialogue, tokenizer)
    to_record_batch(episodes, "w0")


@pytest.fixture(scope="module")
def vllm_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = RolloutEngineConfig(model=save_model(tmp_path_factory.mktemp("models")), max_model_len=2048,
                          kv_cache_bytes=32 << 20)
    engine = make_engine(config)
    yield engine
    engine.shutdown()


def test_untrained_model_on_gp_l_with_vllm(vllm_engine: Any, tokenizer: Any, dialogue: DialogueTokens) -> None:
    """A real engine on GP-L: every attempt used, prompts grow exactly, records valid."""
    sampling = SamplingSettings(temperature=1.0, max_tokens=24, seed=3)
    episodes, runner = play_all(vllm_engine, dialogue, tokenizer, SeedRange(task=GP_L, count=6),
                                episodes_in_flight=4, sampling=sampling)
    assert sorted(e.episode_id for e in episodes) == sorted(f"ep-{i}" for i in range(6))
    for episode in episodes:
        assert len(episode.turns) == GP_L.max_attempts and not episode.success
        assert episode.turns[-1].outcome == "step_limit"
        assert_prompts_grow_by_answer_and_feedback(episode, dialogue, tokenizer)
        for turn in episode.turns:
            assert len(turn.response_logprobs) == len(turn.response_ids) <= 24
            assert turn.truncated == (turn.response_ids[-1] != tokenizer.eos_token_id)
    assert runner.counters.engine_calls == 6  # 4 episodes for 3 turns, then 2 for 3 turns
    to_record_batch(episodes, "w0")



def test_an_episode_samples_the_same_answers_in_any_company(vllm_engine: Any, tokenizer: Any,
                                                           dialogue: DialogueTokens) -> None:
    """Sampling is seeded per episode and turn, not per engine call: an episode played alone,
    late, by a fresh runner samples what it samples among others. Resumed runs, rescaled
    fleets and the synchronous loop rely on this to play the same episodes identically."""
    sampling = SamplingSettings(temperature=1.0, max_tokens=24, seed=11)
    crowd, _ = play_all(vllm_engine, dialogue, tokenizer, SeedRange(task=GP_L, count=6),
                        episodes_in_flight=4, sampling=sampling)
    alone, _ = play_all(vllm_engine, dialogue, tokenizer, SeedRange(task=GP_L, start=4, count=1),
                        episodes_in_flight=4, sampling=sampling)
    reseeded, _ = play_all(vllm_engine, dialogue, tokenizer, SeedRange(task=GP_L, start=4, count=1),
                           episodes_in_flight=4, sampling=sampling.model_copy(update={"seed": 12}))
    answers = lambda episode: [turn.response_ids for turn in episode.turns]  # noqa: E731
    (in_crowd,) = [e for e in crowd if e.episode_id == "ep-4"]
    assert answers(alone[0]) == answers(in_crowd)
    assert answers(reseeded[0]) != answers(in_crowd)


def test_a_group_answers_one_hand_with_different_samples(vllm_engine: Any, tokenizer: Any,
                                                         dialogue: DialogueTokens) -> None:
    """The episodes of a group play the same hand (same first prompt, same seed column) and
    still sample their own answers: a group-relative advantage compares them."""
    sampling = SamplingSettings(temperature=1.0, max_tokens=24, seed=11)
    episodes, _ = play_all(vllm_engine, dialogue, tokenizer,
                           SeedRange(task=GP_L, start=40, count=6, group_size=3),
                           episodes_in_flight=4, sampling=sampling)
    by_id = {e.episode_id: e for e in episodes}
    assert sorted(by_id) == [f"ep-{seed}-{r}" for seed in (40, 41) for r in range(3)]
    group = [by_id[f"ep-40-{r}"] for r in range(3)]
    assert {e.seed for e in group} == {40} and by_id["ep-41-0"].seed == 41
    assert len({tuple(e.turns[0].prompt_ids) for e in group}) == 1
    assert len({tuple(e.turns[0].response_ids) for e in group}) == 3


def test_episode_out_of_context_ends_early(vllm_engine: Any, tokenizer: Any, dialogue: DialogueTokens) -> None:
    first = len(dialogue.opening(make_episode(GP_L, 0).observe()))
    sampling = SamplingSettings(max_tokens=16, seed=1)
    episodes, _ = play_all(vllm_engine, dialogue, tokenizer, SeedRange(task=GP_L, count=1),
                           sampling=sampling, max_dialogue_tokens=first + 16 + 10)
    (episode,) = episodes
    assert len(episode.turns) == 1 and episode.turns[0].done and episode.turns[0].out_of_context


def test_virl_dialogue_restarts_at_each_new_position(vllm_engine: Any, tokenizer: Any,
                                                     dialogue: DialogueTokens) -> None:
    """V-IRL-L with a real engine: each turn's prompt is exactly what a shadow episode, fed
    the same answers, says the model must see (a fresh prompt after each position)."""
    config = VIRLConfig()
    specs = [EpisodeSpec(episode_id=f"route-{seed}", task=config, seed=seed) for seed in (0, 2)]
    episodes, _ = play_all(vllm_engine, dialogue, tokenizer, SeedList(specs=specs),
                           episodes_in_flight=2, sampling=SamplingSettings(max_tokens=12, seed=5))
    for episode in episodes:
        shadow = make_episode(config, episode.seed)
        prompt = dialogue.opening(shadow.observe())
        for turn in episode.turns:
            assert turn.prompt_ids == prompt
            transition = shadow.submit(tokenizer.decode(turn.response_ids, skip_special_tokens=True))
            assert (turn.restart, turn.done, turn.reward) == (
                transition.restart, transition.done, transition.verdict.reward)
            if transition.restart:
                prompt = dialogue.opening(transition.next)
            elif not transition.done:
                prompt = prompt + turn.response_ids + dialogue.continuation(
                    turn.response_ids, transition.next.text)
        assert shadow.done and len(episode.turns) == 2 * len(shadow.steps)  # two tries a position
        assert sum(turn.restart for turn in episode.turns) == len(shadow.steps) - 1
    to_record_batch(episodes, "w0")


@pytest.mark.parametrize("task", [GPConfig(), VIRLConfig(rule="id")], ids=["gp", "virl"])
def test_revision_demonstrations_are_the_states_a_rollout_reaches(
        task: Any, tokenizer: Any, dialogue: DialogueTokens) -> None:
    """SFT's revision demonstrations must show the policy exactly the ids a rollout builds after
    the same mistakes: a rollout that replays each demonstration's mistakes, then answers as
    the expert, reaches the demonstration's prompt at that turn and is told it was right."""
    from learner.sft import demonstrations

    demos = demonstrations(task, range(40), tokenizer, revision_share=0.75, max_mistakes=4)
    demos = [d for d in demos if d.earlier == d.mistakes]  # each episode's first expert answer
    assert {len(d.mistakes) for d in demos} >= {0, 1}
    if isinstance(task, GPConfig):
        assert {len(d.mistakes) for d in demos} == {0, 1, 2, 3, 4}
    openings = [dialogue.opening(make_episode(task, d.seed).observe()) for d in demos]
    played = {"episode": -1, "turn": 0}

    def replay(prompt_ids: list[int]) -> str:
        """One episode at a time: its mistakes, the expert's answer, then nonsense to the end."""
        if played["episode"] + 1 < len(demos) and prompt_ids == openings[played["episode"] + 1]:
            played["episode"], played["turn"] = played["episode"] + 1, 0
        demo, turn = demos[played["episode"]], played["turn"]
        played["turn"] += 1
        if turn < len(demo.mistakes):
            return demo.mistakes[turn]
        return demo.answer if turn == len(demo.mistakes) else "I give up."

    specs = [EpisodeSpec(episode_id=str(d.seed), task=task, seed=d.seed) for d in demos]
    episodes, _ = play_all(ScriptedEngine(tokenizer, replay), dialogue, tokenizer,
                           SeedList(specs=specs), episodes_in_flight=1)
    for episode in episodes:
        demo = next(d for d in demos if str(d.seed) == episode.episode_id)
        turn = episode.turns[len(demo.mistakes)]
        assert turn.prompt_ids == demo.prompt_ids and turn.response_ids == demo.answer_ids
        assert turn.reward > 0


def test_virl_demonstrations_cover_every_position_as_a_rollout_reaches_it(
        tokenizer: Any, dialogue: DialogueTokens) -> None:
    """V-IRL's SFT shows the expert at every position of the ground-truth path (the study's
    single-turn pairs from the whole path), each with the prompt a rollout builds there."""
    from learner.sft import demonstrations

    task = VIRLConfig(rule="id", max_history_steps=3)
    seeds = range(3)
    demos = demonstrations(task, seeds, tokenizer)
    shadows = {seed: make_episode(task, seed) for seed in seeds}
    assert len(demos) == sum(len(shadow.steps) for shadow in shadows.values())
    current = iter(shadows.values())
    shadow = {"episode": next(current)}

    def expert(prompt_ids: list[int]) -> str:
        if shadow["episode"].done:
            shadow["episode"] = next(current)
        answer = shadow["episode"].expert_answer()
        shadow["episode"].submit(answer)
        return answer

    specs = [EpisodeSpec(episode_id=str(seed), task=task, seed=seed) for seed in seeds]
    episodes, _ = play_all(ScriptedEngine(tokenizer, expert), dialogue, tokenizer,
                           SeedList(specs=specs), episodes_in_flight=1)
    played = [(turn.prompt_ids, turn.response_ids) for e in episodes for turn in e.turns]
    assert all(turn.reward > 0 for e in episodes for turn in e.turns)
    assert played == [(d.prompt_ids, d.answer_ids) for d in demos]
