"""VLLMEngine on the real vLLM CPU build: log-probs, weight updates, images, clean shutdown."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoProcessor, AutoTokenizer

from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from rollout_workers.engine import make_engine
from rollout_workers.engine.vllm_engine import VLLMEngine
from tests.fixtures_models import (
    gp_request,
    leaked_segments,
    reference_logprobs,
    save_model,
    shm_segments,
)

pytestmark = pytest.mark.slow
KV_CACHE = 64 << 20


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("models"), "lm")


@pytest.fixture(scope="module")
def engine(lm_dir: Path) -> Iterator[VLLMEngine]:
    with VLLMEngine(RolloutEngineConfig(model=lm_dir, kv_cache_bytes=KV_CACHE, max_model_len=1024)) as e:
        yield e


@pytest.fixture(scope="module")
def tokenizer(lm_dir: Path):
    return AutoTokenizer.from_pretrained(lm_dir)


def perturbed_weights(lm_dir: Path, seed: int) -> dict[str, torch.Tensor]:
    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    generator = torch.Generator().manual_seed(seed)
    return {name: value + 0.05 * torch.randn(value.shape, generator=generator)
            for name, value in model.state_dict().items()}


def test_sampled_tokens_come_with_one_logprob_each(engine: VLLMEngine, tokenizer) -> None:
    requests = [gp_request(tokenizer, seed) for seed in range(8)]
    generations = engine.generate(requests, SamplingSettings(temperature=1.0, max_tokens=20))
    for generation in generations:
        assert len(generation.logprobs) == len(generation.token_ids) > 0
        assert all(math.isfinite(value) and value <= 0 for value in generation.logprobs)
        assert generation.finish_reason in ("stop", "length")
        assert generation.policy_version == engine.stats().policy_version
    stats = engine.stats()
    assert stats.requests >= 8 and stats.generated_tokens >= sum(len(g.token_ids) for g in generations)
    assert stats.generated_tokens_per_second > 0 and stats.start_seconds > 0


def test_repeated_prompts_are_served_from_the_prefix_cache(engine: VLLMEngine, tokenizer) -> None:
    request = gp_request(tokenizer, 5)
    engine.generate([request], SamplingSettings(max_tokens=2))
    cached = engine.stats().cached_prompt_tokens
    engine.generate([request], SamplingSettings(max_tokens=2))
    assert engine.stats().cached_prompt_tokens - cached >= len(request.prompt_ids) // 2
    assert 0 < engine.stats().prefix_cache_hit_rate < 1


def test_seeded_calls_repeat_and_equal_prompts_still_differ(engine: VLLMEngine, tokenizer) -> None:
    requests = [gp_request(tokenizer, 0)] * 2
    sampling = SamplingSettings(temperature=1.0, max_tokens=12, seed=7)
    first, second = engine.generate(requests, sampling), engine.generate(requests, sampling)
    assert [g.token_ids for g in first] == [g.token_ids for g in second]
    assert first[0].token_ids != first[1].token_ids


def test_a_seeded_batch_larger_than_one_engine_step(engine: VLLMEngine, tokenizer) -> None:
    """More prompt tokens than vLLM schedules in one step: with chunked prefill, vLLM's CPU
    build crashed on seeded requests."""
    requests = [gp_request(tokenizer, seed) for seed in range(64)]
    assert sum(len(r.prompt_ids) for r in requests) > 8192
    generations = engine.generate(requests, SamplingSettings(max_tokens=2, seed=1))
    assert all(len(g.token_ids) == 2 for g in generations)


@pytest.mark.parametrize("temperature", [0.7, 1.0, 0.0])
def test_logprobs_match_the_learners_forward_pass(engine: VLLMEngine, tokenizer, lm_dir: Path,
                                                  temperature: float) -> None:
    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    model.load_state_dict(_current_weights(engine, lm_dir))
    requests = [gp_request(tokenizer, seed) for seed in range(3)]
    sampling = SamplingSettings(temperature=temperature, max_tokens=24, seed=3)
    for request, generation in zip(requests, engine.generate(requests, sampling), strict=True):
        expected = reference_logprobs(model, request, generation.token_ids, temperature)
        torch.testing.assert_close(torch.tensor(generation.logprobs), expected, atol=1e-3, rtol=0)


def test_weight_update_gives_hf_greedy_answers_on_the_new_weights(
    engine: VLLMEngine, tokenizer, lm_dir: Path
) -> None:
    request = gp_request(tokenizer, 4)
    greedy = SamplingSettings(temperature=0.0, max_tokens=24)
    before = engine.generate([request], greedy)[0]  # also fills the prefix cache
    weights = perturbed_weights(lm_dir, seed=11)
    engine.update_weights(weights.items(), version=1)
    after = engine.generate([request], greedy)[0]
    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    model.load_state_dict(weights)
    prompt = torch.tensor([request.prompt_ids])
    expected = model.generate(prompt, do_sample=False, max_new_tokens=24)[0, prompt.shape[1]:]
    assert after.token_ids == expected.tolist()[: len(after.token_ids)]
    assert after.token_ids != before.token_ids and after.policy_version == 1
    stats = engine.stats()
    assert stats.weight_updates == 1 and stats.policy_version == 1
    assert stats.weight_update_bytes >= sum(v.numel() * 4 for v in weights.values())


def test_vlm_generates_from_an_image_like_hf_and_shuts_down_cleanly(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The tiny LLaVA runs in its own engine-core process (vLLM's Transformers backend), which
    also covers weight updates across processes, shared-memory clean-up and the image
    placeholder's exclusion from sampling."""
    vlm_dir = save_model(tmp_path_factory.mktemp("models"), "vlm")
    processor = AutoProcessor.from_pretrained(vlm_dir)
    requests = [gp_request(processor.tokenizer, seed, vision=True) for seed in range(3)]
    greedy = SamplingSettings(temperature=0.0, max_tokens=12)
    hf = make_engine(RolloutEngineConfig(kind="hf", model=vlm_dir))
    weights = {name: value + 0.05 * torch.randn_like(value)
               for name, value in hf.model.state_dict().items()}
    before = shm_segments()
    vllm = make_engine(RolloutEngineConfig(model=vlm_dir, kv_cache_bytes=KV_CACHE, max_model_len=1024))
    try:
        for version in (0, 1):
            if version:
                hf.update_weights(weights.items(), version)
                vllm.update_weights(weights.items(), version)
            expected, served = hf.generate(requests, greedy), vllm.generate(requests, greedy)
            for h, v in zip(expected, served, strict=True):
                assert v.token_ids == h.token_ids and v.policy_version == version
                torch.testing.assert_close(torch.tensor(v.logprobs), torch.tensor(h.logprobs),
                                           atol=1e-3, rtol=0)
        # sampled widely (T = 2, vLLM's highest), the image placeholder is never drawn (the
        # logit bias the learner applies too; without it, it is), while 800+ other tokens are
        spread = vllm.generate(requests[:1] * 16,
                               SamplingSettings(temperature=2.0, max_tokens=256, seed=0))
        sampled = [token for g in spread for token in g.token_ids]
        assert len(set(sampled)) > 800
        assert processor.tokenizer.convert_tokens_to_ids(processor.image_token) not in sampled
    finally:
        vllm.shutdown()
    assert not leaked_segments(before)


