"""Turn-level generalised advantage estimation over the verification steps of episodes.

Each verification step (one answer and its verdict) is one MDP step: the state is the whole
dialogue so far, the action is the full answer, the reward is the verifier's. The value of a
state is read at its last prompt token, so one value and one advantage exist per turn, and
every token of the answer shares its turn's advantage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def turn_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    episode_index: Sequence[int],
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets (returns) for turns listed episode by episode, in turn order.

    `episode_index[i]` names the episode of turn i; turns of one episode must be contiguous and
    ordered. The value after a done turn, and after the last recorded turn of an episode, is 0:
    rollout workers only emit finished episodes, so the last turn is terminal.
    """
    advantages = torch.zeros_like(values, dtype=torch.float32)
    next_advantage, next_value = 0.0, 0.0
    # Backwards through time, as in every GAE: each turn's advantage folds in its successor's.
    for i in range(len(rewards) - 1, -1, -1):
        # A new episode starts after this turn (walking backwards): nothing flows across it.
        last_of_episode = i + 1 == len(rewards) or episode_index[i + 1] != episode_index[i]
        if last_of_episode or bool(dones[i]):
            next_advantage, next_value = 0.0, 0.0
        # TD error of this verification step: the verdict's reward plus the discounted value of
        # the next state (the dialogue after the feedback), less this state's value.
        delta = float(rewards[i]) + gamma * next_value - float(values[i])
        # lambda trades the critic's bias (0: one-step TD) for the returns' variance (1: Monte Carlo).
        next_advantage = delta + gamma * lam * next_advantage
        next_value = float(values[i])
        advantages[i] = next_advantage
    # Value targets: what the critic regresses on (advantage = return - value).
    return advantages, advantages + values.float()


def normalise(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std with statistics that may come from every rank, not just this one."""
    return (x - mean) / torch.sqrt(var + eps)
