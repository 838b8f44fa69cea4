"""Llama-3.2-Vision (Mllama), the study's backbone, on a tiny model: the checkpoint loads by path,
the cross-attention mask built from stored ids is the processor's, the HF engine serves it
(chosen automatically: vLLM cannot), and the learner scores what the engine sampled."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    MllamaProcessor,
)
from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

from contracts.engine import GenerationRequest, SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.tasks import GPConfig
from envs.general_points import make_episode
from envs.registry import render_image_ref
from learner.batch import collate_turns
from learner.config import ModelConfig
from learner.model import load_policy
from learner.sft import as_turns, demonstrations
from learner.vision import VisionInputs
from model_inputs.dialogue import DialogueTokens
from model_inputs.vision import batch_vision_inputs, hf_vision_inputs
from rollout_workers.engine import make_engine
from rollout_workers.engine.factory import vllm_unservable_reason
from rollout_workers.engine.hf_engine import HFEngine
from rollout_workers.tiny_models import build_model, cli, count_parameters
from tests.fixtures_models import ppo_on_worker_rollouts, save_model

torch.set_num_threads(1)
VL_TASK = GPConfig(vision=True)


@pytest.fixture(scope="module")
def mllama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("models"), "mllama")


@pytest.fixture(scope="module")
def processor(mllama_dir: Path) -> MllamaProcessor:
    return AutoProcessor.from_pretrained(mllama_dir)


@pytest.fixture(scope="module")
def engine(mllama_dir: Path) -> HFEngine:
    """Asked for vLLM, as a rollout config does; the factory serves Mllama with HF."""
    return make_engine(RolloutEngineConfig(model=mllama_dir))


@pytest.fixture(scope="module")
def demos(processor: MllamaProcessor) -> list:
    """GP-VL prompts of different lengths: 0 to 2 mistaken answers with feedback before."""
    return demonstrations(VL_TASK, range(3), processor.tokenizer, processor,
                          revision_share=1.0, max_mistakes=2)


def requests_of(demos: list) -> list[GenerationRequest]:
    return [GenerationRequest(prompt_ids=d.prompt_ids,
                              images=tuple(render_image_ref(ref) for ref in d.image_refs))
            for d in demos]


def test_cli_builds_a_checkpoint_that_loads_by_path(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--kind", "mllama", "--size", "0.5m", "--out", str(tmp_path / "m")]) == 0
    report = json.loads(capsys.readouterr().out)
    config = AutoConfig.from_pretrained(tmp_path / "m")
    processor = AutoProcessor.from_pretrained(tmp_path / "m")
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "m")
    assert config.model_type == "mllama" and type(model).__name__ == "MllamaForConditionalGeneration"
    assert isinstance(processor, MllamaProcessor)
    assert isinstance(processor.image_processor, MllamaImageProcessorPil)
    assert processor.image_token == "<image>"
    assert processor.image_token_id == config.image_token_index
    assert count_parameters(model) == report["parameters"]
    assert model.generation_config.eos_token_id == processor.tokenizer.eos_token_id


def test_settings_name_the_tiny_mllama_and_the_job_builds_it(tmp_path: Path) -> None:
    from cluster.job.run import ensure_model
    from cluster.settings.experiment import ExperimentConfig
    from cluster.settings.loading import load_settings

    config = load_settings(ExperimentConfig, Path(__file__).parents[1] / "configs/cpu_demo.yaml", [
        f"model={tmp_path / 'model'}", "tiny_model={kind: mllama, size: 0.5m}"])
    ensure_model(config)
    assert AutoConfig.from_pretrained(config.model).model_type == "mllama"


@pytest.mark.parametrize(("size", "low", "high"), [("0.5m", 0.8e6, 1.2e6), ("5m", 6e6, 9e6)])
def test_presets_have_their_advertised_size(size: str, low: float, high: float) -> None:
    model, _ = build_model("mllama", size)
    assert low <= count_parameters(model) <= high


def test_chat_template_writes_one_image_token_per_image(processor: MllamaProcessor) -> None:
    content = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Cards?"}]
    text = processor.apply_chat_template([{"role": "user", "content": content}],
                                         add_generation_prompt=True, tokenize=False)
    ids = processor.tokenizer.encode(text, add_special_tokens=False)
    assert ids.count(processor.image_token_id) == 2
    dialogue = DialogueTokens.from_tokenizer(processor.tokenizer, processor)
    prompt = dialogue.opening(make_episode(VL_TASK, 0).observe())
    assert prompt.count(processor.image_token_id) == 1
    assert dialogue.ends_turn(dialogue.answer("24"))


def test_inputs_from_stored_ids_equal_the_processors(processor: MllamaProcessor) -> None:
    """Pixels, aspect ratios and the cross-attention mask, without re-tokenising the text."""
    observation = make_episode(VL_TASK, 4).observe()
    messages = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": observation.text}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    expected = processor(text=text, images=list(observation.images), add_special_tokens=False,
                         return_tensors="pt")
    ids, tensors = hf_vision_inputs(processor, expected["input_ids"][0].tolist(),
                                    observation.images)
    assert ids == expected["input_ids"][0].tolist()
    assert set(tensors) == {"pixel_values", "aspect_ratio_ids", "aspect_ratio_mask",
                            "cross_attention_mask"}
    for name, value in tensors.items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
    first_image = ids.index(processor.image_token_id)
    assert not tensors["cross_attention_mask"][0, :first_image].any()
    assert tensors["cross_attention_mask"][0, first_image:, 0, 0].all()


def test_batching_pads_images_and_extends_the_mask_over_answers() -> None:
    """Row 0: one image, prompt of 3 tokens; row 1: two images, prompt of 4 tokens."""
    one = {"pixel_values": torch.ones(1, 1, 4, 3, 2, 2), "aspect_ratio_ids": torch.tensor([[3]]),
           "aspect_ratio_mask": torch.tensor([[[1, 1, 1, 0]]]),
           "cross_attention_mask": torch.tensor([[[[0, 0, 0, 0]], [[1, 1, 1, 0]], [[1, 1, 1, 0]]]])}
    two_mask = torch.zeros(1, 4, 2, 4, dtype=torch.long)
    two_mask[0, 1:3, 0, :1] = 1
    two_mask[0, 3:, 1, :2] = 1
    two = {"pixel_values": torch.ones(1, 2, 4, 3, 2, 2), "aspect_ratio_ids": torch.tensor([[1, 2]]),
           "aspect_ratio_mask": torch.tensor([[[1, 0, 0, 0], [1, 1, 0, 0]]]),
           "cross_attention_mask": two_mask}
    right = batch_vision_inputs([one, two], lengths=[5, 6], width=7)
    assert right["pixel_values"].shape == (2, 2, 4, 3, 2, 2)
    assert not right["pixel_values"][0, 1].any()
    assert right["aspect_ratio_ids"].tolist() == [[3, 0], [1, 2]]
    assert right["aspect_ratio_mask"][0, 1].tolist() == [1, 0, 0, 0]  # as the processor pads
    mask = right["cross_attention_mask"]
    assert mask.shape == (2, 7, 2, 4)
    assert mask[0, 3:5, 0].tolist() == [[1, 1, 1, 0]] * 2  # answer tokens see the image
    assert not mask[0, 5:].any() and not mask[0, :, 1].any()  # padding, and no second image
    assert mask[1, 4:6].tolist() == [two_mask[0, 3].tolist()] * 2 and not mask[1, 6].any()
    left = batch_vision_inputs([one, two], lengths=[3, 4], width=4, left=True)
    assert not left["cross_attention_mask"][0, 0].any()
    assert torch.equal(left["cross_attention_mask"][0, 1:, :1], one["cross_attention_mask"][0])
    assert torch.equal(left["cross_attention_mask"][1], two_mask[0])
    without = batch_vision_inputs([one, {}], lengths=[3, 2], width=3)
    assert without["pixel_values"].shape[0] == 2 and not without["cross_attention_mask"][1].any()


def test_vllm_is_replaced_by_hf_for_mllama_and_says_why(
        mllama_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rollout_workers.engine.factory"):
        engine = make_engine(RolloutEngineConfig(model=mllama_dir))
    report = engine.stats()
    assert isinstance(engine, HFEngine) and engine.config.kind == "hf" and report.kind == "hf"
    assert "instead of vllm" in report.backend and "Mllama" in report.backend
    assert any("hf instead of vllm" in record.getMessage() for record in caplog.records)
    lm_dir = save_model(tmp_path, "lm")
    assert vllm_unservable_reason(lm_dir) is None  # text Llama and LLaVA stay on vLLM
    assert vllm_unservable_reason(save_model(tmp_path, "vlm")) is None


def test_engine_logprobs_equal_the_learners(engine: HFEngine, demos: list,
                                            mllama_dir: Path) -> None:
    """A batch of GP-VL prompts of different lengths (left-padded in the engine, right-padded
    in the learner): the learner's log-probs of the sampled tokens match, and the images and
    the mask over the answer matter (without them they would not)."""
    requests = requests_of(demos)
    assert len({len(r.prompt_ids) for r in requests}) == len(requests)
    sampling = SamplingSettings(temperature=0.7, max_tokens=16, seed=4)
    generations = engine.generate(requests, sampling)
    turns = as_turns(demos)
    turns.response_ids = [g.token_ids for g in generations]
    micro = collate_turns(VisionInputs(str(mllama_dir)).expand(turns), [0, 1, 2], pad_id=0)
    model = load_policy(ModelConfig(path=str(mllama_dir))).eval()
    with torch.no_grad():
        logprobs = model(**micro.model_inputs(), temperature=0.7)[0]
        blind_answers = dict(micro.vision_inputs)
        mask = blind_answers["cross_attention_mask"].clone()
        for row, demo in enumerate(demos):
            mask[row, len(demo.prompt_ids):] = 0
        blind_answers["cross_attention_mask"] = mask
        blind = model(**{**micro.model_inputs(), **blind_answers}, temperature=0.7)[0]
    sampled = torch.tensor([lp for g in generations for lp in g.logprobs])
    torch.testing.assert_close(logprobs, sampled, atol=1e-3, rtol=0)
    assert (blind - sampled).abs().max() > 1e-2


def test_padding_a_batch_does_not_change_greedy_answers(engine: HFEngine, demos: list) -> None:
    requests = requests_of(demos)
    greedy = SamplingSettings(temperature=0.0, max_tokens=12)
    together = engine.generate(requests, greedy)
    alone = [engine.generate([request], greedy)[0] for request in requests]
    for batched, single in zip(together, alone, strict=True):
        assert batched.token_ids == single.token_ids
        torch.testing.assert_close(torch.tensor(batched.logprobs), torch.tensor(single.logprobs),
                                   atol=1e-4, rtol=0)


def test_learner_published_weights_change_the_engine_as_hf(mllama_dir: Path, demos: list) -> None:
    """The learner's export path (gather, tied aliases, pack, unpack) names Mllama's weights
    as the engine's model does; the served answers become HF generate's on the new weights."""
    from learner.export import gathered_state_dict, with_tied_aliases
    from weight_transport.packing import pack_weights, unpack_weights

    engine = make_engine(RolloutEngineConfig(kind="hf", model=mllama_dir))
    requests = requests_of(demos[:2])
    greedy = SamplingSettings(temperature=0.0, max_tokens=12)
    before = engine.generate(requests, greedy)
    model = AutoModelForImageTextToText.from_pretrained(mllama_dir)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    weights = with_tied_aliases(model, gathered_state_dict(model))
    engine.update_weights(unpack_weights(pack_weights(weights, version=2)), version=2)
    after = engine.generate(requests, greedy)
    expected = HFEngine(RolloutEngineConfig(kind="hf", model=mllama_dir))
    expected.model = model.eval()
    assert [g.token_ids for g in after] == [g.token_ids for g in expected.generate(requests, greedy)]
    assert [g.token_ids for g in after] != [g.token_ids for g in before]
    assert all(g.policy_version == 2 for g in after) and engine.stats().weight_updates == 1


@pytest.mark.slow
def test_sft_lowers_the_loss_on_gp_vl_demonstrations(mllama_dir: Path, tmp_path: Path) -> None:
    """A few SFT steps on rendered cards; the held-out evaluation generates greedily from
    left-padded prompts with their cross-attention masks."""
    from learner.config import DeepSpeedConfig, OptimConfig, SFTConfig
    from learner.sft import SFTTrainer

    config = SFTConfig(
        model=ModelConfig(path=str(mllama_dir)), task=VL_TASK, train_episodes=4,
        eval_seed_start=0, eval_episodes=2, optim=OptimConfig(lr=3e-3),
        engine=DeepSpeedConfig(zero_stage=0, micro_batch_size=4), batch_size=4, steps=5,
        eval_every=5, checkpoint_every=0, max_answer_tokens=8, output_dir=tmp_path / "sft")
    trainer = SFTTrainer(config)
    assert "cross_attention_mask" in trainer.train_set.vision[0]
    result = trainer.run()
    losses = [step.loss for step in result.steps]
    assert losses[-1] < 0.8 * losses[0], losses
    assert {"eval_loss", "exact_match", "success_rate"} <= set(result.evaluations[-1])
    assert AutoModelForImageTextToText.from_pretrained(result.checkpoints[-1]) is not None
    assert AutoProcessor.from_pretrained(result.checkpoints[-1]).image_token == "<image>"


@pytest.mark.slow
def test_ppo_on_rollouts_of_the_auto_chosen_engine(mllama_dir: Path) -> None:
    """GP-VL rollouts from a worker configured for vLLM (served by HF): the learner rebuilds
    pixels and masks from image refs, scores the sampled tokens as sampled, trains, and its
    published weights load into the worker's engine."""
    from weight_transport.packing import pack_weights, unpack_weights

    worker, learner, stats = ppo_on_worker_rollouts(RolloutEngineConfig(model=mllama_dir), mllama_dir)
    assert isinstance(worker.engine, HFEngine)
    assert stats.episodes == 3 and stats.policy_version == 1
    assert stats.behaviour_logprob_gap_max < 1e-3
    assert stats.packed_share == 1.0  # one hand per episode: each is read as one sequence
    weights = learner.export_weights()
    worker.engine.update_weights(unpack_weights(pack_weights(weights, version=1)), version=1)
    served = dict(worker.engine.model.named_parameters())
    for name, value in weights.items():
        if name in served:
            assert torch.equal(served[name].detach(), value), name
    assert set(served) <= set(weights)
