"""The trajectory schema: what a valid batch holds, and clear errors for malformed records."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.trajectory import (
    TRAJECTORY_SCHEMA,
    BatchMeta,
    EpisodeRecord,
    TrajectoryError,
    TurnRecord,
    to_record_batch,
    validate_trajectories,
)


def make_episode(episode_id: str, turns: int, restart_after: int | None = None) -> EpisodeRecord:
    """An episode whose prompts grow by answer + feedback, as the runner builds them."""
    record = EpisodeRecord(episode_id=episode_id, task="gp-l", variant="id", seed=7)
    prompt = [1, 5, 6]
    for index in range(turns):
        response = [10 + index, 11, 3]
        last = index == turns - 1
        record.turns.append(TurnRecord(
            prompt_ids=prompt, response_ids=response, response_logprobs=[-0.5, -1.0, -0.1],
            policy_version=2, truncated=False, reward=5.0 if last else -3.0, done=last,
            success=last, outcome="success" if last else "illegal", feedback="Try again.",
            parsed_answer="1+2", recognition_ok=None, restart=index == restart_after,
        ))
        prompt = [1, 9] if index == restart_after else prompt + response + [4, 20, 3, 6]
    return record


def with_column(batch: pa.RecordBatch, name: str, values: list) -> pa.RecordBatch:
    index = batch.schema.get_field_index(name)
    column = pa.array(values, type=batch.schema.field(name).type)
    return batch.set_column(index, batch.schema.field(name), column)


@pytest.fixture
def batch() -> pa.RecordBatch:
    return to_record_batch([make_episode("ep-a", 3), make_episode("ep-b", 2, restart_after=0)], "w0")


def test_valid_batch_has_one_row_per_turn(batch: pa.RecordBatch) -> None:
    assert batch.schema.equals(TRAJECTORY_SCHEMA)
    assert batch.num_rows == 5
    assert batch.column("episode_id").to_pylist() == ["ep-a"] * 3 + ["ep-b"] * 2
    assert batch.column("turn").to_pylist() == [0, 1, 2, 0, 1]
    assert batch.column("done").to_pylist() == [False, False, True, False, True]
    assert batch.column("worker_id").unique().to_pylist() == ["w0"]
    validate_trajectories(pa.Table.from_batches([batch]))


@pytest.mark.parametrize(
    ("name", "row", "value", "message"),
    [
        ("response_logprobs", 1, [-0.5, -1.0], "2 log-probs for 3 response tokens"),
        ("response_logprobs", 3, [-0.5, 0.7, -0.1], "log-prob not finite or > 0"),
        ("response_ids", 4, [], "empty token list"),
        ("prompt_ids", 0, [1, -4], "negative token id"),
        ("prompt_ids", 2, [1, 5, 6, 99], "does not start with the previous turn's prompt"),
        ("reward", 2, float("nan"), "not a finite number"),
        ("done", 1, True, "done before the last turn"),
        ("done", 4, False, "the last turn is not marked done"),
        ("turn", 1, 2, "turn 2 where turn 1 belongs"),
        ("policy_version", 0, -1, "negative version"),
    ],
)
def test_malformed_record_names_field_and_episode(
    batch: pa.RecordBatch, name: str, row: int, value: object, message: str
) -> None:
    values = batch.column(name).to_pylist()
    values[row] = value
    with pytest.raises(TrajectoryError, match=message) as error:
        validate_trajectories(with_column(batch, name, values))
    episode = batch.column("episode_id")[row].as_py()
    assert f"'{name}'" in str(error.value) and repr(episode) in str(error.value)


def test_batch_meta_summarises_without_tokens(batch: pa.RecordBatch) -> None:
    meta = BatchMeta.of(batch)
    assert (meta.worker, meta.episode_ids, meta.episodes, meta.turns) == ("w0", ["ep-a", "ep-b"], 2, 5)
    assert (meta.oldest_version, meta.newest_version, meta.successes) == (2, 2, 2)
    assert meta.generated_tokens == 15 and meta.total_reward == 5.0 * 2 - 3.0 * 3
    assert meta.prompt_tokens == sum(len(ids) for ids in batch.column("prompt_ids").to_pylist())


def test_missing_value_is_rejected(batch: pa.RecordBatch) -> None:
    values = batch.column("feedback").to_pylist()
    values[3] = None
    bad = with_column(batch, "feedback", values)
    with pytest.raises(TrajectoryError, match="'feedback' of episode 'ep-b'.*missing value"):
        validate_trajectories(bad)


def test_schema_mismatch_is_rejected(batch: pa.RecordBatch) -> None:
    with pytest.raises(TrajectoryError, match="'reward' is missing"):
        validate_trajectories(batch.drop_columns(["reward"]))
    retyped = batch.set_column(
        batch.schema.get_field_index("reward"), pa.field("reward", pa.string()),
        pa.array(["5"] * batch.num_rows),
    )
    with pytest.raises(TrajectoryError, match="'reward' has type string, expected float"):
        validate_trajectories(retyped)
    extra = batch.append_column("note", pa.array(["x"] * batch.num_rows))
    with pytest.raises(TrajectoryError, match="'note'"):
        validate_trajectories(extra)


def test_interleaved_episodes_are_rejected() -> None:
    a, b = make_episode("ep-a", 2), make_episode("ep-b", 1)
    table = pa.Table.from_batches([to_record_batch([a], "w"), to_record_batch([b], "w")])
    shuffled = table.take([0, 2, 1]).combine_chunks().to_batches()[0]
    with pytest.raises(TrajectoryError, match="episode 'ep-a'"):
        validate_trajectories(shuffled)


def test_builder_refuses_malformed_episodes() -> None:
    broken = make_episode("ep-x", 2)
    broken.turns[0].response_logprobs = [-1.0]
    with pytest.raises(TrajectoryError, match="'response_logprobs' of episode 'ep-x'"):
        to_record_batch([broken], "w0")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.one_of(st.none(), st.integers(0, 4))),
                min_size=1, max_size=6))
def test_any_well_formed_episodes_validate(shapes: list[tuple[int, int | None]]) -> None:
    episodes = [make_episode(f"ep-{i}", turns, restart) for i, (turns, restart) in enumerate(shapes)]
    batch = to_record_batch(episodes, "w")
    assert batch.num_rows == sum(turns for turns, _ in shapes)
