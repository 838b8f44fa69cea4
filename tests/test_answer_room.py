"""The answer-length check: a max_tokens that would cut off the expert's own answers is
named, with the field to raise, before a job starts."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from cluster.settings.answer_room import (
    answer_room_problems,
    answer_room_warnings,
    expert_answer_lengths,
)
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import load_settings
from tests.fixtures_models import save_model
from tests.jobs import ROOT

VIRL_L = ROOT / "configs" / "tasks" / "virl_l.yaml"


def counter(tmp_path: Path):
    tokenizer = AutoTokenizer.from_pretrained(save_model(tmp_path))
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_the_shipped_virl_settings_hold_every_expert_answer(tmp_path: Path) -> None:
    config = load_settings(ExperimentConfig, VIRL_L, [])
    count = counter(tmp_path)
    assert list(answer_room_problems(config, count)) == []
    # the expert writes past 80 tokens at intersections with several landmarks in sight
    assert max(expert_answer_lengths(config.task, count)) > 80


def test_a_cap_below_the_experts_answers_is_named_with_its_field(tmp_path: Path) -> None:
    count = counter(tmp_path)
    rollout = load_settings(ExperimentConfig, VIRL_L, ["rollout.sampling.max_tokens=80"])
    problems = list(answer_room_problems(rollout, count))
    assert len(problems) == 1 + len(rollout.evaluation.splits)
    assert problems[0].startswith("rollout.sampling.max_tokens (80) cuts off the expert's answer")
    assert "positions of task" in problems[0] and "raise rollout.sampling.max_tokens" in problems[0]
    evaluation = load_settings(ExperimentConfig, VIRL_L, ["evaluation.max_tokens=40"])
    problems = list(answer_room_problems(evaluation, count))
    assert [p.split(" (")[0] for p in problems] == ["evaluation.max_tokens"] * len(
        evaluation.evaluation.splits)


def test_a_tokenizer_that_cannot_be_read_gives_no_advice_and_no_error(tmp_path: Path) -> None:
    """The check is advice: a checkpoint's unreadable tokenizer is the engines' to report."""
    (tmp_path / "tokenizer.json").touch()
    config = load_settings(ExperimentConfig, VIRL_L, [f"model={tmp_path}",
                                                      "rollout.sampling.max_tokens=8"])
    assert answer_room_warnings(config) == []
