"""The trajectory format: one Arrow row per verification step, one fixed schema.

Rollout workers write finished episodes in this shape and every consumer (trajectory queue,
learner, evaluation) reads the same shape. `validate_trajectories` runs on both ends, so a
malformed record is stopped where it is made and again where it would be trained on, with an
error that names the field and the episode.

Token ids are stored exactly as the engine produced them. Within an episode, turn t+1's
prompt starts with turn t's prompt followed by turn t's response (unless the dialogue
restarted): the learner can therefore score every turn from its own row without
re-tokenising anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"

TRAJECTORY_SCHEMA = pa.schema(
    [
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("worker_id", pa.string(), nullable=False),
        pa.field("policy_version", pa.int64(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("turn", pa.int32(), nullable=False),
        pa.field("prompt_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("response_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("response_logprobs", pa.list_(pa.float32()), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
        pa.field("reward", pa.float32(), nullable=False),
        pa.field("done", pa.bool_(), nullable=False),
        pa.field("success", pa.bool_(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("feedback", pa.string(), nullable=False),
        pa.field("parsed_answer", pa.string(), nullable=False),
        pa.field("recognition_ok", pa.bool_(), nullable=True),
        pa.field("restart", pa.bool_(), nullable=False),
        pa.field("out_of_context", pa.bool_(), nullable=False),
        pa.field("image_refs", pa.list_(pa.string()), nullable=False),
    ],
    metadata={"revisor.trajectory.version": SCHEMA_VERSION},
)
"""Columns, in order. Per-turn meanings:
policy_version: the policy that sampled this turn's response.
turn: 0-based index of the verification step within the episode.
truncated: generation stopped at max_tokens; the next prompt closes the turn with the
  template's end-of-turn ids, which are not part of response_ids and carry no log-probs.
success: episode-level success so far (final on the row with done).
restart: after this turn the dialogue restarted from a fresh prompt (V-IRL after a correct
  action), so the next turn's prompt does not extend this one.
out_of_context: the episode was ended after this turn because its next prompt would not fit
  the model's context; the row is terminal although the task had attempts left.
recognition_ok: vision variants only: whether the reported cards/landmarks were right.
image_refs: stable names of the images shown with this turn's prompt.
"""

_LOGPROB_TOLERANCE = 1e-3


class TrajectoryError(ValueError):
    """A trajectory record does not match the schema or its invariants."""


@dataclass(slots=True)
class TurnRecord:
    """One verification step as it happened: what the model saw, sampled and was told."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_logprobs: list[float]
    policy_version: int
    truncated: bool
    reward: float
    done: bool
    success: bool
    outcome: str
    feedback: str
    parsed_answer: str
    recognition_ok: bool | None
    restart: bool
    image_refs: tuple[str, ...] = ()
    out_of_context: bool = False


@dataclass(slots=True)
class EpisodeRecord:
    """A finished episode: its identity and its turns in order."""

    episode_id: str
    task: str
    variant: str
    seed: int
    turns: list[TurnRecord] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.turns) and self.turns[-1].success


def to_record_batch(episodes: Sequence[EpisodeRecord], worker_id: str) -> pa.RecordBatch:
    """One validated record batch holding every turn of `episodes`, episode by episode."""
    rows = [(episode, index, turn) for episode in episodes for index, turn in enumerate(episode.turns)]
    columns = {
        "episode_id": [e.episode_id for e, _, _ in rows],
        "worker_id": [worker_id] * len(rows),
        "task": [e.task for e, _, _ in rows],
        "variant": [e.variant for e, _, _ in rows],
        "seed": [e.seed for e, _, _ in rows],
        "turn": [i for _, i, _ in rows],
    }
    for name in TurnRecord.__slots__:
        columns[name] = [getattr(turn, name) for _, _, turn in rows]
    arrays = [pa.array(columns[f.name], type=f.type) for f in TRAJECTORY_SCHEMA]
    batch = pa.RecordBatch.from_arrays(arrays, schema=TRAJECTORY_SCHEMA)
    validate_trajectories(batch)
    return batch


