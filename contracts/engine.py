"""The one small interface every generation engine offers the rollout machinery.

Token ids go in and token ids with their sampled log-probs come out: the engine never sees
or returns text, so what the learner trains on is exactly what was sampled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field


class SamplingSettings(BaseModel):
    """How to sample one batch of turns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(1.0, ge=0.0)
    """0 means greedy decoding."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(64, ge=1)
    seed: int | None = None


class GenerationRequest(BaseModel):
    """One prompt: its token ids and, for vision-language models, its images (PIL)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    prompt_ids: list[int]
    images: tuple[Any, ...] = ()
    seed: int | None = None
    """This request's own sampling seed (engines that seed per request); None: the call's
    seed, offset by the request's position in the call."""


class Generation(BaseModel):
    """What the engine sampled for one request."""

    model_config = ConfigDict(frozen=True)

    token_ids: list[int]
    logprobs: list[float]
    """Log-probability of each sampled token under the sampling policy, one per token."""
    finish_reason: str
    policy_version: int


class EngineStats(BaseModel):
    """Counters since the engine started."""

    requests: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    generate_seconds: float = 0.0
    weight_updates: int = 0
    weight_update_seconds: float = 0.0
    policy_version: int = 0


class EngineReport(EngineStats):
    """`EngineStats` plus what benchmarks and dashboards need to explain the numbers."""

    kind: str = ""
    model: str = ""
    backend: str = ""
    """What runs the model, e.g. 'vllm (vllm implementation, in-process)' or 'hf (cpu)'."""
    start_seconds: float = 0.0
    """Construction time: loading the model, and for vLLM sizing and allocating the KV cache."""
    weight_update_bytes: int = 0
    last_weight_update_seconds: float = 0.0
    cached_prompt_tokens: int = 0
    """Prompt tokens served from vLLM's prefix cache (earlier turns of a revision dialogue)."""

    @computed_field
    @property
    def generated_tokens_per_second(self) -> float:
        return self.generated_tokens / self.generate_seconds if self.generate_seconds else 0.0

    @computed_field
    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


class Engine(ABC):
    """A generation engine owned by one rollout worker."""

    @abstractmethod
    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingSettings
    ) -> list[Generation]:
        """Generate for every request in one batched call; results keep the request order."""

    @abstractmethod
    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        """Load new policy weights (name, tensor pairs in the model's naming) as `version`."""

    @abstractmethod
    def stats(self) -> EngineStats:
        """Counters for metrics and benchmarks."""

    @abstractmethod
    def shutdown(self) -> None:
        """Release the engine's processes, memory and shared-memory segments."""
