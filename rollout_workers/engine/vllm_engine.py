"""The vLLM engine: batched generation with the sampled tokens' log-probs.

The same code serves the CPU build (laptops, CI) and the GPU build. Log-probs are vLLM's
"processed" ones: the log-probability of each sampled token under the distribution it was
sampled from, log_softmax(logits / T) (after top-p filtering when top_p < 1); for greedy
decoding (T = 0), log_softmax(logits). The learner computes the same quantity for PPO ratios.
"""

from __future__ import annotations

import importlib
import os
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from transformers import AutoConfig, AutoProcessor
from vllm import LLM, SamplingParams
from vllm import envs as vllm_envs

from contracts.engine import (
    Engine,
    EngineReport,
    Generation,
    GenerationRequest,
    SamplingSettings,
)
from contracts.engine_config import RolloutEngineConfig
from contracts.packed_weights import WeightLayout
from model_inputs.vision import (
    EXCLUDED_LOGIT_BIAS,
    excluded_token_ids,
    is_vision_language,
)
from rollout_workers.engine.stats import StatsRecorder
from rollout_workers.engine.weight_sync import WORKER_EXTENSION, as_weight_list, pack, total_bytes


class VLLMEngine(Engine):
    """One vLLM engine (in-process or with its own engine core process)."""

    def __init__(self, config: RolloutEngineConfig) -> None:
        self.config = config
        self.version = 0
        self._recorder = StatsRecorder("vllm", str(config.model))
        start = time.perf_counter()
        self.model_impl = resolve_model_impl(config)
        self.excluded = {token: EXCLUDED_LOGIT_BIAS for token in excluded_token_ids(config.model)}
        self.in_process = config.in_process and self.model_impl != "transformers"
        self._llm: LLM | None = _start_llm(config, self.model_impl, self.in_process)
        where = "in-process" if self.in_process else "engine-core process"
        self._recorder.describe(f"vllm ({self.model_impl} implementation, {where})")
        self._recorder.started(time.perf_counter() - start)
        # Shut the engine core down even if the owner forgets: a killed engine core process
        # leaves its shared-memory segments behind.
        self._finalizer = weakref.finalize(self, _shutdown_core, self._llm.llm_engine.engine_core)

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingSettings
    ) -> list[Generation]:
        prompts = [_prompt(request) for request in requests]
        params = [_sampling_params(sampling, index, request.seed, self.excluded)
                  for index, request in enumerate(requests)]
        with self._recorder.generating(requests) as results:
            if prompts:
                outputs = self._engine().generate(prompts, params, use_tqdm=False)
                results.extend(self._generation(output) for output in outputs)
                cached = sum(output.num_cached_tokens or 0 for output in outputs)
                self._recorder.add(cached_prompt_tokens=cached)
        return results

    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        tensors = as_weight_list(weights)
        with self._recorder.updating(version, total_bytes(tensors)):
            payload = tensors if self.in_process else pack(tensors)
            self._engine().collective_rpc("revisor_load_weights", args=(payload,))
            # Cached prefixes and image encodings were computed by the old weights.
            self._engine().reset_prefix_cache()
            self._engine().llm_engine.reset_encoder_cache()
        self.version = version

    def join_weight_group(self, rendezvous: dict[str, Any], rank_offset: int) -> None:
        """weight_sync='nccl': join the weight group (every engine worker, ranks from
        `rank_offset` on); blocks until the whole group has met."""
        self._engine().collective_rpc("revisor_join_weight_group", args=(rendezvous, rank_offset))

    def receive_weights(self, layout: dict[str, Any], version: int) -> None:
        """weight_sync='nccl': take one publication of `layout` by broadcast and load it."""
        with self._recorder.updating(version, WeightLayout.from_dict(layout).nbytes):
            self._engine().collective_rpc("revisor_receive_weights", args=(layout, version))
            self._engine().reset_prefix_cache()
            self._engine().llm_engine.reset_encoder_cache()
        self.version = version

    def leave_weight_group(self) -> None:
        self._engine().collective_rpc("revisor_leave_weight_group")

    def stats(self) -> EngineReport:
        return self._recorder.report.model_copy(update={"policy_version": self.version})

    def shutdown(self) -> None:
        if self._llm is not None:
            self._finalizer()
            self._llm = None

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _engine(self) -> LLM:
        if self._llm is None:
            raise RuntimeError("this vLLM engine has been shut down")
        return self._llm

    def _generation(self, output: Any) -> Generation:
        completion = output.outputs[0]
        token_ids = list(completion.token_ids)
        logprobs = [float(position[token].logprob)
                    for position, token in zip(completion.logprobs, token_ids, strict=True)]
        return Generation(token_ids=token_ids, logprobs=logprobs,
                          finish_reason=completion.finish_reason or "length",
                          policy_version=self.version)


