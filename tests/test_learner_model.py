"""The policy + value model: token scores match a plain forward, values sit at the last prompt
token, the critic can be separate, vision-language checkpoints load and train by path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contracts.tasks import GPConfig
from learner.batch import collate_turns
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, PPOConfig
from learner.model import load_policy
from learner.rank import LearnerRank
from learner.sft import as_turns, demonstrations
from learner.vision import VisionInputs
from model_inputs.vision import EXCLUDED_LOGIT_BIAS
from rollout_workers.tiny_models import save_tiny_model
from tests.fixtures_models import ppo_on_worker_rollouts

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model("lm", "0.5m", tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def vlm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model("vlm", "0.5m", tmp_path_factory.mktemp("vlm"))


def _turns(path: Path, task: GPConfig, seeds: range, processor: bool = False):
    from transformers import AutoProcessor, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    chat = AutoProcessor.from_pretrained(path) if processor else None
    return as_turns(demonstrations(task, seeds, tokenizer, chat))


def _plain_logprobs(backbone, micro, temperature: float, excluded: tuple[int, ...] = (),
                    **extra) -> torch.Tensor:
    """What the policy computes, written out; `excluded` tokens get the engines' logit bias."""
    logits = backbone(input_ids=micro.input_ids, attention_mask=micro.attention_mask, **extra).logits
    logits[..., list(excluded)] += EXCLUDED_LOGIT_BIAS
    picked = logits[micro.logit_rows, micro.logit_cols] / temperature
    return torch.log_softmax(picked, -1).gather(-1, micro.targets[:, None]).squeeze(-1)


def test_scores_match_a_plain_forward_and_values_ignore_the_answer(lm_path: Path) -> None:
    model = load_policy(ModelConfig(path=str(lm_path))).eval()
    torch.nn.init.normal_(model.value_head.net[-1].weight)  # a non-trivial head
    turns = _turns(lm_path, GPConfig(), range(3))
    # the same prompt twice, with two different answers
    turns.prompt_ids[1] = turns.prompt_ids[0]
    micro = collate_turns(turns, [0, 1, 2], pad_id=0)
    with torch.no_grad():
        logprobs, entropy, values = model(**micro.model_inputs(), temperature=0.2)
        expected = _plain_logprobs(model.backbone, micro, 0.2)
    assert torch.allclose(logprobs, expected, atol=1e-5)
    assert values.shape == (3,) and (entropy >= 0).all()
    assert values[0].item() == pytest.approx(values[1].item(), abs=1e-6)
    assert values[0].item() != pytest.approx(values[2].item(), abs=1e-6)


def test_separate_critic_keeps_value_gradients_out_of_the_policy(lm_path: Path) -> None:
    model = load_policy(ModelConfig(path=str(lm_path), critic="separate"))
    assert model.critic_backbone is not None
    micro = collate_turns(_turns(lm_path, GPConfig(), range(2)), [0, 1], pad_id=0)
    _, _, values = model(**micro.model_inputs())
    values.sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert any(p.grad is not None for p in model.critic_backbone.parameters())


def test_vision_language_policy_scores_images_by_reference(vlm_path: Path) -> None:
    model = load_policy(ModelConfig(path=str(vlm_path))).eval()
    task = GPConfig(vision=True)
    turns = VisionInputs(str(vlm_path)).expand(_turns(vlm_path, task, range(2), processor=True))
    assert turns.image_refs[0][0].startswith("gp:")
    micro = collate_turns(turns, [0, 1], pad_id=0)
    assert micro.vision_inputs["pixel_values"].shape[0] == 2
    with torch.no_grad():
        logprobs, _, values = model(**micro.model_inputs(), temperature=1.0)
        excluded = tuple(model.excluded_token_ids)
        expected = _plain_logprobs(model.backbone, micro, 1.0, excluded, **micro.vision_inputs)
        blank = _plain_logprobs(model.backbone, micro, 1.0, excluded,
                                pixel_values=torch.zeros_like(micro.vision_inputs["pixel_values"]))
    assert torch.allclose(logprobs, expected, atol=1e-5)
    assert not torch.allclose(logprobs, blank, atol=1e-5)  # the pixels matter
    assert values.shape == (2,)
    # the image placeholder is no action: the policy never emits it, as the engines never sample it
    assert excluded == (VisionInputs(str(vlm_path)).processor.tokenizer.convert_tokens_to_ids("<image>"),)


@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
def test_reference_model_exists_only_with_a_kl_term(lm_path: Path, kl_coef: float) -> None:
    config = LearnerConfig(model=ModelConfig(path=str(lm_path)), engine=DeepSpeedConfig(zero_stage=0),
                           ppo=PPOConfig(kl_coef=kl_coef))
    reference = LearnerRank(config).trainer.reference
    if kl_coef == 0:
        assert reference is None
    else:
        assert not any(p.requires_grad for p in reference.parameters())


def test_vision_language_ppo_update_matches_the_sampler(vlm_path: Path) -> None:
    """GP-VL rollouts from the HF engine: the learner rebuilds the pixels from image refs and
    scores the sampled tokens exactly as the engine sampled them, then trains."""
    from contracts.engine_config import RolloutEngineConfig

    _, _, stats = ppo_on_worker_rollouts(RolloutEngineConfig(kind="hf", model=vlm_path), vlm_path)
    assert stats.episodes == 3 and stats.policy_version == 1
    assert stats.behaviour_logprob_gap_max < 1e-3
    # Every turn shows the episode's one hand: each episode is read as one sequence, with the
    # last turn's image inputs, and still scores what the engine sampled (the gap above).
    assert stats.packed_share == 1.0 and stats.pack_fallback == {}
    assert stats.turns > stats.episodes  # revisions to pack
