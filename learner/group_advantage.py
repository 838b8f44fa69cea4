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

from learner.gae import turn_gae


def group_advantages(
    rewards: torch.Tensor,
    episode_index: Sequence[Hashable],
    group_index: Sequence[Hashable],
    turn_index: Sequence[int],
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) per turn. A turn that no other episode of its group reached has
    advantage 0: nothing to compare it with."""
    # GAE with a zero baseline and lambda 1 is the discounted return-to-go
    no_baseline = torch.zeros(len(rewards))
    returns, _ = turn_gae(rewards, no_baseline, no_baseline.bool(), episode_index, gamma, lam=1.0)
    members: dict[tuple[Hashable, int], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(group_index, turn_index, strict=True)):
        members[key].append(i)
    advantages = torch.zeros_like(returns)
    for rows in members.values():
        index = torch.tensor(rows, dtype=torch.long)
        advantages[index] = returns[index] - returns[index].mean()
    return advantages, returns
