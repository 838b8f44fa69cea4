"""The tiny Qwen2-VL: checkpoint by path, image placeholders, M-RoPE inputs through the HF engine
and the learner, and vLLM's refusal (with its reason) where torchvision is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoTokenizer
from transformers.utils import is_torchvision_available

from contracts.engine import GenerationRequest, SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from learner.batch import collate
from learner.config import ModelConfig
from learner.model import load_policy
from model_inputs.vision import hf_vision_inputs, load_processor
from rollout_workers.engine import make_engine
from rollout_workers.tiny_models import build_model, count_parameters
from rollout_workers.tiny_models.qwen2vl import IMAGE_PAD, IMAGE_PLACEHOLDER
from tests.fixtures_models import gp_request, reference_logprobs, save_model

TOKENS_PER_HAND = 4
"""A GeneralPoints hand (tiles layout) at the 0.5m preset: 56x56 pixels, 4x4 patches, 2x2
merged: one token per card."""


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("models"), "qwen2vl")


@pytest.fixture(scope="module")
def processor(qwen_dir: Path):
    return load_processor(qwen_dir)


@pytest.fixture(scope="module")
def model(qwen_dir: Path):
    return AutoModelForImageTextToText.from_pretrained(qwen_dir).eval()


@pytest.mark.parametrize(("size", "low", "high", "head_dim"),
                         [("0.5m", 0.6e6, 0.9e6, 32), ("5m", 5e6, 6.5e6, 64)])
def test_presets_have_their_size_and_vllm_cpu_head_sizes(size: str, low: float, high: float,
                                                         head_dim: int) -> None:
    model, _ = build_model("qwen2vl", size)
    text = model.config.text_config
    assert low <= count_parameters(model) <= high
    assert text.hidden_size // text.num_attention_heads == head_dim
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2


def test_checkpoint_loads_by_path_as_a_qwen2_vl(qwen_dir: Path, processor, model) -> None:
    tokenizer = AutoTokenizer.from_pretrained(qwen_dir)
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert processor.image_token == IMAGE_PAD and processor.tokenizer.chat_template
    config = json.loads((qwen_dir / "tokenizer_config.json").read_text())
    assert config["processor_class"] == "Qwen2VLProcessor"  # full processor where torchvision is
    assert json.loads((qwen_dir / "preprocessor_config.json").read_text())[
        "image_processor_type"] == "Qwen2VLImageProcessor"


def test_prompts_hold_qwens_placeholder_and_turns_concatenate(processor) -> None:
    tokenizer = processor.tokenizer
    request = gp_request(tokenizer, 0, vision=True)
    assert IMAGE_PLACEHOLDER + "\n" in tokenizer.decode(request.prompt_ids)
    assert request.prompt_ids.count(tokenizer.convert_tokens_to_ids(IMAGE_PAD)) == 1
    turns = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Cards?"}]},
             {"role": "assistant", "content": "24"}, {"role": "user", "content": "Wrong."}]
    whole = tokenizer.apply_chat_template(turns, add_generation_prompt=True)["input_ids"]
    first = tokenizer.apply_chat_template(turns[:1], add_generation_prompt=True)["input_ids"]
    rest = tokenizer.encode("24</s><|user|>\nWrong.</s><|assistant|>\n")
    assert whole == first + rest


def test_each_image_pad_expands_to_its_merged_patches(processor) -> None:
    request = gp_request(processor.tokenizer, 3, vision=True)
    ids, tensors = hf_vision_inputs(processor, request.prompt_ids, request.images)
    pad = processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    assert set(tensors) == {"pixel_values", "image_grid_thw"}
    assert tensors["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert tensors["pixel_values"].shape == (16, 3 * 2 * 14 * 14)
    assert len(ids) == len(request.prompt_ids) - 1 + TOKENS_PER_HAND
    start = ids.index(pad)
    assert ids[start : start + TOKENS_PER_HAND] == [pad] * TOKENS_PER_HAND
    assert processor.tokenizer.decode(ids[start - 1 : start + TOKENS_PER_HAND + 1]).replace(
        IMAGE_PAD, "") == IMAGE_PLACEHOLDER.replace(IMAGE_PAD, "")


def requests_of_different_lengths(tokenizer) -> list[GenerationRequest]:
    """First turns with an image, a second turn (longer: padding in every batch) and a text-only
    prompt (M-RoPE positions with no image in the row)."""
    first = [gp_request(tokenizer, seed, vision=True) for seed in range(2)]
    feedback = tokenizer.encode('{"formula": "1+2"}</s><|user|>\nWrong, try again.</s><|assistant|>\n')
    second = GenerationRequest(prompt_ids=[*first[0].prompt_ids, *feedback], images=first[0].images)
    text = GenerationRequest(prompt_ids=tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say 24."}], add_generation_prompt=True)["input_ids"])
    return [*first, second, text]


def test_hf_engine_batches_like_single_prompts_and_like_the_learners_forward(
    qwen_dir: Path, processor, model
) -> None:
    engine = make_engine(RolloutEngineConfig(kind="hf", model=qwen_dir))
    requests = requests_of_different_lengths(processor.tokenizer)
    for sampling in (SamplingSettings(temperature=0.0, max_tokens=10),
                     SamplingSettings(temperature=1.0, max_tokens=10, seed=4)):
        batched = engine.generate(requests, sampling)
        for request, generation in zip(requests, batched, strict=True):
            if sampling.temperature == 0.0:
                alone = engine.generate([request], sampling)[0]
                assert alone.token_ids == generation.token_ids
            expected = reference_logprobs(model, request, generation.token_ids,
                                          sampling.temperature, processor)
            torch.testing.assert_close(torch.tensor(generation.logprobs), expected,
                                       atol=1e-3, rtol=0)


def test_learner_scores_right_padded_rows_like_one_unpadded_pass(
    qwen_dir: Path, processor, model
) -> None:
    policy = load_policy(ModelConfig(path=str(qwen_dir))).eval()
    requests = requests_of_different_lengths(processor.tokenizer)
    answers = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14]]
    prompts, vision = [], []
    for request in requests:
        ids, tensors = (hf_vision_inputs(processor, request.prompt_ids, request.images)
                        if request.images else (list(request.prompt_ids), {}))
        prompts.append(ids)
        vision.append(tensors)
    batch = collate(prompts, answers, list(range(len(answers))), pad_id=0, vision=vision)
    with torch.no_grad():
        logprobs, _, values = policy(**batch.model_inputs())
    expected = torch.cat([reference_logprobs(model, request, answer, 1.0, processor)
                          for request, answer in zip(requests, answers, strict=True)])
    torch.testing.assert_close(logprobs, expected, atol=1e-4, rtol=0)
    assert values is not None and values.shape == (len(answers),)


@pytest.mark.slow
@pytest.mark.skipif(is_torchvision_available(), reason="the refusal is for CPU installs")
def test_vllm_refuses_without_torchvision_and_the_hf_engine_serves_instead(qwen_dir: Path) -> None:
    """vLLM's qwen2_vl module imports transformers' torchvision image processor, and its
    Transformers backend needs the full processor, whose video part needs torchvision too."""
    from rollout_workers.engine.vllm_engine import VLLMCannotServe, VLLMEngine, _native_importable

    assert not _native_importable("Qwen2VLForConditionalGeneration")
    config = RolloutEngineConfig(model=qwen_dir, kv_cache_bytes=64 << 20, max_model_len=1024)
    with pytest.raises(VLLMCannotServe, match="Torchvision"):
        VLLMEngine(config)
    # a config that names vLLM gets the HF engine instead, with the reason in its report
    engine = make_engine(config)
    assert type(engine).__name__ == "HFEngine"
    assert "instead of vllm" in engine.stats().backend and "Torchvision" in engine.stats().backend


@pytest.mark.slow
def test_sft_trains_on_rendered_cards_and_saves_a_loadable_checkpoint(qwen_dir: Path,
                                                                      tmp_path: Path) -> None:
    """The learner path end to end: re-rendered images, M-RoPE inputs in training and in the
    greedy evaluation, and a checkpoint every part loads back by path."""
    from contracts.tasks import GPConfig
    from learner.config import DeepSpeedConfig, OptimConfig, SFTConfig
    from learner.sft import SFTTrainer

    config = SFTConfig(
        model=ModelConfig(path=str(qwen_dir)), task=GPConfig(vision=True), train_episodes=4,
        eval_seed_start=0, eval_episodes=2, optim=OptimConfig(lr=3e-3),
        engine=DeepSpeedConfig(zero_stage=0, micro_batch_size=4), batch_size=4, steps=4,
        eval_every=4, checkpoint_every=0, max_answer_tokens=8, output_dir=tmp_path)
    result = SFTTrainer(config).run()
    assert result.steps[-1].loss < result.steps[0].loss
    assert {"eval_loss", "exact_match", "success_rate"} <= set(result.evaluations[-1])
    saved = Path(result.checkpoints[-1])
    assert load_processor(saved).image_token == IMAGE_PAD
    assert type(AutoModelForImageTextToText.from_pretrained(saved)).__name__ == (
        "Qwen2VLForConditionalGeneration")


@pytest.mark.slow
def test_ppo_on_hf_engine_rollouts_packs_episodes_and_matches_the_sampler(qwen_dir: Path) -> None:
    """GP-VL rollouts from the HF engine: the learner rebuilds the patches and grids from image
    refs, reads each episode as one sequence (its M-RoPE positions from the last turn's ids
    and grids) and scores the sampled tokens as the engine sampled them."""
    from tests.fixtures_models import ppo_on_worker_rollouts

    _, _, stats = ppo_on_worker_rollouts(RolloutEngineConfig(kind="hf", model=qwen_dir), qwen_dir)
    assert stats.episodes == 3 and stats.turns > stats.episodes and stats.policy_version == 1
    assert stats.packed_share == 1.0 and stats.pack_fallback == {}
    assert stats.behaviour_logprob_gap_max < 1e-3