def _start_llm(config: RolloutEngineConfig, model_impl: str, in_process: bool) -> LLM:
    multimodal = ({"limit_mm_per_prompt": {"image": config.max_images_per_prompt}}
                  if is_vision_language(config.model) else {})
    with _multiprocessing_flag("0" if in_process else "1"):
        return _llm(config, model_impl, multimodal)


@contextmanager
def _multiprocessing_flag(value: str) -> Iterator[None]:
    """vLLM reads this flag from the environment when an engine starts (and caches every
    flag after an in-process start): set it for this start only, with vLLM's cache cleared."""
    name = "VLLM_ENABLE_V1_MULTIPROCESSING"
    previous = os.environ.get(name)
    vllm_envs.disable_envs_cache()
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _llm(config: RolloutEngineConfig, model_impl: str, multimodal: dict[str, Any]) -> LLM:
    return LLM(
        model=str(config.model),
        dtype=config.dtype,
        seed=config.seed,
        max_model_len=config.max_model_len,
        kv_cache_memory_bytes=config.kv_cache_bytes,
        gpu_memory_utilization=config.gpu_memory_utilization,
        max_num_seqs=config.max_num_seqs,
        enable_prefix_caching=config.enable_prefix_caching,
        tensor_parallel_size=config.tensor_parallel_size,
        enforce_eager=config.enforce_eager,
        enable_chunked_prefill=config.chunked_prefill,
        model_impl=model_impl,
        logprobs_mode="processed_logprobs",
        worker_extension_cls=WORKER_EXTENSION,
        **multimodal,
    )


class VLLMCannotServe(RuntimeError):
    """vLLM has no working implementation of this model here; raised before vLLM starts."""


def resolve_model_impl(config: RolloutEngineConfig) -> str:
    """'vllm' or 'transformers': the implementation an 'auto' config gets for its model."""
    if config.model_impl != "auto":
        return config.model_impl
    architectures = AutoConfig.from_pretrained(config.model).architectures or []
    if all(_native_importable(name) for name in architectures):
        return "vllm"
    _check_transformers_backend(config)
    return "transformers"


def _check_transformers_backend(config: RolloutEngineConfig) -> None:
    """vLLM's Transformers backend builds the checkpoint's Hugging Face processor. Where that
    needs a package this machine lacks (Qwen2-VL's needs torchvision, which CPU installs
    leave out), say so before vLLM starts, and what serves the model instead."""
    if not is_vision_language(config.model):
        return
    try:
        AutoProcessor.from_pretrained(config.model)
    except ImportError as error:
        reason = " ".join(str(error).split()).split(". ")[0]
        raise VLLMCannotServe(
            f"vLLM cannot serve {config.model} on this machine: neither its own implementation "
            f"nor its Transformers backend loads ({reason})") from error


def _native_importable(architecture: str) -> bool:
    """Whether vLLM's own module for `architecture` imports (a missing optional dependency,
    such as torchvision on CPU, makes vLLM fail at start-up instead of falling back)."""
    from vllm.model_executor.models import registry

    known = {**registry._TEXT_GENERATION_MODELS, **registry._MULTIMODAL_MODELS}
    if architecture not in known:
        return False
    try:
        importlib.import_module(f"vllm.model_executor.models.{known[architecture][0]}")
    except ImportError:
        return False
    return True


def _prompt(request: GenerationRequest) -> dict[str, Any]:
    """vLLM expands each image placeholder token of the prompt to the image's feature tokens."""
    prompt: dict[str, Any] = {"prompt_token_ids": list(request.prompt_ids)}
    if request.images:
        prompt["multi_modal_data"] = {"image": list(request.images)}
    return prompt


def _sampling_params(sampling: SamplingSettings, index: int, request_seed: int | None = None,
                     logit_bias: dict[int, float] | None = None) -> SamplingParams:
    """One request's parameters. A request's own seed wins; otherwise a seeded call gives
    request i the seed `seed + i`, so equal prompts in one batch still get different samples."""
    seed = None
    if sampling.seed is not None:
        seed = sampling.seed + index if request_seed is None else request_seed
    return SamplingParams(
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        seed=seed,
        logprobs=0,
        detokenize=False,
        logit_bias=logit_bias or None,
    )


def _shutdown_core(engine_core: Any) -> None:
    engine_core.shutdown()
