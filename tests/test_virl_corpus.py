"""The V-IRL pretraining corpus (envs/virl/corpus.py): cities no evaluation walks, both action
spaces, turns read exactly as the environment and verifier read them, documents fixed by
their index; the settings that would break those refused at their field; V-IRL per-step
accuracy split into turning and forward steps; and a briefly pretrained base that answers
the task's prompt in the task's action format."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from cluster.job.evaluation import summarise
from cluster.results.step_kinds import counts_by_kind
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError, load_settings
from cluster.settings.pretrain import BASE_RECORD, base_key, base_path
from contracts.tasks import VIRLConfig
from contracts.trajectory import EpisodeRecord, TurnRecord, to_record_batch
from envs.general_points.corpus import CorpusConfig
from envs.virl import make_episode
from envs.virl.corpus import VIRLCorpusConfig, document, documents
from envs.virl.geometry import COMPASS, RELATIVE, relative_action, signed_turn
from tests.jobs import ROOT, run_job
from verifier.virl import StepTarget, normalise_action, parse_answer, verify

CONFIG = ROOT / "configs" / "pretrained_virl_l.yaml"
GP_CONFIG = ROOT / "configs" / "pretrained_gp_l.yaml"
DEGREES = re.compile(r"\((\d+) degrees\)")


def corpus(documents_: int = 600, **update: object) -> VIRLCorpusConfig:
    """The shipped experiment's corpus, shortened."""
    shipped = load_settings(ExperimentConfig, CONFIG, []).pretrain.corpus
    return shipped.model_copy(update={"documents": documents_, **update})


def action(answer: str) -> str | None:
    """The action the verifier reads in an answer, canonical."""
    written = parse_answer(answer).action
    return normalise_action(written) if written else None


def test_corpus_cities_are_never_a_city_the_experiment_walks() -> None:
    config = load_settings(ExperimentConfig, CONFIG, [])
    walked = {doc.world_seed for doc in documents(corpus()) if doc.kind == "step"}
    used = {task.world_seed for task in [config.task, *config.evaluation.splits.values()]}
    assert len(walked) > 10 and walked <= set(config.pretrain.corpus.world_seeds)
    assert not walked & used, f"the corpus walks cities {sorted(walked & used)} of the experiment"