class BatchMeta(BaseModel):
    """What the trajectory queue and the driver know of a record batch: ids and counts, never
    tokens (the batch itself travels by object reference)."""

    model_config = ConfigDict(frozen=True)

    worker: str
    episode_ids: list[str] = Field(min_length=1)
    oldest_version: int
    """The oldest policy version that sampled any turn in the batch."""
    newest_version: int
    turns: int = Field(ge=1)
    prompt_tokens: int = 0
    generated_tokens: int = 0
    total_reward: float = 0.0
    successes: int = 0
    loaded_version: int = 0
    """The policy version of the weights the worker had loaded when it shipped the batch."""
    loaded_fingerprint: str | None = None
    """weight_transport.fingerprint of those weights as its engine received them ('initial':
    none published yet; None: not fingerprinted), for the sync-divergence guard."""
    loaded_publication: int = 0
    """The oldest WeightPublication.publication its turns can have been sampled under: the
    one the worker had loaded when it took the batch's first episode (0: none received yet)."""

    @property
    def episodes(self) -> int:
        return len(self.episode_ids)

    @classmethod
    def of(cls, batch: pa.RecordBatch) -> BatchMeta:
        """The summary of a validated trajectory batch."""
        versions = batch.column("policy_version")
        done = batch.column("done")
        return cls(
            worker=batch.column("worker_id")[0].as_py(),
            episode_ids=pc.unique(batch.column("episode_id")).to_pylist(),
            oldest_version=pc.min(versions).as_py(),
            newest_version=pc.max(versions).as_py(),
            turns=batch.num_rows,
            prompt_tokens=_total_length(batch.column("prompt_ids")),
            generated_tokens=_total_length(batch.column("response_ids")),
            total_reward=pc.sum(batch.column("reward")).as_py(),
            successes=pc.sum(pc.and_(done, batch.column("success"))).as_py() or 0,
        )


def _total_length(column: pa.Array) -> int:
    return pc.sum(pc.list_value_length(column)).as_py() or 0


def validate_trajectories(batch: pa.RecordBatch | pa.Table) -> None:
    """Raise TrajectoryError naming the field and episode of the first malformed record.

    Checks the schema, missing values, per-row consistency (one log-prob per response token,
    finite rewards, log-probs <= 0, non-negative token ids) and per-episode structure (turns
    0..n-1 in consecutive rows, done exactly on the last one, each prompt extending the
    previous prompt and response unless the dialogue restarted).
    """
    _check_schema(batch)
    if batch.num_rows == 0:
        return
    episode_ids = batch.column("episode_id").to_pylist()
    _check_nulls(batch, episode_ids)
    _check_rows(batch, episode_ids)
    _check_episodes(batch, episode_ids)


def _check_schema(batch: pa.RecordBatch | pa.Table) -> None:
    expected = {f.name: f.type for f in TRAJECTORY_SCHEMA}
    actual = {f.name: f.type for f in batch.schema}
    for name, kind in expected.items():
        if name not in actual:
            raise TrajectoryError(f"trajectory field '{name}' is missing (expected {kind})")
        if actual[name] != kind:
            raise TrajectoryError(f"trajectory field '{name}' has type {actual[name]}, expected {kind}")
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise TrajectoryError(f"trajectory fields {extra} are not part of the schema")
    if batch.schema.names != TRAJECTORY_SCHEMA.names:
        raise TrajectoryError(f"trajectory fields are out of order: {batch.schema.names}")


def _fail(batch_ids: list[str], row: int, name: str, problem: str) -> TrajectoryError:
    return TrajectoryError(
        f"trajectory field '{name}' of episode {batch_ids[row]!r} (row {row}): {problem}"
    )


def _first(mask: pa.Array | np.ndarray) -> int | None:
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(hits[0]) if hits.size else None


