"""Shared test helpers for tiny models and engines: checkpoints on disk, GeneralPoints prompts
as the engines see them, the reference log-probs a learner would compute, and a check for
leaked shared-memory segments."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from contracts.engine import GenerationRequest
from contracts.multimodal import (
    EXCLUDED_LOGIT_BIAS,
    hf_vision_inputs,
    placeholder_ids,
    token_type_inputs,
)
from envs.general_points import GPConfig, make_episode
from rollout_workers.tiny_models.build import save_tiny_model

SHM = Path("/dev/shm")


def save_model(root: Path, kind: str = "lm", size: str = "0.5m") -> Path:
    return save_tiny_model(kind, size, root / f"tiny-{kind}-{size}")


def gp_request(tokenizer: Any, seed: int, vision: bool = False) -> GenerationRequest:
    """The first turn of a GeneralPoints episode, rendered with the chat template."""
    observation = make_episode(GPConfig(vision=vision), seed).observe()
    content: Any = observation.text
    if vision:
        content = [{"type": "image"}, {"type": "text", "text": observation.text}]
    ids = tokenizer.apply_chat_template([{"role": "user", "content": content}],
                                        add_generation_prompt=True)["input_ids"]
    return GenerationRequest(prompt_ids=ids, images=observation.images)


@torch.no_grad()
def reference_logprobs(model: Any, request: GenerationRequest, tokens: Sequence[int],
                       temperature: float, processor: Any = None) -> torch.Tensor:
    """What the learner computes: log_softmax(logits / T) at each sampled token (T = 1 for
    greedy decoding), from one unpadded forward pass over prompt + answer; a vision model's
    image placeholder gets the logit bias that makes it impossible, as in the engines."""
    prompt, extra = list(request.prompt_ids), {}
    if processor is not None:
        prompt, extra = hf_vision_inputs(processor, prompt, request.images)
    ids = torch.tensor([prompt + list(tokens)])
    logits = model(input_ids=ids, **extra, **token_type_inputs(model, ids, extra)).logits
    logits = logits[0, len(prompt) - 1 : -1].float()
    if processor is not None:
        logits[:, placeholder_ids(processor)] += EXCLUDED_LOGIT_BIAS
    scaled = logits / (temperature if temperature > 0 else 1.0)
    return scaled.log_softmax(-1).gather(-1, torch.tensor(tokens).unsqueeze(-1)).squeeze(-1)


def shm_segments() -> set[str]:
    return set(os.listdir(SHM))


def leaked_segments(before: set[str]) -> set[str]:
    """Segments created since `before` that no other process has open or mapped: left behind
    by this process or its dead children. (Segments of other programs running on the machine
    at the same time are held by those programs.)"""
    return {name for name in shm_segments() - before if not _held_elsewhere(SHM / name)}


def _held_elsewhere(path: Path) -> bool:
    target = str(path)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            if target in Path(f"/proc/{pid}/maps").read_text():
                return True
            fds = Path(f"/proc/{pid}/fd")
            if any(os.readlink(fd).startswith(target) for fd in fds.iterdir()):
                return True
        except OSError:
            continue
    return False


def ppo_on_worker_rollouts(engine: Any, model: Path) -> tuple[Any, Any, Any]:
    """Three two-attempt GP-VL episodes played by a RolloutWorker on `engine` (its settings),
    then one PPO update of a learner on `model` at the sampling temperature: (worker, learner,
    update stats). The learner rebuilds every image from its reference and scores the sampled
    tokens; the stats' behaviour_logprob_gap_max says how far from the engine it was."""
    from contracts.engine import SamplingSettings
    from contracts.rollout_config import RolloutConfig
    from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, PPOConfig
    from learner.rank import LearnerRank
    from rollout_workers.episodes.seeds import SeedRange
    from rollout_workers.worker import RolloutWorker

    worker = RolloutWorker("w-vl", engine, RolloutConfig(
        episodes_in_flight=3, episodes_per_batch=3,
        sampling=SamplingSettings(temperature=0.7, max_tokens=12, seed=2)))
    batches = list(worker.rollouts(SeedRange(task=GPConfig(vision=True, max_attempts=2)),
                                   max_episodes=3))
    learner = LearnerRank(LearnerConfig(
        model=ModelConfig(path=str(model)), engine=DeepSpeedConfig(zero_stage=0),
        ppo=PPOConfig(temperature=0.7, ppo_epochs=1, num_minibatches=1)))
    return worker, learner, learner.update(batches)
