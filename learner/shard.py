"""An update's batch cut into one shard per learner rank, before any rank reads it.

Each rank trains on whole groups of episodes: every episode of a task instance (GAE runs along
an episode's turns, a group advantage compares a group's episodes, and a packed episode is one
sequence, so none of them may be cut). Groups go to ranks greedily by token count, biggest
first, to the least loaded rank (lowest rank on ties): deterministic, and the ranks' forwards
and backwards about equally long. Each shard travels to its rank alone, so a rank fetches its
share of the batch, not the whole of it (learner.group).

Pure Arrow and pydantic (no torch): the sharding runs in a light Ray task.
"""

from __future__ import annotations

from collections.abc import Hashable

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field


class RankShard(BaseModel):
    """One rank's part of an update: its trajectory rows, and a turn to pad with."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    rows: pa.Table
    """Every turn of this rank's groups (trajectory schema); no rows when there were fewer
    groups than ranks."""
    filler: pa.Table
    """The batch's shortest turn (one row, the first in (episode, turn) order among equals):
    a rank runs zero-weight micro-batches on it to stay in step with the others' collectives,
    which needs a real turn (same modules, same shapes) even on a rank with no rows."""

    def receipt(self, rank: int) -> ShardReceipt:
        """What a rank says it received (the filler row is not trained on, so not counted)."""
        return ShardReceipt(
            rank=rank, episode_ids=sorted(set(self.rows.column("episode_id").to_pylist())),
            turns=self.rows.num_rows, tokens=sum(_lengths(self.rows)),
            nbytes=self.rows.nbytes + self.filler.nbytes)


class ShardReceipt(BaseModel):
    """The shard one rank trained on: its episodes, turns, tokens and bytes."""

    model_config = ConfigDict(frozen=True)

    rank: int = Field(ge=0)
    episode_ids: list[str]
    turns: int = Field(ge=0)
    tokens: int = Field(ge=0)
    """Prompt + answer tokens of its turns: what the sharding balances."""
    nbytes: int = Field(ge=0)
    """Arrow bytes of what it fetched (its rows and the filler turn)."""


def split_batches(batches: list[pa.RecordBatch], world_size: int) -> list[RankShard]:
    """One shard per rank (index = rank) of the validated trajectory `batches`: every episode
    in exactly one shard, whole groups together, balanced by tokens."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if not batches:
        raise ValueError("an update needs at least one trajectory batch")
    table = pa.Table.from_batches(batches).combine_chunks()
    lengths = _lengths(table)
    shards = assign_groups(_group_keys(table), lengths, world_size)
    filler = table.take([_shortest(table, lengths)])
    return [RankShard(rows=table.take(pa.array(rows, pa.int64())), filler=filler)
            for rows in shards]


def assign_groups(keys: list[Hashable], lengths: list[int], world_size: int) -> list[list[int]]:
    """Row indices of each rank (in row order): rows with the same key stay together, keys go
    biggest first (ties by key) to the rank with the fewest tokens so far (lowest on ties)."""
    groups: dict[Hashable, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    tokens = {key: sum(lengths[row] for row in rows) for key, rows in groups.items()}
    load, shards = [0] * world_size, [[] for _ in range(world_size)]
    for key in sorted(groups, key=lambda k: (-tokens[k], k)):
        target = min(range(world_size), key=lambda r: (load[r], r))
        load[target] += tokens[key]
        shards[target] += groups[key]
    return [sorted(rows) for rows in shards]


def _group_keys(table: pa.Table) -> list[tuple[str, str, int]]:
    """Each row's task instance (task, variant, seed): the episodes of a group share it."""
    columns = [table.column(name).to_pylist() for name in ("task", "variant", "seed")]
    return list(zip(*columns, strict=True))


def _lengths(table: pa.Table) -> list[int]:
    """Prompt + answer tokens of each row."""
    prompt = pc.list_value_length(table.column("prompt_ids"))
    answer = pc.list_value_length(table.column("response_ids"))
    return pc.add(prompt, answer).to_pylist()


def _shortest(table: pa.Table, lengths: list[int]) -> int:
    """The shortest row, the first in (episode, turn) order among equals (the learner's own
    row order, learner.batch)."""
    episodes, turns = table.column("episode_id").to_pylist(), table.column("turn").to_pylist()
    return min(range(table.num_rows), key=lambda i: (lengths[i], episodes[i], turns[i]))
