"""A V-IRL-VL vision base (`revisor pretrain` with `corpus: {task: virl, kind: vision}`): view
grids drawn as the task draws them, answered with the detection field or the expert's whole
answer, on corpus cities no split walks. (No learning test yet: the base these settings make
sees the views' layout but not the landmarks' names; docs/experiments.md has the figures.)"""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter

from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError, load_settings
from cluster.settings.pretrain import base_key
from contracts.tasks import VIRLConfig
from envs.corpora import Corpus, corpus_version
from envs.registry import render_image_ref
from envs.virl.episode import VIRLEpisode, make_episode
from envs.virl.geometry import relative_action
from envs.virl.vision_corpus import (
    QUESTION,
    VIRLVisionCorpusConfig,
    VIRLVisionDocument,
    detection_answer,
    document,
    documents,
)
from tests.jobs import ROOT
from verifier.virl.detection import detection_problem
from verifier.virl.parse import parse_answer

EXPERIMENT = ROOT / "configs" / "pretrained_virl_vl.yaml"
CORPUS = VIRLVisionCorpusConfig(documents=120)


def episode_of(doc: VIRLVisionDocument) -> VIRLEpisode:
    """The episode a document's picture names, rebuilt from its reference alone."""
    scene = json.loads(doc.image_refs[0].removeprefix("virl:"))
    # The reference leaves out what shapes the prompt only (history kept): the corpus's own.
    config = VIRLConfig.model_validate({**CORPUS.prompt.model_dump(), **scene["config"],
                                        "rule": doc.rule})
    episode = make_episode(config, scene["seed"])
    episode.position = scene["position"]
    return episode


def passes(answer: str, episode: VIRLEpisode) -> bool:
    """Whether `answer`'s current observation passes the verifier's detection check here."""
    target = episode.target()
    return not detection_problem(parse_answer(answer).observation, target.visible,
                                 target.others, target.at_intersection)


def test_documents_are_deterministic_and_show_the_tasks_views() -> None:
    docs = documents(CORPUS)
    assert docs == documents(CORPUS)
    assert {doc.kind for doc in docs} == {"detection", "step"}
    for doc in docs[:6]:
        episode = episode_of(doc)
        assert render_image_ref(doc.image_refs[0]).tobytes() == episode.view()[1].tobytes()
        assert render_image_ref(doc.image_refs[0]).size == (130, 130)
        assert doc.world_seed in CORPUS.world_seeds and doc.position == episode.position


def test_detection_answers_pass_the_check_at_their_position_and_fail_elsewhere() -> None:
    detections = [doc for doc in documents(CORPUS) if doc.kind == "detection"]
    assert len(detections) > 40
    failed_elsewhere = 0
    for doc in detections:
        assert doc.prompt == QUESTION
        episode = episode_of(doc)
        assert passes(doc.answer, episode) and doc.answer == detection_answer(episode)
        here = episode.target()
        for other in range(len(episode.steps)):
            episode.position = other
            there = episode.target()
            if (set(there.visible), there.at_intersection) != (set(here.visible),
                                                               here.at_intersection):
                assert not passes(doc.answer, episode)
                failed_elsewhere += 1
    assert failed_elsewhere > 100


def test_step_documents_are_the_tasks_prompt_and_the_experts_answer() -> None:
    steps = [doc for doc in documents(CORPUS) if doc.kind == "step"]
    assert {doc.rule for doc in steps} == {"id", "ood"}
    turns = 0
    for doc in steps:
        episode = episode_of(doc)
        assert doc.prompt == episode.observe().text and "2x2 grid" in doc.prompt
        assert doc.answer == episode.expert_answer() and passes(doc.answer, episode)
        step, action = episode.steps[doc.position], json.loads(doc.answer)["action"]
        if doc.rule == "ood" and step.target_heading is not None:
            assert action == f"turn_direction({relative_action(step.heading, step.target_heading)})"
            turns += 1
    assert turns >= 3


def test_no_split_walks_a_corpus_city() -> None:
    config = load_settings(ExperimentConfig, EXPERIMENT, [])
    seeds = config.pretrain.corpus.world_seeds
    tasks = [config.task, *config.evaluation.splits.values()]
    assert all(task.world_seed not in seeds for task in tasks)
    assert {doc.world_seed for doc in documents(config.pretrain.corpus.model_copy(
        update={"documents": 200}))} <= set(seeds)


@pytest.mark.parametrize(("override", "field"), [
    ("pretrain.corpus.prompt.image_tile_px=32", "pretrain.corpus.prompt.image_tile_px"),
    ("pretrain.corpus.prompt.image_style=street", "pretrain.corpus.prompt.image_style"),
    ("pretrain.corpus.prompt.max_history_steps=3", "pretrain.corpus.prompt.max_history_steps"),
    ("task.vision=false", "pretrain.corpus.kind"),
    ("evaluation.splits.id.world_seed=1000005", "pretrain.corpus.world_seed_start"),
])
def test_a_mismatched_corpus_is_refused_at_its_field(override: str, field: str) -> None:
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")):
        load_settings(ExperimentConfig, EXPERIMENT, [override])


def test_the_corpus_is_chosen_by_task_and_kind_and_keys_its_own_base() -> None:
    corpus = TypeAdapter(Corpus).validate_python({"task": "virl", "kind": "vision"})
    assert isinstance(corpus, VIRLVisionCorpusConfig)
    assert corpus_version(corpus) == "virl-vision-1"
    config = load_settings(ExperimentConfig, EXPERIMENT, [])
    text = config.pretrain.model_copy(update={"corpus": TypeAdapter(Corpus).validate_python(
        {"task": "virl"})})
    assert base_key(text, config.tiny_model) != base_key(config.pretrain, config.tiny_model)
    assert document(CORPUS, 7) == documents(CORPUS)[7]
