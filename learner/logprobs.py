"""Token log-probabilities and entropy under the sampler's temperature.

The rollout engine samples from softmax(logits / T), so the behaviour log-probs it records are
log_softmax(logits / T). The learner must score tokens under the same distribution, or the PPO
ratio is not 1 before the first update and every clip decision is biased.
"""

from __future__ import annotations

import torch


def token_logprobs_and_entropy(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each target token and the entropy of its distribution, both at `temperature`.

    `logits` is (N, V) for N scored positions, `targets` is (N,). Computed in float32 so that
    bf16 training does not change which tokens the ratio calls likely.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0: greedy decoding has no log-probs to match")
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    chosen = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return chosen, entropy
