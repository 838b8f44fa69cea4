"""Hugging Face `generate` behind the engine interface: for debugging, for checking vLLM, and
for models vLLM cannot serve (the factory picks it for Mllama, and for Qwen2-VL on CPU).

Log-probs follow vLLM's "processed" convention (see vllm_engine.py): they come from the
scores `generate` samples from (logits / T, top-p filtered), so for top_p = 1 each is
log_softmax(logits / T)[token], and log_softmax(logits)[token] for greedy decoding.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, GenerationConfig

from contracts.engine import Engine, EngineReport, Generation, GenerationRequest, SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from model_inputs.vision import (
    EXCLUDED_LOGIT_BIAS,
    batch_vision_inputs,
    excluded_token_ids,
    hf_vision_inputs,
    is_vision_language,
    load_processor,
    token_type_inputs,
)
from rollout_workers.engine.stats import StatsRecorder
from rollout_workers.engine.weight_sync import as_weight_list, total_bytes


class HFEngine(Engine):
    """A Hugging Face model generating one padded batch per call."""

    def __init__(self, config: RolloutEngineConfig, note: str = "") -> None:
        """`note`: why this engine serves the model, when the config asked for another (it
        joins the report's backend line)."""
        self.config = config
        self.version = 0
        self._recorder = StatsRecorder("hf", str(config.model))
        start = time.perf_counter()
        self.device = _device(config.device)
        self._recorder.describe(f"hf ({self.device.type})" + (f", {note}" if note else ""))
        vision = is_vision_language(config.model)
        model_class = AutoModelForImageTextToText if vision else AutoModelForCausalLM
        self.model = model_class.from_pretrained(config.model, dtype=getattr(torch, config.dtype))
        self.model.to(self.device).eval()
        self.processor = load_processor(config.model) if vision else None
        self.excluded = excluded_token_ids(config.model)
        defaults = self.model.generation_config
        self.eos_ids = _as_set(defaults.eos_token_id)
        self.pad_id = defaults.pad_token_id if defaults.pad_token_id is not None else min(self.eos_ids)
        torch.manual_seed(config.seed)
        self._recorder.started(time.perf_counter() - start)

    @torch.inference_mode()
    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingSettings
    ) -> list[Generation]:
        with self._recorder.generating(requests) as results:
            if requests:
                results.extend(self._generate_batch(requests, sampling))
        return results

    @torch.no_grad()
    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        tensors = as_weight_list(weights)
        with self._recorder.updating(version, total_bytes(tensors)):
            result = self.model.load_state_dict(dict(tensors), strict=False)
            if result.unexpected_keys:
                raise KeyError(f"weights the model does not have: {result.unexpected_keys[:5]}")
        self.version = version

    def stats(self) -> EngineReport:
        return self._recorder.report.model_copy(update={"policy_version": self.version})

    def shutdown(self) -> None:
        """Nothing outlives the model object; dropping it frees the memory."""

    def _generate_batch(
        self, requests: list[GenerationRequest], sampling: SamplingSettings
    ) -> list[Generation]:
        input_ids, attention_mask, extra = self._inputs(requests)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        output = self.model.generate(
            input_ids=input_ids, attention_mask=attention_mask, **extra,
            **token_type_inputs(self.model, input_ids, extra),
            generation_config=self._generation_config(sampling),
        )
        new_tokens = output.sequences[:, input_ids.shape[1]:]
        scores = torch.stack(output.scores, dim=1).float().log_softmax(dim=-1)
        logprobs = scores.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        return [self._generation(tokens.tolist(), values.tolist())
                for tokens, values in zip(new_tokens, logprobs, strict=True)]

    def _inputs(
        self, requests: list[GenerationRequest]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Left-padded ids and mask (generation continues every row at the right end), plus
        image tensors for vision-language models, text-aligned ones left-padded alike."""
        prompts: list[list[int]] = []
        images: list[dict[str, torch.Tensor]] = []
        for request in requests:
            ids = list(request.prompt_ids)
            if self.processor is not None:
                ids, tensors = hf_vision_inputs(self.processor, ids, request.images)
                images.append(tensors)
            elif request.images:
                raise ValueError(f"{self.config.model} is a text model; it cannot take images")
            prompts.append(ids)
        width = max(len(ids) for ids in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in prompts])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts])
        batched = batch_vision_inputs(images, [len(ids) for ids in prompts], width, left=True)
        extra = {name: _on(value, self.device, self.model.dtype) for name, value in batched.items()}
        return input_ids.to(self.device), mask.to(self.device), extra

    def _generation_config(self, sampling: SamplingSettings) -> GenerationConfig:
        greedy = sampling.temperature == 0.0
        return GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None if greedy else 0,
            max_new_tokens=sampling.max_tokens,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            output_scores=True,
            return_dict_in_generate=True,
            sequence_bias=[[[token], EXCLUDED_LOGIT_BIAS] for token in self.excluded] or None,
        )

    def _generation(self, tokens: list[int], logprobs: list[float]) -> Generation:
        """Cut the padded row after its first end-of-sequence token (which is kept)."""
        end = next((i + 1 for i, token in enumerate(tokens) if token in self.eos_ids), None)
        finish_reason = "length" if end is None else "stop"
        end = len(tokens) if end is None else end
        return Generation(token_ids=tokens[:end], logprobs=logprobs[:end],
                          finish_reason=finish_reason, policy_version=self.version)


def _device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def _on(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixels in the model's dtype; integer inputs (Qwen2-VL's image_grid_thw) stay integers."""
    return tensor.to(device, dtype) if tensor.is_floating_point() else tensor.to(device)


def _as_set(token_ids: int | list[int] | None) -> set[int]:
    if token_ids is None:
        raise ValueError("the model's generation config names no end-of-sequence token")
    return {token_ids} if isinstance(token_ids, int) else set(token_ids)
