"""Evaluation success split by what the SFT warm start showed (cluster/results/recall.py)."""

from __future__ import annotations

import yaml

from cluster.results.evaluations import EvalPoint, write_evaluations
from cluster.results.recall import (
    UNSEEN,
    SFTData,
    demonstrated_keys,
    read_run_settings,
    recall_groups,
    recall_splits,
)
from cluster.results.report import write_report
from cluster.settings.experiment import EvaluationConfig
from envs.general_points import GPConfig
from envs.general_points.episode import GPEpisode, make_episode
from envs.virl import VIRLConfig

GP = GPConfig(rule="id")


def a_hand_with_distinct_numbers(seed: int = 0) -> GPEpisode:
    while len(set((episode := make_episode(GP, seed)).numbers)) < 4:
        seed += 1
    return episode


def test_a_hand_is_recalled_by_its_order_first_then_by_its_numbers():
    shown = a_hand_with_distinct_numbers()
    demonstrated = {name: {key} for name, key in shown.recall_keys().items()}
    reordered = GPEpisode(GP, tuple(reversed(shown.hand)))
    other = next(episode for seed in range(100) if set((episode := make_episode(GP, seed)).numbers)
                 != set(shown.numbers))

    def group(episode: GPEpisode) -> str:
        return next((name for name, key in episode.recall_keys().items()
                     if key in demonstrated[name]), UNSEEN)

    assert [group(shown), group(reordered), group(other)] == ["same order", "same numbers", UNSEEN]
    # another target makes another instance, even with the same cards
    elsewhere = GPEpisode(GP.model_copy(update={"target": 10}), shown.hand)
    assert group(elsewhere) == UNSEEN


def test_evaluation_on_the_sft_seeds_is_all_recall_and_solved_episodes_are_counted():
    sft = SFTData(task=GP, train_seed_start=0, train_episodes=40)
    evaluation = EvaluationConfig(episodes=40, seed=0, splits={"id": GP})
    solved = [0, 3, 7]
    point = EvalPoint(arm="rl", phase="init", task="gp-l", variant="id", split="id", gflops=1.0,
                      episodes=40, success=3 / 40, solved=solved)
    [(_, groups)] = recall_splits(sft, evaluation, [point])
    assert list(groups) == ["same order"]
    assert (groups["same order"].episodes, groups["same order"].solved) == (40, 3)


def test_groups_partition_the_evaluation_and_follow_the_sft_hands():
    sft = SFTData(task=GP, train_seed_start=0, train_episodes=300)
    demonstrated = demonstrated_keys(sft)
    evaluation = EvaluationConfig(episodes=100, seed=1_000_000)
    groups = recall_groups(GP, evaluation, 100, demonstrated)
    assert len(groups) == 100 and set(groups) <= {"same order", "same numbers", UNSEEN}
    for i, group in enumerate(groups):
        keys = make_episode(GP, evaluation.seed + i).recall_keys()
        assert (group == "same order") == (keys["same order"] in demonstrated["same order"])
        assert (group == UNSEEN) == (keys["same numbers"] not in demonstrated["same numbers"])
    # the OOD rule's face cards count 11 to 13: none of its hands was demonstrated
    ood = GPConfig(rule="ood")
    assert set(recall_groups(ood, evaluation, 50, demonstrated)) == {UNSEEN}


def test_a_virl_route_is_recalled_under_the_rule_it_was_shown_with():
    shown = VIRLConfig(rule="id")
    demonstrated = demonstrated_keys(SFTData(task=shown, train_episodes=5))
    assert recall_groups(shown, EvaluationConfig(seed=0), 8, demonstrated) == ["same route"] * 5 + [UNSEEN] * 3
    assert set(recall_groups(VIRLConfig(rule="ood"), EvaluationConfig(seed=0), 5, demonstrated)) == {UNSEEN}
    # route 0..4 of another synthetic world (an unseen city) are other routes
    other_world = VIRLConfig(rule="id", world_seed=1)
    assert set(recall_groups(other_world, EvaluationConfig(seed=0), 5, demonstrated)) == {UNSEEN}


def run_with_sft(tmp_path, sft: dict | None):
    run = tmp_path / "run"
    run.mkdir()
    settings = {"model": "m", "evaluation": {"episodes": 20, "seed": 0}}
    if sft is not None:
        settings["sft"] = sft
    (run / "config.yaml").write_text(yaml.safe_dump(settings))
    write_evaluations(run, [EvalPoint(arm="rl", phase=phase, task="gp-l", variant="id",
                                      split="id", gflops=g, episodes=20, success=len(s) / 20,
                                      solved=s)
                            for phase, g, s in (("init", 1.0, [1, 2]), ("step-4", 2.0, [2]))])
    return run


def test_the_report_splits_success_by_what_sft_showed(tmp_path):
    run = run_with_sft(tmp_path, {"task": {"task": "gp"}, "train_episodes": 10})
    text = write_report([run], tmp_path / "report").read_text()
    assert "Recall or skill" in text
    # evaluation seeds 0..19, SFT seeds 0..9: the first ten were shown exactly
    groups = recall_groups(GP, EvaluationConfig(episodes=20, seed=0), 20,
                           demonstrated_keys(SFTData(task=GP, train_episodes=10)))
    assert groups[:10] == ["same order"] * 10
    shown = groups.count("same order")
    assert f"| run | rl | init | gp-l | id | 2/{shown} ({100 * 2 / shown:.0f}%) |" in text
    assert f"| run | rl | step-4 | gp-l | id | 1/{shown} ({100 / shown:.0f}%) |" in text


def test_a_run_without_an_sft_phase_has_no_split(tmp_path):
    run = run_with_sft(tmp_path, None)
    assert read_run_settings(run) is None
    assert "Recall or skill" not in write_report([run], tmp_path / "report").read_text()
