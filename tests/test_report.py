"""`revisor report` turns run directories into plots and a readable page."""

from __future__ import annotations

import json

import pytest

from cluster.cli import main as revisor
from cluster.results.evaluations import (
    EvalPoint,
    read_evaluations,
    success_change,
    success_stderr,
    write_evaluations,
)
from cluster.results.report import write_report


def point(arm: str, phase: str, split: str, gflops: float, success: float) -> EvalPoint:
    return EvalPoint(arm=arm, phase=phase, task="gp-l", variant="id", split=split, gflops=gflops,
                     episodes=200, success=success, success_by_turn=[success / 2, success])


@pytest.fixture
def two_arms(tmp_path):
    runs = []
    for arm, final in (("sft", 0.3), ("rl", 0.6)):
        run = tmp_path / arm
        run.mkdir()
        write_evaluations(run, [point(arm, "init", "id", 1.0, 0.2), point(arm, "step-10", "id", 5.0, final),
                                point(arm, "init", "ood-rule", 1.0, 0.1),
                                point(arm, "step-10", "ood-rule", 5.0, final / 3)])
        (run / "training.jsonl").write_text("\n".join(
            json.dumps({"step": s, "mean_reward": s / 10, "success": s / 20}) for s in range(5)))
        (run / "config.yaml").write_text(f"arm: {arm}\n")
        runs.append(run)
    return runs


def test_evaluations_round_trip_through_parquet(two_arms):
    points = read_evaluations(two_arms[0])
    assert len(points) == 4 and points[1].success == 0.3
    assert points[1].stderr == pytest.approx(success_stderr(0.3, 200))


def test_report_holds_plots_table_and_settings(two_arms, tmp_path):
    out = tmp_path / "report"
    assert revisor(["report", *map(str, two_arms), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    for png in ("success_vs_compute.png", "success_by_turn.png", "training_curves.png"):
        assert (out / png).stat().st_size > 5_000
        assert png in text
    assert "| rl | step-10 | gp-l | id | 0 | 5 | 200 | 60.0 | 3.5 |" in text
    assert "arm: sft" in text


def test_report_shows_step_and_recognition_accuracy_when_measured(tmp_path):
    run = tmp_path / "virl"
    run.mkdir()
    walk = EvalPoint(arm="rl", phase="step-4", task="virl-vl", variant="ood", split="ood-rule",
                     gflops=2.0, episodes=18, success=0.5, step_accuracy=0.875,
                     recognition_accuracy=0.9)
    cards = point("rl", "step-4", "id", 2.0, 0.25)
    write_evaluations(run, [walk, cards])
    assert revisor(["report", str(run)]) == 0
    text = (run / "report" / "report.md").read_text()
    assert "| step accuracy (%) | recognition (%) |" in text
    assert "| rl | step-4 | virl-vl | ood-rule | 0 | 2 | 18 | 50.0 | 11.8 | 87.5 | 90.0 |" in text
    assert "| rl | step-4 | gp-l | id | 0 | 2 | 200 | 25.0 | 3.1 | – | – |" in text


def test_report_rejects_a_missing_run_directory(tmp_path):
    with pytest.raises(SystemExit):
        revisor(["report", str(tmp_path / "nope")])


def test_change_on_the_same_episodes_is_paired_and_tighter_than_independent_samples():
    before = point("rl", "init", "id", 1.0, 0.25).model_copy(update={"solved": list(range(50))})
    # 45 of the 50 stay solved, 5 are lost and 20 gained: +15 of 200
    after = point("rl", "step-10", "id", 5.0, 0.325).model_copy(
        update={"solved": list(range(5, 50)) + list(range(100, 120))})
    change = success_change(before, after)
    assert change.paired and change.success == pytest.approx(0.075)
    d = [1] * 20 + [-1] * 5 + [0] * 175
    mean = sum(d) / 200
    expected = (sum((x - mean) ** 2 for x in d) / 199 / 200) ** 0.5
    assert change.stderr == pytest.approx(expected)
    unpaired = success_change(before.model_copy(update={"solved": []}),
                              after.model_copy(update={"solved": []}))
    assert not unpaired.paired and unpaired.stderr > change.stderr
    assert unpaired.stderr == pytest.approx((before.stderr**2 + after.stderr**2) ** 0.5)


def test_report_headline_says_whether_a_change_is_beyond_its_error_bar(two_arms, tmp_path):
    report = write_report(two_arms, tmp_path / "out").read_text()
    headline = report.split("## What training changed")[1].split("##")[0]
    assert "| rl | gp-l | id | init | step-10 | 20.0 -> 60.0 | +40.0 |" in headline
    assert headline.count("(unpaired) | yes |") >= 2


def test_virl_runs_report_the_change_in_per_step_accuracy_with_its_error_bar(tmp_path):
    run = tmp_path / "virl"
    run.mkdir()
    step = {"task": "virl-l", "variant": "ood", "split": "ood-rule", "episodes": 32,
            "success": 0.0, "arm": "rl"}
    write_evaluations(run, [EvalPoint(**step, phase="init", gflops=1.0, step_accuracy=0.409,
                                      positions=966),
                            EvalPoint(**step, phase="step-4", gflops=2.0, step_accuracy=0.520,
                                      positions=966)])
    text = write_report([run], tmp_path / "out").read_text()
    bar = 100 * (success_stderr(0.409, 966) ** 2 + success_stderr(0.520, 966) ** 2) ** 0.5
    assert (f"| rl | virl-l | ood-rule | init | step-4 | 40.9 -> 52.0 | +11.1 | {bar:.1f} | yes |"
            in text)


def test_runs_without_per_step_accuracy_have_no_such_table(two_arms, tmp_path):
    assert "per-step accuracy" not in write_report(two_arms, tmp_path / "out").read_text()