def _current_weights(engine: VLLMEngine, lm_dir: Path) -> dict[str, torch.Tensor]:
    """The weights the shared engine serves now (tests may run in any order)."""
    version = engine.stats().policy_version
    if version == 0:
        return AutoModelForCausalLM.from_pretrained(lm_dir).state_dict()
    return perturbed_weights(lm_dir, seed=11)


def test_an_engine_restarts_after_shutdown_in_the_same_process(lm_dir: Path, tokenizer) -> None:
    before = shm_segments()
    engine = VLLMEngine(RolloutEngineConfig(model=lm_dir, kv_cache_bytes=KV_CACHE, max_model_len=1024))
    engine.generate([gp_request(tokenizer, 0)], SamplingSettings(max_tokens=4))
    engine.shutdown()
    engine.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        engine.generate([gp_request(tokenizer, 0)], SamplingSettings(max_tokens=4))
    assert not leaked_segments(before)


def test_learner_published_weights_reach_the_tied_output_layer(lm_dir: Path, tokenizer) -> None:
    """The learner names tied embeddings once; published through the real path (gather, alias,
    pack, unpack) the engine's output layer must follow them, or the sampler drifts from the
    learner a little more with every update."""
    from learner.export import gathered_state_dict, with_tied_aliases
    from weight_transport.packing import pack_weights, unpack_weights

    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    weights = with_tied_aliases(model, gathered_state_dict(model))
    requests = [gp_request(tokenizer, seed) for seed in range(4)]
    with VLLMEngine(RolloutEngineConfig(model=lm_dir, kv_cache_bytes=KV_CACHE, max_model_len=1024)) as e:
        e.update_weights(unpack_weights(pack_weights(weights, version=1)), version=1)
        served = e.generate(requests, SamplingSettings(temperature=1.0, max_tokens=24, seed=2))
    for request, generation in zip(requests, served, strict=True):
        expected = reference_logprobs(model, request, generation.token_ids, 1.0)
        torch.testing.assert_close(torch.tensor(generation.logprobs), expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize(("model_impl", "error"), [
    ("transformers", "'MllamaProcessor' object has no attribute '_get_num_multimodal_tokens'"),
    ("vllm", "MllamaForConditionalGeneration was supported in vLLM until v0.10.2"),
])
def test_vllm_cannot_serve_mllama_so_the_factory_picks_hf(
    tmp_path_factory: pytest.TempPathFactory, model_impl: str, error: str,
) -> None:
    """The finding behind engine.factory.VLLM_UNSERVABLE['mllama'], on the real vLLM CPU build:
    neither vLLM's own implementation nor its Transformers backend (which merges image features
    into the prompt's embeddings; Mllama has cross-attention and no get_image_features) starts.
    If this fails because vLLM started, vLLM has learned Mllama: compare it with HF (greedy
    tokens, log-probs within 1e-3) and drop the table entry."""
    from rollout_workers.engine.factory import VLLM_UNSERVABLE
    from rollout_workers.engine.hf_engine import HFEngine

    mllama_dir = save_model(tmp_path_factory.mktemp("models"), "mllama")
    before = shm_segments()
    with pytest.raises(Exception, match=error):
        VLLMEngine(RolloutEngineConfig(model=mllama_dir, model_impl=model_impl, kv_cache_bytes=KV_CACHE,
                                max_model_len=1024))
    assert not leaked_segments(before)
    assert isinstance(make_engine(RolloutEngineConfig(model=mllama_dir)), HFEngine)
    assert "Mllama" in VLLM_UNSERVABLE["mllama"]
