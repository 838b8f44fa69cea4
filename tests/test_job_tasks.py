"""Every task of the study runs as a job: SFT warm start -> PPO with sequential revision ->
evaluation on its ID and OOD splits, through `python -m cluster.main` as a user starts it.

Each job is its task's settings file (configs/tasks/) cut down to a few steps, so that the
whole path runs (model built from its config, engine chosen for the model, images re-rendered
from references by the learner) and every split's metrics reach summary.json.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import yaml

from cluster.results.evaluations import read_evaluations, read_training_log
from cluster.settings.experiment import EvaluationConfig
from tests.jobs import ROOT, run_job, summary

TASKS = ROOT / "configs" / "tasks"
TINY_RUN = ["sft.steps=4", "sft.train_episodes=8", "sft.batch_size=4", "training.updates=2",
            "training.episodes_per_update=4", "training.checkpoint_every=2", "evaluation.episodes=4",
            "rollout.episodes_in_flight=4", "rollout.episodes_per_batch=2", "learner.num_ranks=1"]
SHORT_ROUTES = {"max_attempts_per_position": 1, "max_forward_steps": 1,
                "world": {"min_intersections": 1, "max_intersections": 1}}
"""V-IRL routes of a handful of positions: a V-IRL episode is one turn per position."""


def virl_overrides(config: str) -> list[str]:
    """The task and every split of a V-IRL settings file, on short routes."""
    settings = yaml.safe_load((TASKS / config).read_text())
    splits = {name: {**split, **SHORT_ROUTES} for name, split in settings["evaluation"]["splits"].items()}
    return [f"task={json.dumps({**settings['task'], **SHORT_ROUTES})}",
            f"evaluation.splits={json.dumps(splits)}"]


CASES = {
    "gp-vl": ("gp_vl.yaml", [], {"id", "ood-rule", "ood-visual"}, "recognition_accuracy", "vllm"),
    "gp-vl-mllama": ("gp_vl.yaml", ["tiny_model.kind=mllama"], {"id", "ood-rule", "ood-visual"},
                     "recognition_accuracy", "hf (cpu), instead of vllm: vLLM cannot serve Mllama"),
    "gp-vl-qwen2vl": ("gp_vl.yaml", ["tiny_model.kind=qwen2vl"], {"id", "ood-rule", "ood-visual"},
                      "recognition_accuracy", "hf (cpu), instead of vllm: vLLM cannot serve"),
    "virl-vl": ("virl_vl.yaml", virl_overrides("virl_vl.yaml"), {"id", "ood-rule", "ood-visual"},
                "step_accuracy", "vllm"),
}
"""case -> (settings file, overrides, evaluation splits, the split metric, engine description).
V-IRL-L runs as the learning test below."""


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_the_task_runs_as_a_job_with_its_split_metrics(tmp_path: Path, case: str) -> None:
    config, overrides, splits, metric, engine = CASES[case]
    run = tmp_path / "run"
    run_job(["--config", str(TASKS / config), f"run_dir={run}", f"model={tmp_path / 'model'}",
             *TINY_RUN, *overrides], tmp_path / "job.log")
    check_job(run, splits, metric, engine, episodes=4)


def check_job(run: Path, splits: set[str], metric: str, engine: str, episodes: int) -> None:
    """Two PPO updates trained on what the engine sampled; every split evaluated before and
    after them, with its metric, in summary.json."""
    rows = read_training_log(run)
    assert [row["step"] for row in rows] == [1, 2]
    # the learner re-rendered every image from its reference and scored exactly what the
    # engine sampled, turn after turn of sequential revision
    assert all(row["behaviour_logprob_gap_max"] < 1e-3 for row in rows), rows
    # ... reading each episode once (GeneralPoints: the whole dialogue; V-IRL: each run of
    # attempts between restarts), images included, never one row per turn for its images
    assert all(row["pack_fallback_vision"] == 0 for row in rows), rows
    if metric == "recognition_accuracy":
        assert all(row["packed_share"] == 1.0 for row in rows), rows
    points = read_evaluations(run)
    assert {(p.phase, p.split) for p in points} == {
        (phase, split) for phase in ("init", "step-2") for split in splits}
    result = summary(run)
    for arm in ("sft", "rl"):  # the SFT init, then after PPO
        assert set(result[arm]) == splits
        for split, point in result[arm].items():
            assert point["n"] == episodes and 0.0 <= point[metric] <= 1.0, (arm, split, point)
    assert all(name.startswith(engine) for name in result["rollout_engine"]), result["rollout_engine"]
    assert result["parameters"] > 0 and result["gflops"]["total"] > 0


@pytest.mark.slow
def test_virl_l_sft_teaches_the_routes_and_short_rl_keeps_it(tmp_path: Path) -> None:
    """V-IRL-L as configs/tasks/virl_l.yaml runs it, with 2 PPO updates: SFT on the
    ground-truth path of 100 routes lifts per-step accuracy on routes of an unseen city far
    above a policy that picks actions at random (its own observation and instruction, a random
    action: 17.5% with 2 attempts here), and RL does not lower it beyond its error bar."""
    run = tmp_path / "run"
    run_job(["--config", str(TASKS / "virl_l.yaml"), f"run_dir={run}",
             f"model={tmp_path / 'model'}", "training.updates=2", "learner.num_ranks=1"],
            tmp_path / "job.log")
    check_job(run, {"id", "ood-rule"}, "step_accuracy", "vllm", episodes=32)
    points = {(p.phase, p.split): p for p in read_evaluations(run)}
    init, after = points["init", "id"], points["step-2", "id"]
    chance = random_action_accuracy(yaml.safe_load((TASKS / "virl_l.yaml").read_text()), 32)
    assert init.step_accuracy > chance + 0.2, (init.step_accuracy, chance)
    bar = math.hypot(*(math.sqrt(p.step_accuracy * (1 - p.step_accuracy) / p.positions)
                       for p in (init, after)))
    assert after.step_accuracy >= init.step_accuracy - 2 * bar, (init, after)


def random_action_accuracy(settings: dict, episodes: int) -> float:
    """Per-step accuracy of the expert's answer with a uniformly random action, on the ID
    split's evaluation episodes: the chance level of the action choice."""
    from contracts.tasks import VIRLConfig
    from envs.registry import make_episode
    from envs.virl import COMPASS

    task = VIRLConfig.model_validate(settings["evaluation"]["splits"]["id"])
    first = EvaluationConfig().seed  # evaluation episode i plays seed first + i
    actions = ["forward()", "stop()", *(f"turn_direction({d})" for d in COMPASS)]
    rng, solved, positions = random.Random(0), 0, 0
    for seed in range(first, first + episodes):
        episode = make_episode(task, seed)
        positions += len(episode.steps)
        while not episode.done:
            answer = json.loads(episode.expert_answer())
            episode.submit(json.dumps({**answer, "action": rng.choice(actions)}))
        solved += episode.solved_positions
    return solved / positions
