"""One sequence per episode: every turn of a sequential-revision episode read in one forward.

Turn t+1's prompt is usually turn t's prompt + its sampled answer + the feedback (and, for
ChatML templates, the newline after `<|im_end|>` that the engine never emits: it is the first
id of the next prompt's continuation, never of a response). When that holds token for token,
checked on the stored ids, the last turn's prompt + answer contains every earlier turn's
prompt and answer at the same positions, with the same causal context. So one row gives every
turn's answer log-probs (logits at the positions before its answer tokens) and its value (at
its last prompt token, `len(prompt) - 1`, exactly where the per-turn row reads it).

A packed row is therefore laid out as
    [ prompt_0 | answer_0 | feedback_0 ... | answer_1 | ... | prompt_{T-1} tail | answer_{T-1} ]
with turn t's answer at columns len(prompt_t) .. len(prompt_t) + len(answer_t) - 1. The loss
stays per turn: a micro-batch's `rows`, `token_turn` and `turn_weight` index turns, not
sequences; `logit_rows` and `value_rows` say which sequence each token and value is read from.

Vision-language episodes pack the same way, with the last turn's image tensors for the row.
That reads what each turn's own row reads when every earlier turn's images are the first
images of the last turn's (the same image references, in order; GP-VL shows one hand for the
whole dialogue, V-IRL-VL's feedback within a position adds no image) and its tensors agree
with the last turn's over its tokens (model_inputs.vision.reads_as_prefix): LLaVA's pixels and
Qwen2-VL's patches and grids do not depend on the text (the expanded placeholders are part of
the ids `extends` compares, and M-RoPE positions follow from the ids before a token); Mllama's
cross-attention mask, extended over each answer as collate extends it, equals the last turn's
on those tokens, and an earlier turn must show all of the last turn's images (its tokens
before the first image attend to every image of the row). An earlier turn's answer then sits
where the later prompt lets it see exactly the images it saw when it was sampled.

An episode that does not extend as a whole (a restart: V-IRL after a correct action, with
the next view's image; re-tokenised text) is read one sequence per run of turns that do
extend, each run exactly as a packed episode (a run of one turn is that turn's own row);
turns whose images are not their run's last turn's first ones keep one row per turn; a batch
may hold all of these. packed_share counts whole episodes read as one sequence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from contracts.learner_messages import PACK_FALLBACK_REASONS
from learner.batch import MicroBatch, Turns, collate_turns, vision_batch

NOT_EXTENDING, VISION, DISABLED = PACK_FALLBACK_REASONS
"""Fallback reasons: some turn's prompt is not the previous prompt + answer + more ids; some
turn's images are not the first images of the last turn's (or its image tensors disagree with
the last turn's over its tokens); pack_episodes is off."""


@dataclass(frozen=True)
class Unit:
    """Turns read by one sequence: a whole packed episode, a run of an episode's turns that
    extend each other, or a single turn."""

    rows: tuple[int, ...]
    """Turn rows of the Turns, in turn order; the last one's prompt + answer is the sequence."""
    packed: bool
    """True when the unit's turns are read as one sequence (its last turn's): a whole episode
    (one-turn episodes too) or a run of several turns."""
    whole: bool = False
    """True when the unit is its whole episode (what packed_share counts)."""


@dataclass
class PackingPlan:
    """How an update reads its batch: the units, and why episodes were not packed."""

    units: list[Unit]
    fallback: dict[str, int]
    """Episodes not packed, by reason."""


def extends(turns: Turns, previous: int, current: int) -> bool:
    """Whether turn `current`'s prompt starts with turn `previous`'s prompt + answer, id for id."""
    head = turns.prompt_ids[previous] + turns.response_ids[previous]
    prompt = turns.prompt_ids[current]
    return len(prompt) >= len(head) and prompt[: len(head)] == head


def fallback_reason(turns: Turns, rows: list[int], enabled: bool) -> str | None:
    """Why the episode of `rows` (in turn order) cannot be one sequence; None when it can."""
    if not enabled:
        return DISABLED
    if not all(extends(turns, a, b) for a, b in zip(rows, rows[1:], strict=False)):
        return NOT_EXTENDING
    if not all(images_extend(turns, row, rows[-1]) for row in rows[:-1]):
        return VISION
    return None


def images_extend(turns: Turns, row: int, last: int) -> bool:
    """Whether turn `row`, read inside turn `last`'s row with `last`'s image tensors, sees what
    its own row shows it: its images are the first of `last`'s, by reference and in order,
    and its tensors agree with `last`'s over its tokens (the family decides what that needs)."""
    from model_inputs.vision import reads_as_prefix

    if turns.vision is None:
        return True
    refs, later = turns.image_refs[row], turns.image_refs[last]
    if refs != later[: len(refs)]:
        return False
    return reads_as_prefix(turns.vision[row], turns.length(row), turns.vision[last])


def plan_units(turns: Turns, enabled: bool = True) -> PackingPlan:
    """Units of every episode of the batch, in row order (the same on every rank). An episode
    that does not extend as a whole is still read one sequence per run of turns that do (V-IRL
    restarts its dialogue after each correct action, and each restart begins a run)."""
    units: list[Unit] = []
    fallback: Counter[str] = Counter()
    for rows in turns.episodes().values():
        reason = fallback_reason(turns, rows, enabled)
        if reason is None:
            units.append(Unit(tuple(rows), packed=True, whole=True))
            continue
        fallback[reason] += 1
        runs = extending_runs(turns, rows) if reason == NOT_EXTENDING else [[r] for r in rows]
        units += [Unit(tuple(run), packed=len(run) > 1) for run in runs]
    return PackingPlan(units, dict(fallback))


def extending_runs(turns: Turns, rows: list[int]) -> list[list[int]]:
    """The episode's rows split wherever a turn does not extend the one before; a run whose
    images are not its last turn's first ones is read turn by turn."""
    runs = [[rows[0]]]
    for previous, current in zip(rows, rows[1:], strict=False):
        if extends(turns, previous, current):
            runs[-1].append(current)
        else:
            runs.append([current])
    readable: list[list[int]] = []
    for run in runs:
        if all(images_extend(turns, row, run[-1]) for row in run[:-1]):
            readable.append(run)
        else:
            readable += [[row] for row in run]
    return readable


def unit_tokens(turns: Turns, unit: Unit) -> int:
    """Tokens the learner forwards for `unit` (without padding)."""
    if unit.packed:
        return turns.length(unit.rows[-1])
    return sum(turns.length(row) for row in unit.rows)


def read_stats(turns: Turns, plan: PackingPlan) -> dict[str, float | int]:
    """tokens_read_per_answer_token (1.0 is the floor), packed_share and the fallback counts
    (UpdateStats' fields: flat numbers, so that they reach training.jsonl)."""
    return read_stats_of(read_counts(turns, plan))


def read_counts(turns: Turns, plan: PackingPlan) -> dict[str, int]:
    """The sums read_stats is made of; a rank's sums over its shard add up to the batch's."""
    return {"tokens_read": sum(unit_tokens(turns, u) for u in plan.units),
            "answer_tokens": sum(len(ids) for ids in turns.response_ids),
            "packed_episodes": sum(u.whole for u in plan.units),
            **{f"pack_fallback_{reason}": plan.fallback.get(reason, 0)
               for reason in PACK_FALLBACK_REASONS}}


def read_stats_of(counts: Mapping[str, float]) -> dict[str, float | int]:
    """read_stats from read_counts (one rank's, or their sum over ranks)."""
    fallback = {f"pack_fallback_{reason}": int(counts[f"pack_fallback_{reason}"])
                for reason in PACK_FALLBACK_REASONS}
    episodes = counts["packed_episodes"] + sum(fallback.values())
    return {"tokens_read_per_answer_token": counts["tokens_read"] / max(counts["answer_tokens"], 1),
            "packed_share": counts["packed_episodes"] / max(episodes, 1), **fallback}


def split_units(turns: Turns, units: list[Unit], size: int) -> list[list[Unit]]:
    """Micro-batches of at most `size` turns (a unit with more turns goes alone), similar
    lengths together. With single-turn units this is split_micro_batches exactly."""
    ordered = sorted(units, key=lambda u: unit_tokens(turns, u))
    chunks: list[list[Unit]] = []
    count = 0
    for unit in ordered:
        if not chunks or count + len(unit.rows) > size:
            chunks.append([])
            count = 0
        chunks[-1].append(unit)
        count += len(unit.rows)
    return chunks


def collate_units(turns: Turns, units: list[Unit], pad_id: int, weight: float = 1.0) -> MicroBatch:
    """One right-padded row per unit; tokens, values and weights per turn in unit order."""
    if all(len(u.rows) == 1 for u in units):
        # Nothing shared: the per-turn rows exactly (vision inputs included).
        return collate_turns(turns, [u.rows[0] for u in units], pad_id, weight)
    sequences = [turns.prompt_ids[u.rows[-1]] + turns.response_ids[u.rows[-1]] for u in units]
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(units), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(units), width), dtype=torch.long)
    cols: dict[str, list[int]] = {k: [] for k in ("rows", "cols", "targets", "turn", "vrow", "vidx")}
    rows: list[int] = []
    for s, (unit, sequence) in enumerate(zip(units, sequences, strict=True)):
        input_ids[s, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[s, : len(sequence)] = 1
        for row in unit.rows:
            _place_turn(cols, s, len(rows), len(turns.prompt_ids[row]), turns.response_ids[row])
            rows.append(row)
    as_long = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return MicroBatch(rows=rows, input_ids=input_ids, attention_mask=attention_mask,
                      logit_rows=as_long(cols["rows"]), logit_cols=as_long(cols["cols"]),
                      targets=as_long(cols["targets"]), value_index=as_long(cols["vidx"]),
                      token_turn=as_long(cols["turn"]),
                      turn_weight=torch.full((len(rows),), float(weight)),
                      vision_inputs=_unit_vision(turns, units, sequences, width),
                      value_rows=as_long(cols["vrow"]))


def _unit_vision(turns: Turns, units: list[Unit], sequences: list[list[int]],
                 width: int) -> dict[str, torch.Tensor]:
    """Each unit's image tensors: its last turn's, whose prompt + answer the row is (a packed
    episode's earlier turns see their images through it: plan_units checked images_extend)."""
    if turns.vision is None:
        return {}
    return vision_batch([turns.vision[u.rows[-1]] for u in units],
                        [len(s) for s in sequences], width)


def _place_turn(cols: dict[str, list[int]], sequence: int, turn: int, start: int,
                response: list[int]) -> None:
    """Turn `turn`'s answer, starting at column `start` of `sequence`: each token is predicted
    by the logits one column before it; the value is read at the last prompt token."""
    cols["rows"] += [sequence] * len(response)
    cols["cols"] += range(start - 1, start - 1 + len(response))
    cols["targets"] += response
    cols["turn"] += [turn] * len(response)
    cols["vrow"].append(sequence)
    cols["vidx"].append(start - 1)
