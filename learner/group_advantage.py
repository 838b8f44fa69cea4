"""Group-relative turn advantages: answers to the same task instance compared with each other.

With `training.group_size` g, every task instance (one GP hand, one V-IRL route) is played by
g episodes of the same policy. A turn's advantage is its discounted return-to-go minus the mean
return-to-go of the group's turns at the same position, so that what is reinforced is what
made *this* attempt better than the others on the same question, not that the question was
easy. The baseline needs no critic, which matters most when the value head starts untrained
and a task's difficulty varies widely from instance to instance (GRPO, RLOO and Dr. GRPO use
the same idea for single-turn answers; this is its verification-step form).

The returns are not divided by the group's standard deviation (as GRPO does): that would give
the most weight to groups whose answers barely differ. Batch-level standardisation
(`normalize_advantages`) still applies afterwards.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

import torch


def returns_to_go(rewards: torch.Tensor, episode_index: Sequence[Hashable], gamma: float) -> torch.Tensor:
    """Discounted return from each turn to the end of its episode (turns listed episode by
    episode, in turn order)."""
    returns = torch.zeros(len(rewards), dtype=torch.float32)
    following = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        if i + 1 == len(rewards) or episode_index[i + 1] != episode_index[i]:
            following = 0.0
        following = float(rewards[i]) + gamma * following
        returns[i] = following
    return returns


def group_advantages(
    rewards: torch.Tensor,
    episode_index: Sequence[Hashable],
    group_index: Sequence[Hashable],
    turn_index: Sequence[int],
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) per turn. A turn that no other episode of its group reached has
    advantage 0: nothing to compare it with."""
    returns = returns_to_go(rewards, episode_index, gamma)
    members: dict[tuple[Hashable, int], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(group_index, turn_index, strict=True)):
        members[key].append(i)
    advantages = torch.zeros_like(returns)
    for rows in members.values():
        index = torch.tensor(rows, dtype=torch.long)
        advantages[index] = returns[index] - returns[index].mean()
    return advantages, returns
