"""SFT on expert demonstrations: the loss falls, the model comes to reproduce the expert's
answers exactly, and the periodic checkpoints are ordinary Hugging Face checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from contracts.dialogue import DialogueTokens
from envs.general_points import GPConfig
from learner.config import DeepSpeedConfig, ModelConfig, OptimConfig, SFTConfig
from learner.sft import SFTTrainer, demonstrations
from rollout_workers.tiny_models import save_tiny_model

pytestmark = pytest.mark.slow
torch.set_num_threads(1)
SHORT_PROMPT = "$cards Make $target.\n"
"""A terse prompt template (a GPConfig option): the same task in a third of the tokens."""


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> GPConfig:
    template = tmp_path_factory.mktemp("prompt") / "short.txt"
    template.write_text(SHORT_PROMPT)
    return GPConfig(prompt_template=template)


def test_demonstrations_are_tokenised_like_rollout_prompts(tmp_path: Path) -> None:
    path = save_tiny_model("lm", "0.5m", tmp_path / "lm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    (demo,) = demonstrations(GPConfig(), range(5, 6), tokenizer)
    dialogue = DialogueTokens.from_tokenizer(tokenizer)
    from envs.registry import make_episode

    episode = make_episode(GPConfig(), 5)
    assert demo.prompt_ids == dialogue.opening(episode.observe())
    assert demo.answer == episode.expert_answer()
    # the answer ends with the end-of-turn token the engines stop on, and nothing else
    assert demo.answer_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(demo.answer_ids, skip_special_tokens=True) == demo.answer


def test_sft_lowers_loss_raises_exact_match_and_checkpoints(task: GPConfig, tmp_path: Path) -> None:
    path = save_tiny_model("lm", "0.5m", tmp_path / "lm")
    config = SFTConfig(
        model=ModelConfig(path=str(path)), task=task, train_episodes=16,
        eval_seed_start=0, eval_episodes=16,  # evaluate on the demonstrations: memorisation
        optim=OptimConfig(lr=3e-3, schedule="cosine", warmup_ratio=0.03),
        engine=DeepSpeedConfig(zero_stage=2, micro_batch_size=16), batch_size=16, steps=90,
        eval_every=45, checkpoint_every=45, output_dir=tmp_path / "sft", max_answer_tokens=80)
    trainer = SFTTrainer(config)
    before = trainer.evaluate()
    result = trainer.run()
    after = result.evaluations[-1]
    assert before["exact_match"] == 0.0
    assert after["exact_match"] >= 0.5, after["samples"]
    assert after["eval_loss"] < 0.1 * before["eval_loss"]
    assert result.steps[-1].loss < 0.1 * result.steps[0].loss
    assert result.steps[1].lr > result.steps[-1].lr  # the cosine schedule decays
    assert [Path(c).name for c in result.checkpoints] == ["step-45", "step-90"]
    saved = AutoModelForCausalLM.from_pretrained(result.checkpoints[-1])
    AutoTokenizer.from_pretrained(result.checkpoints[-1])
    trained = dict(trainer.backbone.named_parameters())
    for name, param in saved.named_parameters():
        assert torch.equal(param, trained[name].detach()), name


def test_two_ranks_on_ray_train_like_one(task: GPConfig, tmp_path: Path) -> None:
    """Data-parallel SFT: each rank takes half of every global batch, the update is the same."""
    from learner.group import run_sft_on_ranks
    from rollout_workers.ray_runtime import local_cluster

    path = save_tiny_model("lm", "0.5m", tmp_path / "lm")
    config = SFTConfig(
        model=ModelConfig(path=str(path)), task=task, train_episodes=24, eval_episodes=0,
        optim=OptimConfig(lr=3e-3), engine=DeepSpeedConfig(zero_stage=2, micro_batch_size=4),
        batch_size=8, steps=3, eval_every=0, checkpoint_every=0)
    one = SFTTrainer(config).run()
    with local_cluster(num_cpus=2):
        two = run_sft_on_ranks(config, num_ranks=2)
    assert [s.loss for s in two.steps] == pytest.approx([s.loss for s in one.steps], rel=1e-5)
    assert [s.grad_norm for s in two.steps] == pytest.approx([s.grad_norm for s in one.steps],
                                                             rel=1e-5)
    assert two.steps[-1].tokens == one.steps[-1].tokens


def test_vision_language_sft_runs_on_rendered_cards(tmp_path: Path) -> None:
    """GP-VL: prompts carry an image placeholder, the learner re-renders the cards by reference."""
    path = save_tiny_model("vlm", "0.5m", tmp_path / "vlm")
    config = SFTConfig(
        model=ModelConfig(path=str(path)), task=GPConfig(vision=True), train_episodes=4,
        eval_seed_start=0, eval_episodes=2, optim=OptimConfig(lr=3e-3),
        engine=DeepSpeedConfig(zero_stage=0, micro_batch_size=4), batch_size=4, steps=4,
        eval_every=4, checkpoint_every=0, max_answer_tokens=8)
    trainer = SFTTrainer(config)
    assert trainer.train_set.vision is not None
    assert trainer.train_demos[0].image_refs[0].startswith("gp:")
    result = trainer.run()
    assert result.steps[-1].loss < result.steps[0].loss
    assert {"eval_loss", "exact_match", "success_rate"} <= set(result.evaluations[-1])
