"""A learner checkpoint holds the whole learner: after a resume, the next PPO update is the one
the uninterrupted run made (same loss, same weights, same counters)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import torch

from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from envs.general_points import GPConfig
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, OptimConfig, PPOConfig
from learner.rank import LearnerRank
from rollout_workers.episodes.seeds import SeedRange
from rollout_workers.tiny_models import save_tiny_model
from rollout_workers.worker import RolloutWorker

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model("lm", "0.5m", tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def batches(lm_path: Path) -> list[list[pa.RecordBatch]]:
    """Three batches of real GeneralPoints rollouts (two attempts per episode)."""
    worker = RolloutWorker("w0", RolloutEngineConfig(kind="hf", model=lm_path), RolloutConfig(
        episodes_in_flight=6, episodes_per_batch=6,
        sampling=SamplingSettings(temperature=1.0, max_tokens=16, seed=3)))
    source = SeedRange(task=GPConfig(max_attempts=2))
    return [list(worker.rollouts(source, max_episodes=6)) for _ in range(3)]


def _learner(path: Path) -> LearnerRank:
    return LearnerRank(LearnerConfig(
        model=ModelConfig(path=str(path)), optim=OptimConfig(lr=1e-3, schedule="linear"),
        total_updates=4,
        engine=DeepSpeedConfig(zero_stage=2, micro_batch_size=4),
        ppo=PPOConfig(ppo_epochs=2, num_minibatches=2, temperature=1.0)))


def test_the_update_after_resume_equals_the_uninterrupted_one(lm_path: Path, batches, tmp_path: Path) -> None:
    straight = _learner(lm_path)
    for batch in batches:
        expected = straight.update(batch)
    expected_weights = straight.export_weights()

    interrupted = _learner(lm_path)
    for batch in batches[:2]:
        interrupted.update(batch)
    saved = interrupted.save(tmp_path / "ckpt")
    assert Path(saved).name == "version-2"

    resumed = _learner(lm_path)
    state = resumed.load(tmp_path / "ckpt")
    assert state.policy_version == 2 and state.updates == 2
    torch.manual_seed(12345)  # whatever happened to the RNG meanwhile, the checkpoint restores it
    result = resumed.update(batches[2])
    assert result.policy_version == 3 == resumed.state.policy_version
    assert result.epoch_losses == pytest.approx(expected.epoch_losses, abs=1e-6)
    assert result.lr == pytest.approx(expected.lr)
    weights = resumed.export_weights()
    for name, value in expected_weights.items():
        assert torch.allclose(weights[name], value, atol=1e-6), name
    assert resumed.state.tokens_trained == straight.state.tokens_trained
