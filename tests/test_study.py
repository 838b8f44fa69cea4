"""`revisor study`: both arms from one init at matched compute, the ablation, and resume.

The end-to-end test runs a tiny study as a user does (`python -m cluster.cli study`), stops it
half-way through an RL arm as `ray job stop` would, resumes it, and reads study.json. The rest
check the settings a study refuses before anything starts, and how RL evaluations are matched
to the compute points, without Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cluster.plan.planner import main as plan_main
from cluster.results.evaluations import EvalPoint, read_training_log
from cluster.settings.loading import SettingsError
from cluster.settings.study import load_study
from cluster.study.command import main as study_main
from cluster.study.run import matched
from tests.jobs import DEMO, ROOT, finish, interrupt, start_job, wait_for

STUDY = ("cluster.cli", "study")
TWO_ATTEMPTS = "{task: gp, rule: id, max_attempts: 2, sorted_hand: true}"
TINY = [
    "experiment.sft.steps=30", "experiment.sft.batch_size=8", "experiment.sft.train_episodes=64",
    "experiment.task.max_attempts=2", "experiment.training.episodes_per_update=8",
    "experiment.training.updates=60", "experiment.training.checkpoint_every=1",
    "experiment.rollout.episodes_in_flight=8", "experiment.rollout.episodes_per_batch=4",
    "experiment.evaluation.episodes=8", "experiment.evaluation.temperature=0",
    "experiment.evaluation.split_temperatures={}",
    f"experiment.evaluation.splits={{id: {TWO_ATTEMPTS}, "
    "ood-rule: {task: gp, rule: ood, max_attempts: 2, sorted_hand: true}}",
]
"""The demo's experiment, cut down: a 30-step SFT run (init at step 10, the SFT arm's points at
20 and 30), two-attempt hands, 8 episodes per update, 8 greedy evaluation episodes per split."""


def tiny_study(tmp_path: Path, **changes: object) -> Path:
    settings = {"name": "tiny", "study_dir": str(tmp_path / "study"),
                "experiment": {"from": str(DEMO), "model": str(tmp_path / "model")},
                "init": {"sft_steps": 10}, "compute_points": 2, "verification_steps": [1, 2],
                **changes}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.mark.slow
def test_both_arms_reach_the_same_compute_points_and_a_resumed_study_redoes_nothing(
        tmp_path: Path) -> None:
    study = tmp_path / "study"
    log = tmp_path / "study.log"
    job = start_job(["--config", str(tiny_study(tmp_path)), *TINY], log, STUDY)
    # Stop it as `ray job stop` does, once the first RL arm has checkpointed a few updates.
    wait_for(lambda: len(read_training_log(study / "arms" / "rl")) >= 3, job, log,
             "the RL arm's third update")
    interrupt(job)
    finished = {path: path.stat().st_mtime_ns
                for path in [study / "sft" / "run.json", study / "init" / "points.json",
                             *(study / "arms" / "sft").glob("*.json")]}
    assert len(finished) == 4, sorted(finished)

    resumed_log = tmp_path / "resumed.log"
    finish(start_job(["--resume", str(study)], resumed_log, STUDY), resumed_log)
    resumed = resumed_log.read_text()
    assert "SFT run:" not in resumed and "evaluating" not in resumed, resumed
    assert "RL arm rl (2 verification steps): resumed" in resumed, resumed
    assert {path: path.stat().st_mtime_ns for path in finished} == finished

    results = json.loads((study / "study.json").read_text())
    targets = results["compute_points"]
    assert len(targets) == 2 and targets[0] > results["init"]["id"]["gflops"]
    assert set(results["arms"]) == {"sft", "rl", "rl-steps-1"}
    assert results["verification_steps"] == {"rl": 2, "rl-steps-1": 1}
    for arm, points in results["arms"].items():
        assert [(p["target_gflops"], p["split"]) for p in points] == [
            (target, split) for target in targets for split in ("id", "ood-rule")], arm
    # The SFT arm's checkpoints define the points; an RL arm is evaluated at the first update
    # at or past each (the update before it is short of it).
    assert [p["gflops"] for p in results["arms"]["sft"]] == [t for t in targets for _ in "ab"]
    for arm in ("rl", "rl-steps-1"):
        updates = {row["step"]: row["gflops"] for row in read_training_log(study / "arms" / arm)}
        updates[0] = results["init"]["id"]["gflops"]
        for point in results["arms"][arm]:
            step = int(point["phase"].removeprefix("step-"))
            assert updates[step] == point["gflops"] >= point["target_gflops"] > updates[step - 1]
    # One attempt per hand: the ablation arm spends less per update, so it takes more updates.
    steps_to_last = {arm: int(results["arms"][arm][-1]["phase"].removeprefix("step-"))
                     for arm in ("rl", "rl-steps-1")}
    assert steps_to_last["rl-steps-1"] > steps_to_last["rl"], steps_to_last
    report = (study / "report" / "study.md").read_text()
    assert "Init -> RL / SFT at equal compute" in report
    assert (study / "report" / "success_vs_compute.png").stat().st_size > 0


def point(split: str, gflops: float, phase: str) -> EvalPoint:
    return EvalPoint(arm="rl", phase=phase, task="gp", variant="id", split=split, gflops=gflops,
                     episodes=4, success=0.5)


def test_each_compute_point_takes_the_first_evaluation_at_or_past_it() -> None:
    points = [point(split, gflops, f"step-{step}") for step, gflops in [(3, 9.0), (5, 25.0)]
              for split in ("id", "ood-rule")]
    pairs = matched(points, [8.0, 20.0, 24.0, 30.0])
    # one update passed both 20 and 24: its evaluation stands for both; 30 was never reached
    assert [(target, p.split, p.phase) for target, p in pairs] == [
        (8.0, "id", "step-3"), (8.0, "ood-rule", "step-3"), (20.0, "id", "step-5"),
        (20.0, "ood-rule", "step-5"), (24.0, "id", "step-5"), (24.0, "ood-rule", "step-5")]


def test_a_study_file_extends_an_experiment_file(tmp_path: Path) -> None:
    config = load_study(tiny_study(tmp_path, experiment={
        "from": str(DEMO), "sft": {"steps": 90}, "training": {"updates": 7}}),
        ["experiment.learner.optim.lr=0.01"])
    assert (config.experiment.sft.steps, config.experiment.training.updates) == (90, 7)
    assert config.experiment.sft.batch_size == 16  # the demo's, kept
    assert config.experiment.learner.optim.lr == 0.01
    assert config.point_steps() == [50, 90]
    assert config.rl_arms() == {"rl": 5, "rl-steps-1": 1, "rl-steps-2": 2}


@pytest.mark.parametrize(("changes", "named"), [
    ({"init": {"sft_steps": 600}}, "init.sft_steps (600) must be below experiment.sft.steps"),
    ({"verification_steps": [3, 3]}, "verification_steps repeats a count"),
    ({"verification_steps": [0]}, "verification_steps.0"),
    ({"compute_points": 0}, "compute_points"),
    ({"experiment": {"from": str(DEMO), "sft": None}}, "experiment.sft: a study needs SFT"),
])
def test_settings_a_study_cannot_run_are_refused_naming_them(
        tmp_path: Path, changes: dict, named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_study(tiny_study(tmp_path, **changes))


def test_more_compute_points_than_steps_are_refused(tmp_path: Path) -> None:
    config = load_study(tiny_study(tmp_path, compute_points=50), TINY)
    with pytest.raises(SettingsError, match="compute_points \\(50\\) is more than"):
        config.point_steps()


@pytest.mark.parametrize(("args", "named"), [
    (["--arms", "rl,rl-steps-7"], "--arms names arms the study does not have: rl-steps-7"),
    (["--arms", "rl"], "the study's SFT run is not done yet; run the 'sft' arm first"),
])
def test_arms_that_cannot_run_are_refused_before_the_cluster_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], named: str) -> None:
    code = study_main(["--config", str(tiny_study(tmp_path)), *args, *TINY])
    assert code == 2
    assert named in capsys.readouterr().err


def test_a_study_directory_is_not_started_twice(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.yaml").write_text("name: earlier\n")
    assert study_main(["--config", str(tiny_study(tmp_path)), *TINY]) == 2
    assert "already holds a study; pass --resume" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "study").glob("*.yaml")),
                         ids=lambda path: path.stem)
def test_every_shipped_study_loads_and_fits_its_cluster(path: Path) -> None:
    config = load_study(path)
    assert len(config.point_steps()) == config.compute_points >= 3
    assert plan_main(["--config", str(path)]) == 0


def test_a_study_seed_moves_every_seed_that_shapes_the_result_and_nothing_else() -> None:
    path = ROOT / "configs" / "study" / "cpu-gp-l.yaml"
    first, third = load_study(path).experiment, load_study(path, ["seed=2"]).experiment
    assert [first.tiny_model.seed, first.pretrain.seed, first.sft.seed, first.learner.seed,
            first.rollout.sampling.seed] == [0, 0, 0, 0, 0]
    assert [third.tiny_model.seed, third.pretrain.seed, third.sft.seed, third.learner.seed,
            third.rollout.sampling.seed] == [2, 2, 2, 2, 2]
    assert third.model != first.model, "another seed's base is another cached base"
    assert (third.evaluation.seed, third.training.seed, third.sft.train_seed_start) == \
        (first.evaluation.seed, first.training.seed, first.sft.train_seed_start)
    with pytest.raises(SettingsError, match="seed"):
        load_study(path, ["seed=-1"])
