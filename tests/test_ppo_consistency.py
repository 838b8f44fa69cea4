"""Sampler and learner agree: with behaviour log-probs from the vLLM CPU engine and no update
yet, the learner's log-probs of the same tokens give a PPO ratio of 1 within tolerance."""

from __future__ import annotations

import math

import pytest
import ray
import torch

from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from envs.general_points import GPConfig
from learner.batch import collate_turns, turns_from_record_batches
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, PPOConfig
from learner.group import LearnerGroup
from learner.model import load_policy
from rollout_workers.episodes.seeds import SeedRange
from rollout_workers.ray_runtime import local_cluster
from rollout_workers.tiny_models import save_tiny_model
from rollout_workers.worker import remote_worker

pytestmark = pytest.mark.slow
torch.set_num_threads(1)
TEMPERATURE = 0.2  # the study's training temperature: sharp distributions, a strict check
TOLERANCE = 2e-3  # |log ratio| per token: the ratio is within 0.2% of 1


@pytest.fixture(scope="module")
def vllm_batches(tmp_path_factory: pytest.TempPathFactory):
    path = save_tiny_model("lm", "0.5m", tmp_path_factory.mktemp("lm"))
    with local_cluster(num_cpus=2):
        worker = remote_worker("w-vllm", RolloutEngineConfig(
            kind="vllm", model=path, max_model_len=1024, kv_cache_bytes=32 << 20), RolloutConfig(
            episodes_in_flight=8, episodes_per_batch=4,
            sampling=SamplingSettings(temperature=TEMPERATURE, max_tokens=24, seed=7)))
        refs = list(worker.rollouts.remote(SeedRange(task=GPConfig(max_attempts=2), count=8)))
        ray.get(refs)
        ray.get(worker.shutdown.remote())
        ray.kill(worker)
        yield path, refs


def test_learner_logprobs_match_vllm_before_any_update(vllm_batches) -> None:
    path, refs = vllm_batches
    group = LearnerGroup(LearnerConfig(
        model=ModelConfig(path=str(path)), engine=DeepSpeedConfig(zero_stage=2, micro_batch_size=8),
        ppo=PPOConfig(temperature=TEMPERATURE, ppo_epochs=1, num_minibatches=1)))
    try:
        stats = group.update(refs).stats
    finally:
        group.shutdown()
    assert stats.episodes == 8 and stats.turns > 8
    assert stats.behaviour_logprob_gap_max < TOLERANCE
    assert abs(math.exp(stats.behaviour_logprob_gap_max) - 1) < 2 * TOLERANCE


def test_a_temperature_mismatch_would_show(vllm_batches) -> None:
    """The same check at the wrong temperature fails by far: the tolerance has teeth."""
    path, refs = vllm_batches
    turns = turns_from_record_batches(ray.get(refs))
    model = load_policy(ModelConfig(path=str(path))).eval()
    micro = collate_turns(turns, list(range(len(turns))), pad_id=0)
    behaviour = torch.cat([torch.tensor(turns.behaviour_logprobs[i]) for i in range(len(turns))])
    with torch.no_grad():
        matched, _, _ = model(**micro.model_inputs(), temperature=TEMPERATURE)
        mismatched, _, _ = model(**micro.model_inputs(), temperature=1.0)
    assert (matched - behaviour).abs().max() < TOLERANCE
    assert (mismatched - behaviour).abs().max() > 100 * TOLERANCE
