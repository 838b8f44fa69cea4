"""The Ray task that reads an update's batches once and cuts them into one shard per rank.

Its own module so that the worker running it imports no torch (learner.group does): it needs
only Ray, Arrow and the trajectory contract.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from contracts.trajectory import validate_trajectories
from learner.shard import split_batches


def cut(refs: list[ray.ObjectRef], world_size: int,
        node_id: str | None = None) -> tuple[int, list[ray.ObjectRef]]:
    """(the batch's Arrow bytes, one RankShard ref per rank) of the record batches `refs`.

    The cut runs in a task, not in the caller (the driver never holds token data), on
    `node_id` where it can (the ranks' node: their shards are then local), with no CPU
    reserved (the ranks hold the CPUs). Each of its return values is an object of its own, so
    a rank fetches only its shard. Waits for the cut: a batch that cannot be read (its worker
    died: ray.exceptions.ObjectLostError) or is malformed (TrajectoryError) fails here, before
    any rank starts."""
    strategy = None if node_id is None else NodeAffinitySchedulingStrategy(node_id, soft=True)
    outputs = _cut_into_shards.options(num_returns=world_size + 1,
                                       scheduling_strategy=strategy).remote(refs, world_size)
    return ray.get(outputs[0]), outputs[1:]


@ray.remote(num_cpus=0)
def _cut_into_shards(refs: list[ray.ObjectRef], world_size: int) -> tuple[Any, ...]:
    """The batch's bytes, then one RankShard per rank, each a return value of its own. The
    refs come in a list so that the task reads them itself; they are validated here, once for
    every rank, before they are cut."""
    batches = ray.get(refs)
    for batch in batches:
        validate_trajectories(batch)
    return (sum(batch.nbytes for batch in batches), *split_batches(batches, world_size))
