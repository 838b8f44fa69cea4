"""Every task of the study runs as a job: SFT warm start -> PPO with sequential revision ->
evaluation on its ID and OOD splits, through `python -m cluster.main` as a user starts it.

Each job is its task's settings file (configs/tasks/) cut down to a few steps, so that the
whole path runs (model built from its config, engine chosen for the model, images re-rendered
from references by the learner) and every split's metrics reach summary.json.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.results import read_evaluations, read_training_log
from tests.jobs import ROOT, run_job, summary

TASKS = ROOT / "configs" / "tasks"
TINY_RUN = ["sft.steps=4", "sft.train_episodes=8", "sft.batch_size=4", "training.updates=2",
            "training.episodes_per_update=4", "training.checkpoint_every=2", "evaluation.episodes=4",
            "rollout.episodes_in_flight=4", "rollout.episodes_per_batch=2", "learner.num_ranks=1"]
SHORT_ROUTES = ["max_attempts_per_position: 1", "max_forward_steps: 1",
                "world: {min_intersections: 1, max_intersections: 1}"]
"""V-IRL routes of a handful of positions: a V-IRL episode is one turn per position."""


def virl_overrides(config: str) -> list[str]:
    """The task and every split of a V-IRL settings file on short routes."""
    import yaml

    settings = yaml.safe_load((TASKS / config).read_text())
    short = ", ".join(SHORT_ROUTES)
    splits = ", ".join(f"{name}: {{{_flow(split)}, {short}}}"
                       for name, split in settings["evaluation"]["splits"].items())
    return [f"task={{{_flow(settings['task'])}, {short}}}", f"evaluation.splits={{{splits}}}"]


def _flow(mapping: dict) -> str:
    return ", ".join(f"{key}: {value}" for key, value in mapping.items())


CASES = {
    "gp-vl": ("gp_vl.yaml", [], {"id", "ood-rule", "ood-visual"}, "recognition_accuracy", "vllm"),
    "gp-vl-mllama": ("gp_vl.yaml", ["tiny_model.kind=mllama"], {"id", "ood-rule", "ood-visual"},
                     "recognition_accuracy", "hf (cpu), instead of vllm: vLLM cannot serve Mllama"),
    "virl-l": ("virl_l.yaml", virl_overrides("virl_l.yaml"), {"id", "ood-rule"},
               "step_accuracy", "vllm"),
    "virl-vl": ("virl_vl.yaml", virl_overrides("virl_vl.yaml"), {"id", "ood-rule", "ood-visual"},
                "step_accuracy", "vllm"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_the_task_runs_as_a_job_with_its_split_metrics(tmp_path: Path, case: str) -> None:
    config, overrides, splits, metric, engine = CASES[case]
    run = tmp_path / "run"
    run_job(["--config", str(TASKS / config), f"run_dir={run}", f"model={tmp_path / 'model'}",
             *TINY_RUN, *overrides], tmp_path / "job.log")
    rows = read_training_log(run)
    assert [row["step"] for row in rows] == [1, 2]
    # the learner re-rendered every image from its reference and scored exactly what the
    # engine sampled, turn after turn of sequential revision
    assert all(row["behaviour_logprob_gap_max"] < 1e-3 for row in rows), rows
    points = read_evaluations(run)
    assert {(p.phase, p.split) for p in points} == {
        (phase, split) for phase in ("init", "step-2") for split in splits}
    result = summary(run)
    for arm in ("sft", "rl"):  # the SFT init, then after PPO
        assert set(result[arm]) == splits
        for split, point in result[arm].items():
            assert point["n"] == 4 and 0.0 <= point[metric] <= 1.0, (arm, split, point)
    assert all(name.startswith(engine) for name in result["rollout_engine"]), result["rollout_engine"]
    assert result["parameters"] > 0 and result["gflops"]["total"] > 0
