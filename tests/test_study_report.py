"""`revisor study-report` turns a study's study.json into the study's figure and tables."""

from __future__ import annotations

import json

import pytest

from cluster.cli import main as revisor
from cluster.results.evaluations import success_stderr
from cluster.study.compare import ablation_gains, equal_compute
from cluster.study.figures import (
    plot_gain_vs_verification_steps,
    plot_recognition_vs_compute,
    plot_success_vs_compute,
)
from cluster.study.report import write_study_report
from cluster.study.results import StudyPoint, StudyResults, read_study, write_study

N = 1000
COMPUTE = [12.5, 25.0, 37.5]


def point(split: str, success: float, gflops: float, target: float | None, *, n: int = N,
          task: str = "gp", recognition: float | None = None, step: float | None = None,
          positions: int | None = None, turn: float | None = None) -> StudyPoint:
    """Episodes 0..k-1 solved: two points' paired change is then |k1 - k0| flips."""
    return StudyPoint(gflops=gflops, target_gflops=target, split=split, success=success, n=n,
                      stderr=success_stderr(success, n),
                      phase="init" if target is None else f"gflops-{target:g}", task=task,
                      variant="gp-l", temperature=0.0, success_by_turn=[success / 2, success],
                      mean_reward=0.1, recognition_accuracy=recognition, step_accuracy=step,
                      positions=positions, turn_step_accuracy=turn,
                      turn_positions=None if turn is None else 100,
                      solved=list(range(round(success * n))))


def arm(gflops: list[float], by_split: dict[str, list[float]],
        recognition: list[float] | None = None) -> list[StudyPoint]:
    """One point per (compute point, split), in compute order."""
    return [point(split, values[i], gflops[i], COMPUTE[i],
                  recognition=recognition[i] if recognition and split == "id" else None)
            for i in range(len(gflops)) for split, values in by_split.items()]


def gp_study() -> StudyResults:
    """GP-L-like: success falls under SFT and rises under RL on rule-OOD (as in
    docs/protocol.md §Reported results: 11.5 -> 15.0 / 3.4), with recognition on ID and a
    verification-steps ablation."""
    return StudyResults(
        name="cpu-gp-l", task="gp", parameters=1_234_567, compute_points=COMPUTE,
        verification_steps={"rl": 5, "rl-steps-1": 1, "rl-steps-3": 3},
        init={"id": point("id", 0.40, 2.0, None, recognition=0.50),
              "ood-rule": point("ood-rule", 0.115, 2.0, None)},
        arms={"sft": arm([12.9, 25.3, 37.9], {"id": [0.55, 0.70, 0.80],
                                                "ood-rule": [0.08, 0.05, 0.034]},
                         recognition=[0.45, 0.40, 0.30]),
              "rl": arm([13.1, 26.0, 38.2], {"id": [0.45, 0.52, 0.60],
                                              "ood-rule": [0.125, 0.14, 0.15]},
                        recognition=[0.55, 0.60, 0.70]),
              "rl-steps-1": arm([12.6, 25.1, 37.6], {"id": [0.41, 0.42, 0.43],
                                                      "ood-rule": [0.118, 0.119, 0.12]}),
              "rl-steps-3": arm([12.7, 25.2, 37.7], {"id": [0.42, 0.45, 0.50],
                                                      "ood-rule": [0.125, 0.13, 0.137]})})


def flat(series: list[tuple[float, ...]]) -> list[float]:
    """pytest.approx compares flat lists only."""
    return [value for pair in series for value in pair]


@pytest.fixture
def study_dir(tmp_path):
    write_study(tmp_path, gp_study())
    return tmp_path


def test_study_json_round_trips(study_dir):
    assert read_study(study_dir / "study.json") == gp_study()
    assert set(json.loads((study_dir / "study.json").read_text())) == {
        "name", "task", "parameters", "compute_points", "verification_steps", "init", "arms"}


