"""HFEngine: the debugging engine samples like vLLM and reports the learner's log-probs."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from model_inputs.vision import expand_image_tokens
from rollout_workers.engine import make_engine
from rollout_workers.engine.hf_engine import HFEngine
from tests.fixtures_models import gp_request, reference_logprobs, save_model


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("models"), "lm")


@pytest.fixture(scope="module")
def engine(lm_dir: Path) -> HFEngine:
    return make_engine(RolloutEngineConfig(kind="hf", model=lm_dir))


@pytest.fixture(scope="module")
def tokenizer(lm_dir: Path):
    return AutoTokenizer.from_pretrained(lm_dir)


@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 1.0), (1.0, 1.0), (0.0, 1.0)])
def test_logprobs_are_the_sampling_distributions(engine: HFEngine, tokenizer, lm_dir: Path,
                                                 temperature: float, top_p: float) -> None:
    requests = [gp_request(tokenizer, seed) for seed in range(3)]
    sampling = SamplingSettings(temperature=temperature, top_p=top_p, max_tokens=24, seed=5)
    generations = engine.generate(requests, sampling)
    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    for request, generation in zip(requests, generations, strict=True):
        assert len(generation.logprobs) == len(generation.token_ids) > 0
        expected = reference_logprobs(model, request, generation.token_ids, temperature)
        torch.testing.assert_close(torch.tensor(generation.logprobs), expected, atol=1e-4, rtol=0)


def test_padding_a_batch_does_not_change_greedy_answers(engine: HFEngine, tokenizer) -> None:
    short = gp_request(tokenizer, 0).model_copy(update={"prompt_ids": [2, 5, 18, 40, 3, 6, 18]})
    long = gp_request(tokenizer, 1)
    greedy = SamplingSettings(temperature=0.0, max_tokens=16)
    together = engine.generate([short, long], greedy)
    alone = [engine.generate([request], greedy)[0] for request in (short, long)]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


def test_weight_update_changes_the_policy_and_its_version(engine: HFEngine, tokenizer,
                                                          lm_dir: Path) -> None:
    request = gp_request(tokenizer, 2)
    greedy = SamplingSettings(temperature=0.0, max_tokens=16)
    before = engine.generate([request], greedy)[0]
    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    torch.manual_seed(1)
    new_weights = {name: value + 0.05 * torch.randn_like(value)
                   for name, value in model.state_dict().items()}
    engine.update_weights(new_weights.items(), version=3)
    after = engine.generate([request], greedy)[0]
    model.load_state_dict(new_weights)
    prompt = torch.tensor([request.prompt_ids])
    expected = model.generate(prompt, do_sample=False, max_new_tokens=16)[0, prompt.shape[1]:]
    assert after.token_ids == expected.tolist()[: len(after.token_ids)]
    assert after.token_ids != before.token_ids and after.policy_version == 3
    stats = engine.stats()
    assert stats.weight_updates == 1 and stats.policy_version == 3 and stats.weight_update_bytes > 0


def test_vlm_generates_from_an_image(tmp_path_factory: pytest.TempPathFactory) -> None:
    vlm_dir = save_model(tmp_path_factory.mktemp("models"), "vlm")
    processor = AutoProcessor.from_pretrained(vlm_dir)
    engine = make_engine(RolloutEngineConfig(kind="hf", model=vlm_dir))
    request = gp_request(processor.tokenizer, 0, vision=True)
    generation = engine.generate([request], SamplingSettings(temperature=1.0, max_tokens=12))[0]
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir)
    expected = reference_logprobs(model, request, generation.token_ids, 1.0, processor)
    torch.testing.assert_close(torch.tensor(generation.logprobs), expected, atol=1e-4, rtol=0)


def test_config_rejects_unknown_fields_and_engines() -> None:
    with pytest.raises(pydantic.ValidationError, match="kv_cache"):
        RolloutEngineConfig(model="m", kv_cache=1)
    with pytest.raises(pydantic.ValidationError, match="kind"):
        RolloutEngineConfig(model="m", kind="tgi")


def test_image_placeholders_must_match_the_images() -> None:
    assert expand_image_tokens([1, 7, 2, 7], placeholder=7, counts=[2, 1]) == [1, 7, 7, 2, 7]
    with pytest.raises(ValueError, match="placeholders"):
        expand_image_tokens([1, 7, 2], placeholder=7, counts=[2, 1])


def test_a_vision_policy_never_samples_an_image_placeholder(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Sampled near uniformly (T = 50), 16 x 256 tokens (some rows stop early) would hold the
    image token nearly always if it were allowed (measured: it is sampled with the bias off); a sampled placeholder would be an image slot without an image in
    the next turn's prompt. The log-probs still equal the learner's, which excludes it alike."""
    vlm_dir = save_model(tmp_path_factory.mktemp("models"), "vlm")
    processor = AutoProcessor.from_pretrained(vlm_dir)
    engine = make_engine(RolloutEngineConfig(kind="hf", model=vlm_dir))
    request = gp_request(processor.tokenizer, 0, vision=True)
    image_token = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    generations = engine.generate([request] * 16,
                                  SamplingSettings(temperature=50.0, max_tokens=256, seed=0))
    sampled = [token for g in generations for token in g.token_ids]
    assert len(sampled) > 2000 and len(set(sampled)) > 800  # the draw really is spread out
    assert image_token not in sampled
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir)
    expected = reference_logprobs(model, request, generations[0].token_ids, 50.0, processor)
    torch.testing.assert_close(torch.tensor(generations[0].logprobs), expected, atol=1e-4, rtol=0)
