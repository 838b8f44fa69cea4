"""A setting two components share is written once in a job config: unset copies are filled
in from their source, a disagreeing copy is an error naming both fields, and the learning
rate schedule of the RL phase really runs over training.updates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError, dump_settings, load_settings
from learner.config import LearnerConfig, ModelConfig, OptimConfig
from learner.engine import TrainEngine
from learner.optim import make_optimizer, make_scheduler
from tests.process_group import own_process_group  # noqa: F401 (ends the learner's group)

DEMO = Path(__file__).parents[1] / "configs" / "cpu_demo.yaml"
BARE = ["model=some/model", "learner.optim.lr=0.01"]


def bare(*overrides: str) -> ExperimentConfig:
    return load_settings(ExperimentConfig, None, [*BARE, *overrides])


def problem(*overrides: str, path: Path | None = None) -> str:
    with pytest.raises(SettingsError) as error:
        load_settings(ExperimentConfig, path, [*(BARE if path is None else []), *overrides])
    return str(error.value)


def test_unset_copies_are_filled_from_their_source():
    config = bare("training.updates=7", "engine.max_model_len=512", "learner.ppo.temperature=0.7")
    assert str(config.engine.model) == config.learner.model.path == "some/model"
    assert config.learner.total_updates == 7
    assert config.learner.total_optimizer_steps == 7 * config.learner.ppo.ppo_epochs \
        * config.learner.ppo.num_minibatches
    assert config.rollout.max_dialogue_tokens == 512
    assert config.rollout.sampling.temperature == 0.7


def test_a_temperature_set_on_either_side_sets_both():
    assert bare("rollout.sampling.temperature=0.5").learner.ppo.temperature == 0.5
    neither = bare()
    assert neither.rollout.sampling.temperature == neither.learner.ppo.temperature == 0.2


def test_sft_gets_the_model_and_the_task():
    config = load_settings(ExperimentConfig, DEMO)
    assert config.sft.model.path == config.learner.model.path == config.model
    assert config.sft.task == config.task


@pytest.mark.parametrize("override,copy,source", [
    ("engine.model=other", "engine.model (other)", "model (some/model)"),
    ("learner.model.path=other", "learner.model.path (other)", "model (some/model)"),
    ("learner.total_updates=3", "learner.total_updates (3)", "training.updates (20)"),
    ("rollout.sampling.temperature=0.9", "rollout.sampling.temperature (0.9)",
     "learner.ppo.temperature (0.3)"),
])
def test_a_disagreeing_copy_is_an_error_at_its_field_naming_both(override, copy, source):
    message = problem("learner.ppo.temperature=0.3", override)
    field = copy.split(" ")[0]
    assert f"  {field}: {copy} disagrees with {source}" in message
    assert message.count("\n") == 1


def test_sft_model_path_must_agree_and_a_dialogue_must_fit_the_engine():
    assert "sft.model.path (other) disagrees with model (runs/cpu-demo/model)" in \
        problem("sft.model.path=other", path=DEMO)
    assert "rollout.max_dialogue_tokens (4096) exceeds engine.max_model_len (2048)" in \
        problem("rollout.max_dialogue_tokens=4096")
    assert bare("rollout.max_dialogue_tokens=1024").rollout.max_dialogue_tokens == 1024


def test_an_invalid_source_is_reported_once_at_the_source():
    message = problem("training.updates=-1")
    assert "training.updates:" in message and "learner.total_updates" not in message


def test_stored_settings_hold_each_setting_once_and_follow_an_edited_source(tmp_path):
    config = load_settings(ExperimentConfig, DEMO)
    dump_settings(config, tmp_path / "config.yaml")
    stored = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "model" not in stored["engine"] and "total_updates" not in stored["learner"]
    assert load_settings(ExperimentConfig, tmp_path / "config.yaml") == config
    resumed = load_settings(ExperimentConfig, tmp_path / "config.yaml",
                            ["training.updates=40", "model=elsewhere"])
    assert resumed.learner.total_updates == 40 and str(resumed.engine.model) == "elsewhere"
    arm = ExperimentConfig.model_validate({**config.model_dump(), "model": "sft/checkpoint"})
    assert arm.learner.model.path == str(arm.engine.model) == "sft/checkpoint"


def test_a_decaying_schedule_without_a_length_is_an_error():
    with pytest.raises(ValueError, match="needs learner.total_updates"):
        LearnerConfig(model=ModelConfig(path="m"), optim=OptimConfig(schedule="cosine"))
    model = nn.Linear(2, 1)
    optimizer = make_optimizer(model, OptimConfig(schedule="linear"))
    with pytest.raises(ValueError, match="needs the run's total optimizer steps"):
        make_scheduler(optimizer, OptimConfig(schedule="linear"), None)


def test_a_cosine_schedule_in_the_rl_phase_decays_over_training_updates():
    """The RL learner's own DeepSpeed engine, built from a job config that names no length."""
    config = load_settings(ExperimentConfig, DEMO, [
        "learner.optim.schedule=cosine", "training.updates=3", "learner.engine.zero_stage=0"])
    learner = config.learner
    steps = learner.total_optimizer_steps
    assert steps == 3 * learner.ppo.ppo_epochs * learner.ppo.num_minibatches
    torch.manual_seed(0)
    engine = TrainEngine(nn.Linear(4, 1), learner.optim, learner.engine, steps)
    rates = [engine.lr]
    for _ in range(steps):
        engine.backward(engine(torch.randn(2, 4)).pow(2).mean())
        engine.step()
        rates.append(engine.lr)
    assert rates[0] == pytest.approx(learner.optim.lr)
    assert rates[-1] < rates[0] / 100
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:], strict=False))