def test_figure_draws_both_arms_from_the_init_per_split(tmp_path):
    drawn = plot_success_vs_compute(gp_study(), tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 5_000
    expected = {("id", "sft"): [(2.0, 40.0), (12.9, 55.0), (25.3, 70.0), (37.9, 80.0)],
                ("id", "rl"): [(2.0, 40.0), (13.1, 45.0), (26.0, 52.0), (38.2, 60.0)],
                ("ood-rule", "sft"): [(2.0, 11.5), (12.9, 8.0), (25.3, 5.0), (37.9, 3.4)],
                ("ood-rule", "rl"): [(2.0, 11.5), (13.1, 12.5), (26.0, 14.0), (38.2, 15.0)]}
    assert drawn.keys() == expected.keys()
    for key, series in expected.items():
        assert flat(drawn[key]) == pytest.approx(flat(series)), key


def test_recognition_figure_only_where_measured(tmp_path):
    drawn = plot_recognition_vs_compute(gp_study(), tmp_path / "r.png")
    assert drawn.keys() == {("id", "sft"), ("id", "rl")}
    assert flat(drawn[("id", "sft")]) == pytest.approx(flat([(2.0, 50.0), (12.9, 45.0),
                                                              (25.3, 40.0), (37.9, 30.0)]))
    assert flat(drawn[("id", "rl")]) == pytest.approx(flat([(2.0, 50.0), (13.1, 55.0),
                                                             (26.0, 60.0), (38.2, 70.0)]))
    without = gp_study().model_copy(update={"init": {}, "arms": {"rl": arm([13.0], {"id": [0.5]})}})
    assert plot_recognition_vs_compute(without, tmp_path / "none.png") == {}
    assert not (tmp_path / "none.png").exists()


def test_equal_compute_table_and_sentences(study_dir):
    report = write_study_report(study_dir)
    text = report.read_text()
    assert report == study_dir / "report" / "study.md"
    # init 115, RL 150, SFT 34 of 1000 solved: RL flips 35 episodes, SFT 81 (paired bars).
    assert ("| ood-rule | 11.5 ± 1.0 | 15.0 ± 1.1 | 3.4 ± 0.6 | 37.5: 38.2 / 37.9 | "
            "+3.5 ± 0.6 (paired) | -8.1 ± 0.9 (paired) |") in text
    assert ("| id | 40.0 ± 1.5 | 60.0 ± 1.5 | 80.0 ± 1.3 | 37.5: 38.2 / 37.9 | "
            "+20.0 ± 1.3 (paired) | +40.0 ± 1.5 (paired) |") in text
    assert ("- RL raised ood-rule success by 3.5 ± 0.6 points; SFT lowered it by 8.1 ± 0.9 "
            "points (init 11.5%, at 37.5 target GFLOPs).") in text
    assert "| rl | 37.5 | 38.2 | ood-rule | 15.0 ± 1.1 | 1000 | – | – |" in text
    assert "| sft | 12.5 | 12.9 | id | 55.0 ± 1.6 | 1000 | 45.0 | – |" in text
    # recognition beside success at the same points, where a split measured it
    assert "| id | 50.0 | 70.0 | 30.0 |\n| ood-rule | – | – | – |" in text
    for png in ("success_vs_compute.png", "recognition_vs_compute.png",
                "ood_gain_vs_verification_steps.png"):
        assert (study_dir / "report" / png).stat().st_size > 5_000
        assert f"({png})" in text


def test_a_change_inside_its_error_bar_is_called_so():
    study = gp_study()
    study.arms["rl"][-1] = point("ood-rule", 0.118, 38.2, 37.5)
    rows = {row.split: row for row in equal_compute(study)}
    change = rows["ood-rule"].gain("rl")
    assert change.paired and 100 * change.success == pytest.approx(0.3)
    from cluster.study.report import equal_compute_sentences
    assert equal_compute_sentences([rows["ood-rule"]])[0].startswith(
        "- RL left ood-rule success within error bars (+0.3 ± 0.2 points); SFT lowered it")


def test_ablation_gains_per_verification_step(tmp_path):
    gains = ablation_gains(gp_study())
    drawn = plot_gain_vs_verification_steps(gains, tmp_path / "a.png")
    # Paired bars: k flips of 1000 episodes, sqrt((k - n d^2) / (n - 1) / n).
    assert list(drawn) == ["ood-rule"]
    assert flat(drawn["ood-rule"]) == pytest.approx(
        [1, 0.5, 0.2232, 3, 2.2, 0.4641, 5, 3.5, 0.5815], abs=1e-4)
    assert (tmp_path / "a.png").stat().st_size > 5_000


def test_ablation_compares_at_the_compute_all_its_arms_reached(study_dir):
    study = gp_study()
    study.arms["rl-steps-3"] = study.arms["rl-steps-3"][:4]  # stopped after 25 GFLOPs
    gains = ablation_gains(study)["ood-rule"]
    assert [(g.arm, g.point.target_gflops, round(100 * g.change.success, 1)) for g in gains] == [
        ("rl-steps-1", 25.0, 0.4), ("rl-steps-3", 25.0, 1.5), ("rl", 25.0, 2.5)]
    write_study(study_dir, study)
    text = write_study_report(study_dir).read_text()
    assert "| 3 | rl-steps-3 | ood-rule | 25 (25.2) | 13.0 ± 1.1 | +1.5 ± 0.4 (paired) |" in text


def test_no_ablation_without_two_rl_arms(study_dir):
    study = gp_study()
    study.verification_steps = {"rl": 5}
    assert ablation_gains(study) == {}
    write_study(study_dir, study)
    text = write_study_report(study_dir).read_text()
    assert "verification steps" not in text
    assert not (study_dir / "report" / "ood_gain_vs_verification_steps.png").exists()


def virl_study() -> StudyResults:
    """V-IRL-L-like: per-step accuracy over 400 route positions, not episode success, is the
    measure (docs/protocol.md §Reported results: 80.8 -> 91.8 / 1.3)."""
    def vp(split: str, success: float, step: float, gflops: float, target: float | None):
        return point(split, success, gflops, target, n=50, task="virl", step=step, positions=400)
    return StudyResults(
        name="cpu-virl-l", task="virl", parameters=7_654_321, compute_points=[10.0],
        verification_steps={"rl": 2}, init={"ood-rule": vp("ood-rule", 0.2, 0.808, 1.0, None)},
        arms={"rl": [vp("ood-rule", 0.3, 0.918, 10.4, 10.0)],
              "sft": [vp("ood-rule", 0.0, 0.013, 10.2, 10.0)]})


def test_virl_reports_per_step_accuracy(tmp_path):
    write_study(tmp_path, virl_study())
    text = write_study_report(tmp_path).read_text()
    assert ("| ood-rule (per-step) | 80.8 ± 2.0 | 91.8 ± 1.4 | 1.3 ± 0.6 | 10: 10.4 / 10.2 | "
            "+11.0 ± 2.4 (unpaired) | -79.5 ± 2.0 (unpaired) |") in text
    assert "RL raised ood-rule per-step accuracy by 11.0 ± 2.4 points" in text
    assert "| rl | 10 | 10.4 | ood-rule | 30.0 ± 6.5 | 50 | – | 91.8 ± 1.4 (400 positions) |" in text
    drawn = plot_success_vs_compute(virl_study(), tmp_path / "v.png")
    assert flat(drawn[("ood-rule", "rl")]) == pytest.approx([1.0, 80.8, 10.4, 91.8])
    assert flat(drawn[("ood-rule", "sft")]) == pytest.approx([1.0, 80.8, 10.2, 1.3])


def virl_turn_study(rl_turn: float = 0.51) -> StudyResults:
    """V-IRL-L-like with turning positions counted apart: RL's per-step gain is all forward."""
    def vp(step: float, turn: float, target: float | None):
        return point("ood-rule", 0.0, 1.0 if target is None else target, target, n=50,
                     task="virl", step=step, positions=400, turn=turn)
    return StudyResults(
        name="cpu-virl-l", task="virl", parameters=7_654_321, compute_points=[10.0],
        verification_steps={"rl": 2}, init={"ood-rule": vp(0.57, 0.51, None)},
        arms={"rl": [vp(0.66, rl_turn, 10.0)], "sft": [vp(0.53, 0.44, 10.0)]})


def test_virl_reports_turning_positions_apart(tmp_path):
    """A per-step gain under the OOD rule can come from forward steps alone; the report shows
    the turning positions, where the rule is read, beside it."""
    write_study(tmp_path, virl_turn_study())
    text = write_study_report(tmp_path).read_text()
    assert ("| ood-rule | 51.0 ± 5.0 (100) | 51.0 ± 5.0 (100) | 44.0 ± 5.0 (100) | "
            "+0.0 ± 7.1 (unpaired) | -7.0 ± 7.0 (unpaired) |") in text
    write_study(tmp_path, virl_study())
    assert "turning positions alone" not in write_study_report(tmp_path).read_text()


def _broken(tmp_path, edit) -> tuple[int, str]:
    data = json.loads(gp_study().model_dump_json())
    edit(data)
    (tmp_path / "study.json").write_text(json.dumps(data))
    return revisor(["study-report", str(tmp_path)]), str(tmp_path / "study.json")


def test_missing_arms_is_named(tmp_path, capsys):
    code, path = _broken(tmp_path, lambda data: data.pop("arms"))
    err = capsys.readouterr().err
    assert code == 2 and path in err and "arms: Field required" in err
    assert "Traceback" not in err


def test_success_out_of_range_is_named(tmp_path, capsys):
    code, path = _broken(tmp_path, lambda data: data["arms"]["rl"][0].update(success=1.5))
    err = capsys.readouterr().err
    assert code == 2 and path in err
    assert "arms.rl.0.success: Input should be less than or equal to 1" in err


def test_point_off_the_compute_grid_is_named(tmp_path, capsys):
    code, _ = _broken(tmp_path, lambda data: data["arms"]["sft"][2].update(target_gflops=99.0))
    assert code == 2
    assert "arms.sft.2.target_gflops 99.0 is not a compute point" in capsys.readouterr().err


def test_missing_or_unreadable_study_json(tmp_path, capsys):
    assert revisor(["study-report", str(tmp_path)]) == 2
    assert f"{tmp_path / 'study.json'}: no such file" in capsys.readouterr().err
    (tmp_path / "study.json").write_text("{not json")
    assert revisor(["study-report", str(tmp_path)]) == 2
    assert "Invalid JSON" in capsys.readouterr().err


def test_cli_prints_the_report_path(study_dir, capsys):
    assert revisor(["study-report", str(study_dir)]) == 0
    assert str(study_dir / "report" / "study.md") in capsys.readouterr().out


def test_the_finding_is_tested_on_each_ood_split(study_dir):
    from cluster.study.compare import findings
    shown = findings(equal_compute(gp_study()))
    assert [(f.split, f.rl_keeps, f.sft_loses, f.rl_beats_sft) for f in shown] == [
        ("ood-rule", True, True, True)]
    # SFT 34 and RL 150 of 1000 solved: 116 paired flips, RL - SFT = +11.6 points.
    assert 100 * shown[0].rl_over_sft.success == pytest.approx(11.6)
    assert "- `ood-rule` shows the study's finding: RL keeps" in \
        write_study_report(study_dir).read_text()

    study = gp_study()
    study.arms["rl"][-1] = point("ood-rule", 0.100, 38.2, 37.5)   # RL lost 1.5 points
    lost, = findings(equal_compute(study))
    assert not lost.rl_keeps and lost.sft_loses and lost.rl_beats_sft and not lost.shown
    study.arms["sft"][-1] = point("ood-rule", 0.120, 37.9, 37.5)  # SFT gained
    both, = findings(equal_compute(study))
    assert not both.sft_loses and not both.rl_beats_sft
    write_study(study_dir, study)
    assert "- `ood-rule` does not show the finding: RL keeps the init's success no" in \
        write_study_report(study_dir).read_text()


def test_seeds_report_each_seed_and_the_finding_on_their_mean(tmp_path):
    from cluster.study.seeds import main as study_seeds
    dirs = []
    for seed, (rl, sft) in enumerate([(0.150, 0.034), (0.130, 0.050), (0.100, 0.060)]):
        study = gp_study()
        study.arms["rl"][-1] = point("ood-rule", rl, 38.2, 37.5)
        study.arms["sft"][-1] = point("ood-rule", sft, 37.9, 37.5)
        (tmp_path / f"seed-{seed}").mkdir()
        write_study(tmp_path / f"seed-{seed}", study)
        dirs.append(str(tmp_path / f"seed-{seed}"))
    assert study_seeds([*dirs, "--out", str(tmp_path / "seeds.md")]) == 0
    text = (tmp_path / "seeds.md").read_text()
    assert "| seed-2 | 11.5 | 10.0 | 6.0 | -1.5 | -5.5 | +4.0 | not shown |" in text
    # RL - Init: +3.5, +1.5, -1.5 -> mean +1.2, spread 2.5; it keeps the init's success.
    assert "| mean of 3 | 11.5 | 12.7 | 4.8 | +1.2 ± 1.5 (spread 2.5) |" in text
    assert "On the mean, `ood-rule` shows the study's finding" in text
    assert study_seeds([str(tmp_path / "missing")]) == 2


def test_seeds_report_turning_positions_apart(tmp_path):
    from cluster.study.seeds import seeds_report
    dirs = []
    for seed, rl_turn in enumerate([0.51, 0.55, 0.59]):
        dirs.append(tmp_path / f"seed-{seed}")
        dirs[-1].mkdir()
        write_study(dirs[-1], virl_turn_study(rl_turn))
    text = seeds_report(dirs)
    assert "`ood-rule`, turning positions alone:" in text
    assert "| seed-2 | 51.0 | 59.0 | 44.0 | +8.0 | -7.0 |" in text
    # RL - Init on turns: 0, +4, +8 -> mean +4.0, spread 4.0; the error bar is the seeds' own.
    assert "| mean of 3 | 51.0 | 55.0 | 44.0 | +4.0 ± 4.1 (spread 4.0) | -7.0 ± 4.1 (spread 0.0) |" in text
