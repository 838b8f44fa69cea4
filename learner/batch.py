"""From trajectory record batches to padded model inputs.

Rollout workers store one row per verification step (turn) in Arrow record batches. The learner
reads only the columns below, keeps token ids and behaviour log-probs exactly as sampled, and
builds micro-batches whose rows are prompt + answer, right-padded.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import torch

COLUMNS = ("episode_id", "task", "variant", "seed", "turn", "policy_version", "prompt_ids", "response_ids",
           "response_logprobs", "reward", "done", "success", "image_refs")
"""Trajectory columns the learner reads (names of the rollout workers' schema)."""


@dataclass
class Turns:
    """Every turn of a batch of finished episodes, grouped by episode and in turn order."""

    episode_ids: list[str]
    instances: list[tuple[str, str, int]]
    """(task, variant, seed) of each turn's episode: the task instance it played."""
    turn_index: list[int]
    policy_versions: list[int]
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    behaviour_logprobs: list[list[float]]
    rewards: torch.Tensor
    dones: torch.Tensor
    successes: torch.Tensor
    image_refs: list[list[str]]
    vision: list[dict[str, torch.Tensor]] | None = None
    """Each turn's image tensors (pixel_values, ...; Mllama's cross-attention mask, over the
    prompt) once a VisionInputs has built them; None for text models."""

    def __len__(self) -> int:
        return len(self.episode_ids)

    def length(self, i: int) -> int:
        return len(self.prompt_ids[i]) + len(self.response_ids[i])

    def episodes(self) -> dict[str, list[int]]:
        """Turn indices of each episode, in turn order."""
        return _rows_by(self.episode_ids)


def _rows_by(keys: list[Hashable]) -> dict[Any, list[int]]:
    """Row indices of each distinct key, in row order."""
    rows: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        rows.setdefault(key, []).append(i)
    return rows


def turns_from_record_batches(batches: list[pa.RecordBatch]) -> Turns:
    """Concatenate record batches and order the rows by (episode, turn)."""
    return turns_from_table(pa.Table.from_batches(batches))


def turns_from_table(table: pa.Table) -> Turns:
    """The rows of a trajectory table (it may have none) ordered by (episode, turn)."""
    rows = table.select(list(COLUMNS)).to_pydict()
    order = sorted(range(len(rows["turn"])), key=lambda i: (rows["episode_id"][i], rows["turn"][i]))
    pick = lambda name: [rows[name][i] for i in order]  # noqa: E731
    return Turns(
        episode_ids=[str(e) for e in pick("episode_id")], turn_index=pick("turn"),
        instances=list(zip(pick("task"), pick("variant"), pick("seed"), strict=True)),
        policy_versions=pick("policy_version"), prompt_ids=pick("prompt_ids"),
        response_ids=pick("response_ids"), behaviour_logprobs=pick("response_logprobs"),
        rewards=torch.tensor(pick("reward"), dtype=torch.float32),
        dones=torch.tensor(pick("done"), dtype=torch.bool),
        successes=torch.tensor(pick("success"), dtype=torch.bool),
        image_refs=[list(refs) for refs in pick("image_refs")],
    )


@dataclass
class MicroBatch:
    """Rows = turns (or packed episodes, see value_rows). Scored positions are flattened: token k of the batch is the answer token
    targets[k], predicted by the logits at (logit_rows[k], logit_cols[k])."""

    rows: list[int]
    """Indices into the Turns this micro-batch was cut from."""
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    logit_rows: torch.Tensor
    logit_cols: torch.Tensor
    targets: torch.Tensor
    value_index: torch.Tensor
    """Position of each row's last prompt token: where its state value is read."""
    token_turn: torch.Tensor
    turn_weight: torch.Tensor
    """1 for real rows; 0 for a padding micro-batch that only keeps ranks in step."""
    vision_inputs: dict[str, torch.Tensor]
    """Image tensors of the rows in row order (empty for text models); text-aligned ones are
    as wide as input_ids."""
    value_rows: torch.Tensor | None = None
    """Which row each turn's value is read from, when rows are packed episodes holding several
    turns (learner.packing); None: turn b is row b."""

    @property
    def num_tokens(self) -> int:
        return int(self.targets.numel())

    def model_inputs(self) -> dict[str, torch.Tensor]:
        packed = {} if self.value_rows is None else {"value_rows": self.value_rows}
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "logit_rows": self.logit_rows, "logit_cols": self.logit_cols,
                "targets": self.targets, "value_index": self.value_index, **packed,
                **self.vision_inputs}


def collate(prompts: list[list[int]], responses: list[list[int]], rows: list[int], pad_id: int,
            weight: float = 1.0, vision: list[dict[str, torch.Tensor]] | None = None) -> MicroBatch:
    """Right-padded prompt + answer rows and the flattened positions of the answer tokens."""
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    width = max(lengths)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    logit_rows, logit_cols, targets, token_turn, value_index = [], [], [], [], []
    for b, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        sequence = prompt + response
        input_ids[b, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[b, : len(sequence)] = 1
        start = len(prompt)
        logit_rows += [b] * len(response)
        logit_cols += range(start - 1, start - 1 + len(response))
        targets += response
        token_turn += [b] * len(response)
        value_index.append(start - 1)
    as_long = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return MicroBatch(rows=list(rows), input_ids=input_ids, attention_mask=attention_mask,
                      logit_rows=as_long(logit_rows), logit_cols=as_long(logit_cols),
                      targets=as_long(targets), value_index=as_long(value_index),
                      token_turn=as_long(token_turn),
                      turn_weight=torch.full((len(prompts),), float(weight)),
                      vision_inputs=vision_batch(vision, lengths, width))


def collate_turns(turns: Turns, rows: list[int], pad_id: int, weight: float = 1.0) -> MicroBatch:
    vision = None if turns.vision is None else [turns.vision[i] for i in rows]
    return collate([turns.prompt_ids[i] for i in rows], [turns.response_ids[i] for i in rows],
                   rows, pad_id, weight, vision)


def vision_batch(vision: list[dict[str, torch.Tensor]] | None, lengths: list[int],
                 width: int) -> dict[str, torch.Tensor]:
    """The rows' image tensors as one batch; text-aligned ones (Mllama's cross-attention mask)
    cover each row's prompt + answer and its right padding."""
    if not vision:
        return {}
    from model_inputs.vision import batch_vision_inputs

    return batch_vision_inputs(vision, lengths, width, left=False)


def split_micro_batches(rows: list[int], lengths: list[int], size: int) -> list[list[int]]:
    """Chunks of at most `size` rows, similar lengths together so that padding stays small."""
    ordered = sorted(rows, key=lambda i: lengths[i])
    return [ordered[k : k + size] for k in range(0, len(ordered), size)]
