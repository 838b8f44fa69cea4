"""V-IRL per-step accuracy split by what the step asks for: a turn or a step forward.

Per-step accuracy alone hides whether a policy reads the rule: about half of a route's
positions want forward(), so a policy that always walks on scores near 50% without ever
turning right. Accuracy on the turning positions (the only ones where the action space, and
so the rule, matters) and on the forward positions tells the two apart. Stop positions (one
per route) are in neither.

Trajectories do not record what a position wanted; evaluation episodes are fixed by their
task and seed, so the ground-truth walk is rebuilt from them (`position_kinds`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

from contracts.tasks import VIRLConfig
from envs.virl import make_episode
from verifier.virl import CORRECT

KINDS = ("turn", "forward")
"""The kinds of position counted apart (a route's single stop() is left out)."""
KindCounts = dict[str, tuple[int, int]]
"""kind -> (positions acted on right, positions)."""


def position_kinds(task: VIRLConfig) -> Callable[[int], tuple[str, ...]]:
    """seed -> the kind of each position of that episode's ground-truth walk ('turn',
    'forward' or 'stop'), cached: every row of an episode asks."""

    @cache
    def kinds(seed: int) -> tuple[str, ...]:
        return tuple(step.kind for step in make_episode(task, seed).steps)

    return kinds


def counts_by_kind(table: dict[str, list], ends: Sequence[bool],
                   kinds_of: Callable[[int], Sequence[str]]) -> KindCounts:
    """Right and total positions per kind. `ends` marks the rows that end a position (see
    cluster/job/evaluation.step_accuracy); an episode's k-th such row is its position k, and
    it is right when its outcome is the verifier's `correct`."""
    order = sorted(range(len(ends)), key=lambda i: (table["episode_id"][i], table["turn"][i]))
    reached: dict[str, int] = {}
    right, total = dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0)
    for i in order:
        if not ends[i]:
            continue
        episode = table["episode_id"][i]
        position = reached.get(episode, 0)
        reached[episode] = position + 1
        kind = kinds_of(table["seed"][i])[position]
        if kind in total:
            total[kind] += 1
            right[kind] += table["outcome"][i] == CORRECT
    return {kind: (right[kind], total[kind]) for kind in KINDS}


def kind_fields(counts: KindCounts) -> dict[str, float | int | None]:
    """EvalPoint's per-kind fields: `<kind>_step_accuracy` (None without such positions) and
    `<kind>_positions`."""
    fields: dict[str, float | int | None] = {}
    for kind, (right, total) in counts.items():
        fields[f"{kind}_step_accuracy"] = right / total if total else None
        fields[f"{kind}_positions"] = total
    return fields