def _check_nulls(batch: pa.RecordBatch | pa.Table, ids: list[str | None]) -> None:
    if None in ids:
        raise TrajectoryError(f"trajectory field 'episode_id' is null in row {ids.index(None)}")
    for f in TRAJECTORY_SCHEMA:
        column = batch.column(f.name)
        if not f.nullable and column.null_count:
            row = _first(pc.is_null(column).to_numpy(zero_copy_only=False))
            raise _fail(ids, row, f.name, "missing value")
        if pa.types.is_list(f.type):
            flat = pc.list_flatten(column)
            if flat.null_count:
                row = _first([None in (value or ()) for value in column.to_pylist()])
                raise _fail(ids, row, f.name, "missing element in the list")


def _check_rows(batch: pa.RecordBatch | pa.Table, ids: list[str]) -> None:
    response_lengths = pc.list_value_length(batch.column("response_ids")).to_numpy()
    logprob_lengths = pc.list_value_length(batch.column("response_logprobs")).to_numpy()
    prompt_lengths = pc.list_value_length(batch.column("prompt_ids")).to_numpy()
    for name, lengths in (("prompt_ids", prompt_lengths), ("response_ids", response_lengths)):
        row = _first(lengths == 0)
        if row is not None:
            raise _fail(ids, row, name, "empty token list")
    row = _first(response_lengths != logprob_lengths)
    if row is not None:
        raise _fail(ids, row, "response_logprobs",
                    f"{logprob_lengths[row]} log-probs for {response_lengths[row]} response tokens")
    for name in ("prompt_ids", "response_ids"):
        _check_flat(batch, ids, name, lambda values: values < 0, "negative token id")
    _check_flat(batch, ids, "response_logprobs",
                lambda v: ~np.isfinite(v) | (v > _LOGPROB_TOLERANCE), "log-prob not finite or > 0")
    rewards = batch.column("reward").to_numpy()
    row = _first(~np.isfinite(rewards))
    if row is not None:
        raise _fail(ids, row, "reward", f"not a finite number ({rewards[row]})")
    row = _first(batch.column("policy_version").to_numpy() < 0)
    if row is not None:
        raise _fail(ids, row, "policy_version", "negative version")


def _check_flat(batch: pa.RecordBatch | pa.Table, ids: list[str], name: str, bad, problem: str) -> None:
    """Apply `bad` to all list elements at once and report the row of the first offender."""
    column = batch.column(name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    element = _first(bad(values))
    if element is not None:
        row_of_element = pc.list_parent_indices(column).to_numpy()[element]
        raise _fail(ids, int(row_of_element), name, problem)


def _check_episodes(batch: pa.RecordBatch | pa.Table, ids: list[str]) -> None:
    turns = batch.column("turn").to_pylist()
    done = batch.column("done").to_pylist()
    restart = batch.column("restart").to_pylist()
    prompts = batch.column("prompt_ids").to_pylist()
    responses = batch.column("response_ids").to_pylist()
    seen: set[str] = set()
    for row, episode in enumerate(ids):
        first_row = row == 0 or ids[row - 1] != episode
        last_row = row + 1 == len(ids) or ids[row + 1] != episode
        if first_row:
            if episode in seen:
                raise _fail(ids, row, "episode_id", "the episode's rows are not consecutive")
            seen.add(episode)
        expected_turn = 0 if first_row else turns[row - 1] + 1
        if turns[row] != expected_turn:
            raise _fail(ids, row, "turn", f"turn {turns[row]} where turn {expected_turn} belongs")
        if done[row] != last_row:
            problem = "the last turn is not marked done" if last_row else "done before the last turn"
            raise _fail(ids, row, "done", problem)
        if not first_row and not restart[row - 1]:
            _check_prompt_extends(ids, row, prompts[row - 1] + responses[row - 1], prompts[row])


def _check_prompt_extends(ids: list[str], row: int, previous: list[int], prompt: list[int]) -> None:
    if prompt[: len(previous)] != previous:
        raise _fail(ids, row, "prompt_ids",
                    "the prompt does not start with the previous turn's prompt and response")

