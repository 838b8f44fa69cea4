"""Training compute, the x-axis of every plot in the study.

Training costs 6·N·D FLOPs (forward and backward over D tokens for N parameters) and
inference 2·N·D. SFT spends 6·N·(D_init + D_sft); RL spends 6·N·(D_init + D_rl) + 2·N·D_buffer,
where D_buffer is the tokens generated in rollouts. The study approximated D_buffer as a
multiple of D_rl; Revisor counts the tokens it really generated.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenCounts(BaseModel):
    """Tokens a run has processed, by kind (all counts are real tokens, not estimates)."""

    model_config = ConfigDict(extra="forbid")

    init: int = Field(0, ge=0)
    """Tokens trained on before this run (the SFT warm start, for an RL run)."""
    sft: int = Field(0, ge=0)
    """Tokens trained on by this run's SFT."""
    rl: int = Field(0, ge=0)
    """Tokens the RL learner trained on (prompt and response tokens of its updates)."""
    generated: int = Field(0, ge=0)
    """Tokens sampled by rollout workers for training (the rollout buffer)."""

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(**{k: getattr(self, k) + getattr(other, k) for k in type(self).model_fields})


def training_flops(parameters: int, tokens: TokenCounts) -> float:
    """Total training compute of a run in FLOPs, by the study's accounting."""
    trained = tokens.init + tokens.sft + tokens.rl
    return 6.0 * parameters * trained + 2.0 * parameters * tokens.generated


def training_gflops(parameters: int, tokens: TokenCounts) -> float:
    return training_flops(parameters, tokens) / 1e9