@pytest.mark.parametrize("override, message", [
    ("evaluation.splits.ood-rule.world_seed=1000005",
     "pretrain.corpus.world_seed_start: corpus cities .* include evaluation.splits.ood-rule"),
    ("task.world_seed=1000063", "pretrain.corpus.world_seed_start: .* include "
                                "task.world_seed 1000063"),
    ("pretrain.corpus.world_seed_start=1", r"pretrain.corpus.virl.world_seed_start: .*1000000"),
])
def test_a_corpus_on_an_evaluation_city_is_refused_at_its_field(override: str,
                                                                 message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(ExperimentConfig, CONFIG, [override])


@pytest.mark.parametrize("path, corpus_settings, message", [
    (CONFIG, "{documents: 10}", "pretrain.corpus.task: a 'gp' corpus cannot pretrain for the "
                                "'virl' task"),
    (GP_CONFIG, "{task: virl}", "pretrain.corpus.task: a 'virl' corpus cannot pretrain for "
                                "the 'gp' task"),
])
def test_a_corpus_of_another_task_is_refused_at_its_field(path: Path, corpus_settings: str,
                                                          message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(ExperimentConfig, path, [f"pretrain.corpus={corpus_settings}"])


def test_the_base_cache_key_follows_the_corpus_kind_and_settings() -> None:
    config = load_settings(ExperimentConfig, CONFIG, [])
    pretrain, tiny = config.pretrain, config.tiny_model
    as_gp = pretrain.model_copy(update={"corpus": CorpusConfig()})
    keys = {base_key(p, tiny) for p in (pretrain, as_gp, pretrain.model_copy(update={
        "corpus": pretrain.corpus.model_copy(update={"cities": 3})}))}
    assert len(keys) == 3
    assert Path(config.model) == base_path(pretrain, tiny)


def test_both_action_spaces_appear_and_their_shares_are_the_settings() -> None:
    docs = documents(corpus(400))
    assert set(Counter((d.kind, d.rule) for d in docs)) == {
        ("step", "id"), ("step", "ood"), ("facing", "id"), ("facing", "ood"), ("difference", "ood")}
    for doc in docs:
        if doc.kind != "difference" and doc.turn is not None:
            directions = COMPASS if doc.rule == "id" else RELATIVE
            assert action(doc.answer) in {f"turn_direction({d})" for d in directions}, doc
    only_relative = documents(corpus(100, rules={"ood": 1.0}))
    assert {doc.rule for doc in only_relative} == {"ood"}


def test_step_documents_are_the_tasks_prompt_and_the_experts_answer() -> None:
    steps = [doc for doc in documents(corpus(200)) if doc.kind == "step"]
    for doc in steps:
        space = "x one of north" if doc.rule == "id" else "x one of left"
        assert doc.prompt.startswith("You are walking through a city") and space in doc.prompt
        answer = json.loads(doc.answer)
        assert set(answer) == {"current observation", "current instruction", "action"}
        assert f"Current observation: {answer['current observation']}" in doc.prompt
        assert answer["current instruction"] in doc.prompt
    assert {action(doc.answer).split("(")[0] for doc in steps} == {
        "forward", "stop", "turn_direction"}


def headings_shown(doc) -> tuple[int, int]:
    """(heading faced, heading to face) as the document's text states them."""
    if doc.kind == "step":
        facing = re.search(r"You are facing \w+ \((\d+) degrees\)\.\nCurrent", doc.prompt)
        target = DEGREES.search(json.loads(doc.answer)["current instruction"])
        return int(facing.group(1)), int(target.group(1))
    numbers = [int(n) for n in re.findall(r"(\d+) degrees", doc.prompt)]
    assert len(numbers) == 2, doc.prompt
    return numbers[0], numbers[1]


def test_every_relative_turn_is_the_environments_reading_of_the_heading_difference() -> None:
    checked = Counter()
    for doc in documents(corpus(800)):
        if doc.rule != "ood" or doc.turn is None:
            continue
        heading, target = headings_shown(doc)
        assert (heading, target) == doc.turn
        expected = f"turn_direction({relative_action(heading, target)})"
        if doc.kind == "difference":
            turn = signed_turn(heading, target)
            assert doc.answer == (f"{abs(turn):g} degrees to the {'right' if turn > 0 else 'left'}"
                                  f": {relative_action(heading, target)}")
        else:
            verdict = verify(doc.answer, StepTarget(action=expected, directions=RELATIVE))
            assert verdict.success, (doc.prompt, doc.answer, verdict.feedback)
        checked[doc.kind] += 1
    assert min(checked[kind] for kind in ("step", "facing", "difference")) >= 20, checked


def street_turn_share(config: VIRLCorpusConfig) -> float:
    """Share of `facing` documents whose turn is a street corner's: within 10 degrees of a
    whole number of right angles (the corpus cities are rotated grids)."""
    turns = [abs(signed_turn(*doc.turn)) for doc in documents(config) if doc.kind == "facing"]
    assert len(turns) >= 50
    return sum(min(turn % 90, 90 - turn % 90) <= 10 for turn in turns) / len(turns)


def test_street_facing_documents_take_the_turns_the_cities_streets_make() -> None:
    assert street_turn_share(corpus(800, facing_headings="streets")) >= 0.9
    assert street_turn_share(corpus(800, facing_headings="uniform")) <= 0.35


@pytest.mark.parametrize(("turn_share", "low", "high"), [(None, 0.2, 0.45), (0.5, 0.42, 0.58),
                                                         (1.0, 1.0, 1.0)])
def test_turn_share_places_that_share_of_step_documents_at_a_turn(
        turn_share: float | None, low: float, high: float) -> None:
    steps = [doc for doc in documents(corpus(800, turn_share=turn_share)) if doc.kind == "step"]
    share = sum(doc.turn is not None for doc in steps) / len(steps)
    assert low <= share <= high, share


def test_documents_are_fixed_by_their_index() -> None:
    config = VIRLCorpusConfig(documents=40)
    every = documents(config)
    assert document(config, 7) == every[7] == document(config.model_copy(
        update={"documents": 8}), 7)
    assert len({doc.prompt for doc in every}) == 40
    assert documents(config.model_copy(update={"seed": 1})) != every


def play(config: VIRLConfig, seed: int, answer) -> EpisodeRecord:
    """One episode to its end, each answer `answer(episode)`, rows as the runner writes them."""
    episode = make_episode(config, seed)
    record = EpisodeRecord(episode_id=f"eval-x-{seed}", task=episode.task,
                           variant=episode.variant, seed=seed)
    prompt = [1]
    while not episode.done:
        transition = episode.submit(answer(episode))
        v = transition.verdict
        record.turns.append(TurnRecord(
            prompt_ids=prompt, response_ids=[2], response_logprobs=[-0.5], policy_version=0,
            truncated=False, reward=v.reward, done=transition.done, success=transition.success,
            outcome=v.outcome, feedback=v.feedback, parsed_answer=v.parsed_answer,
            recognition_ok=v.recognition_ok, restart=transition.restart))
        prompt = [1] if transition.restart else [*prompt, 2, 3]  # a dialogue grows in place
    return record


def test_always_forward_is_right_on_every_forward_step_and_no_turn() -> None:
    config = VIRLConfig(rule="ood", world_seed=1)
    forward = '{"current observation": "", "current instruction": "", "action": "forward()"}'
    records = [play(config, seed, lambda episode: forward) for seed in range(4)]
    point = summarise([to_record_batch(records, "w")], "rl", "init", "ood-rule", 0.0,
                      per_step=True, task=config)
    kinds = Counter(step.kind for seed in range(4) for step in make_episode(config, seed).steps)
    assert (point.turn_positions, point.forward_positions) == (kinds["turn"], kinds["forward"])
    assert (point.turn_step_accuracy, point.forward_step_accuracy) == (0.0, 1.0)
    assert 0.3 < point.step_accuracy < 0.7, "forward() alone looks half right per step"
    expert = [play(config, seed, lambda episode: episode.expert_answer()) for seed in range(2)]
    point = summarise([to_record_batch(expert, "w")], "rl", "init", "ood-rule", 0.0,
                      per_step=True, task=config)
    assert (point.turn_step_accuracy, point.forward_step_accuracy) == (1.0, 1.0)


def test_turn_and_forward_counts_on_a_hand_built_table() -> None:
    """Episode a (turn, forward, stop): the turn right on its second try, forward wrong
    twice, stop right. Episode b (turn, ...): the turn wrong on both tries, then cut short.
    Rows are given out of order, as batches from several workers may come."""
    rows = [  # episode, turn, outcome, ends a position
        ("b", 1, "step_limit", True), ("a", 0, "wrong_action", False),
        ("a", 1, "correct", True), ("a", 2, "wrong_action", False),
        ("a", 3, "step_limit", True), ("a", 4, "correct", True), ("b", 0, "wrong_action", False)]
    table = {"episode_id": [r[0] for r in rows], "turn": [r[1] for r in rows],
             "outcome": [r[2] for r in rows], "seed": [0 if r[0] == "a" else 1 for r in rows]}
    walks = {0: ("turn", "forward", "stop"), 1: ("turn", "forward", "forward", "stop")}
    counts = counts_by_kind(table, [r[3] for r in rows], walks.__getitem__)
    assert counts == {"turn": (1, 2), "forward": (0, 1)}


def greedy_answers(model: Path, config: VIRLConfig, count: int) -> list[tuple[str, object]]:
    """The checkpoint's greedy answer to the first prompt of `count` evaluation routes, each
    with the episode it answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model).eval()
    answers = []
    for seed in range(count):
        episode = make_episode(config, seed)
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": episode.observe().text}], add_generation_prompt=True,
            return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            out = lm.generate(ids, max_new_tokens=160, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)
        answers.append((tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True),
                        episode))
    return answers


@pytest.mark.slow
def test_a_briefly_pretrained_base_answers_in_the_tasks_action_format(tmp_path: Path) -> None:
    pretrain = ["--config", str(CONFIG), f"pretrain.cache_dir={tmp_path / 'bases'}",
                "pretrain.steps=120", "pretrain.batch_size=16", "pretrain.corpus.documents=1500",
                "pretrain.corpus.shares={step: 1.0}", "pretrain.optim.lr=5.0e-3",
                "pretrain.probe_documents=24"]
    run_job(pretrain, tmp_path / "pretrain.log", command=("cluster.cli", "pretrain"))
    base = Path((tmp_path / "pretrain.log").read_text().strip().splitlines()[-1])
    assert (base / "config.json").exists()
    probe = json.loads((base / BASE_RECORD).read_text())["probe"]
    assert sum(row["total"] for row in probe) == 24
    assert {row["group"] for row in probe} <= {f"step/{rule}/{at}" for rule in ("id", "ood")
                                               for at in ("turn", "other")}
    splits = load_settings(ExperimentConfig, CONFIG, []).evaluation.splits
    answers = [answer for split in ("id", "ood-rule")
               for answer in greedy_answers(base, splits[split], 6)]
    verdicts = [verify(text, episode.target()) for text, episode in answers]
    # the untrained model writes no action at all; 120 steps on a loaded 2-core machine read
    # 10 of 12 (the copied landmark names are still garbled, the action is not)
    readable = [v for v in verdicts if v.outcome != "unparseable"]
    assert len(readable) >= 8, [text for text, _ in answers]
