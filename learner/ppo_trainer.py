"""One rank's PPO update on a batch of finished episodes.

The update follows the data flow of the design: score every turn with the current weights
(old log-probs, old values), compute turn-level GAE per episode, standardise advantages over
all ranks, then run clipped PPO epochs. Each rank gets only its shard of the batch: whole
groups of episodes, balanced by tokens (learner.shard; GAE needs all of an episode's turns, a
group advantage all of a group's episodes). An episode whose turns extend each other is read as
one sequence (learner.packing): the loss is per turn either way, only the forwards are shared.

What needs the whole batch is summed over ranks: the advantage mean and variance, each
minibatch's turn and token counts (the loss divides by them), the loss statistics, the
behaviour gap and the batch's facts (learner.batch_stats).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from contracts.learner_messages import UpdateStats
from learner.batch import MicroBatch, Turns, collate_turns
from learner.batch_stats import whole_batch_stats
from learner.config import PPOConfig
from learner.engine import TrainEngine
from learner.gae import normalise, turn_gae
from learner.group_advantage import group_advantages
from learner.model import PolicyValueModel
from learner.packing import Unit, collate_units, plan_units, split_units
from learner.ppo import PPOInputs, ppo_loss
from learner.vision import VisionInputs


@dataclass
class Scored:
    """What the update needs per turn of this rank's shard (tensors indexed like `rows`)."""

    rows: list[int]
    old_logprobs: dict[int, torch.Tensor]
    ref_logprobs: dict[int, torch.Tensor] | None
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPOTrainer:
    """Clipped PPO on one rank's share of each batch."""

    def __init__(self, engine: TrainEngine, config: PPOConfig, pad_id: int, seed: int = 0,
                 reference: PolicyValueModel | None = None,
                 vision: VisionInputs | None = None,
                 max_gap: tuple[float, float] | None = None) -> None:
        self.engine, self.config, self.pad_id, self.seed = engine, config, pad_id, seed
        self.reference, self.vision = reference, vision
        self._padding: MicroBatch | None = None
        """The current update's zero-weight micro-batch (set by `update`)."""
        self.max_gap = max_gap
        """(mean, max) behaviour-gap limits of the sync-divergence guard; None: no guard."""

    def update(self, turns: Turns, version: int, filler: Turns | None = None) -> UpdateStats:
        """Train on `turns`, this rank's shard (whole groups of episodes; the whole batch on
        one rank), with the policy at `version`; the result carries version + 1 and the whole
        batch's statistics. `filler`: the turn to run padding micro-batches on (default: the
        shortest of `turns`; a rank whose shard is empty has none of its own)."""
        start = time.perf_counter()
        if self.vision is not None:
            turns = self.vision.expand(turns)
            filler = None if filler is None else self.vision.expand(filler)
        self._padding = _padding_micro(turns if filler is None else filler, self.pad_id)
        # An episode whose turns extend each other is one unit, read by one sequence.
        plan = plan_units(turns, self.config.pack_episodes)
        units = plan.units
        # Score once with the weights as they are now: the "old" log-probs the ratio starts
        # from, values, then turn-level GAE and normalised advantages.
        scored = self.score(turns, units)
        score_seconds = time.perf_counter() - start
        gaps = {**self._behaviour_gap(turns, scored), **self._guard_gap(turns, scored, version)}
        if self._diverged(gaps):
            # Samples from weights that are not the learner's: no optimiser step on them.
            return skipped_update(version, self.engine.lr, start, score_seconds,
                                  {**gaps, **whole_batch_stats(self.engine, turns, plan, version)})
        epoch_losses, sums, steps, norms = [], {}, 0, []
        # Several epochs over the same episodes, reshuffled into minibatches each time (a packed
        # episode's turns stay together: they share one read); one optimizer step per
        # minibatch. The clipped ratio keeps the later steps honest.
        for epoch in range(self.config.ppo_epochs):
            epoch_loss = 0.0
            for minibatch in self._minibatches(units, version, epoch):
                stats, norm = self._train_minibatch(turns, minibatch, scored)
                steps, epoch_loss = steps + 1, epoch_loss + stats["loss"]
                norms += [] if norm is None else [norm]
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value
            epoch_losses.append(epoch_loss / self.config.num_minibatches)
        means = {key: value / steps for key, value in sums.items()}
        grad_norm = sum(norms) / len(norms) if norms else None
        return UpdateStats(policy_version=version + 1, **means, grad_norm=grad_norm,
                           lr=self.engine.lr, optimizer_steps=steps,
                           seconds=time.perf_counter() - start, score_seconds=score_seconds,
                           epoch_losses=epoch_losses, **gaps,
                           **whole_batch_stats(self.engine, turns, plan, version))

    def score(self, turns: Turns, units: list[Unit]) -> Scored:
        """Old log-probs and values of the turns of `units` with the weights as they are now,
        then advantages (every rank must call this: forwards are collective under ZeRO-3)."""
        rows = sorted(row for unit in units for row in unit.rows)
        old_lp: dict[int, torch.Tensor] = {}
        ref_lp: dict[int, torch.Tensor] | None = {} if self._uses_reference else None
        values = torch.zeros(len(turns))
        with torch.no_grad():
            for micro in self._micro_batches(turns, units):
                logprobs, _, v = self._forward(micro)
                if micro.turn_weight[0] == 0:
                    continue
                values[micro.rows] = v.float().cpu()
                self._store(old_lp, micro, logprobs)
                if ref_lp is not None:
                    self._store(ref_lp, micro, self._forward(micro, self.reference)[0])
        mine = torch.tensor(rows, dtype=torch.long)
        advantages, returns = self._advantages(turns, rows, values[mine])
        if self.config.normalize_advantages:
            advantages = self._normalise(advantages)
        full = lambda x: torch.zeros(len(turns)).index_copy(0, mine, x)  # noqa: E731
        return Scored(rows, old_lp, ref_lp, values, full(advantages), full(returns))

    def _advantages(self, turns: Turns, rows: list[int],
                    values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(advantages, returns) of `rows`, episode by episode in turn order."""
        index = torch.tensor(rows, dtype=torch.long)
        rewards, episodes = turns.rewards[index], [turns.episode_ids[i] for i in rows]
        if self.config.advantage == "group":
            return group_advantages(rewards, episodes, [turns.instances[i] for i in rows],
                                    [turns.turn_index[i] for i in rows], self.config.gamma)
        return turn_gae(rewards, values, turns.dones[index], episodes, self.config.gamma,
                        self.config.lam)

    def _train_minibatch(self, turns: Turns, units: list[Unit],
                         scored: Scored) -> tuple[dict[str, float], float | None]:
        # Token and turn counts are per turn, packed or not: the loss is the per-turn loss.
        rows = [row for unit in units for row in unit.rows]
        counts = torch.tensor([float(len(rows)), float(sum(len(turns.response_ids[i]) for i in rows))],
                              dtype=torch.float64)
        num_turns, num_tokens = self.engine.all_reduce(counts).tolist()
        sums: dict[str, torch.Tensor] = {}
        for micro in self._micro_batches(turns, units):
            logprobs, entropy, values = self._forward(micro)
            inputs = self._ppo_inputs(turns, micro, scored, logprobs, entropy, values)
            loss, stats = ppo_loss(inputs, self.config, max(num_tokens, 1.0), max(num_turns, 1.0))
            self.engine.backward(loss)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value.double().cpu()
        grad_norm = self.engine.step()
        keys = sorted(sums)
        reduced = self.engine.all_reduce(torch.stack([sums[k] for k in keys])) if keys else []
        return {k: float(v) for k, v in zip(keys, reduced, strict=True)}, grad_norm

    def _ppo_inputs(self, turns: Turns, micro: MicroBatch, scored: Scored, logprobs: torch.Tensor,
                    entropy: torch.Tensor, values: torch.Tensor) -> PPOInputs:
        if micro.turn_weight[0] == 0:
            return _padding_inputs(micro, logprobs, entropy, values)
        cat = lambda store: torch.cat([store[i] for i in micro.rows])  # noqa: E731
        behaviour = torch.cat([torch.tensor(turns.behaviour_logprobs[i], dtype=torch.float32)
                               for i in micro.rows])
        index = torch.tensor(micro.rows, dtype=torch.long)
        device = logprobs.device
        return PPOInputs(
            new_logprobs=logprobs, entropy=entropy, values=values.float(),
            old_logprobs=cat(scored.old_logprobs).to(device),
            behaviour_logprobs=behaviour.to(device),
            old_values=scored.old_values[index].to(device),
            returns=scored.returns[index].to(device), advantages=scored.advantages[index].to(device),
            token_turn=micro.token_turn.to(device), turn_weight=micro.turn_weight.to(device),
            ref_logprobs=None if scored.ref_logprobs is None else cat(scored.ref_logprobs).to(device))

    def _forward(self, micro: MicroBatch, model: torch.nn.Module | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(log-probs, entropies, values) from the engine, or from `model` (the reference)."""
        inputs = {k: self.engine.to_device(v) for k, v in micro.model_inputs().items()}
        if model is not None:
            inputs.pop("value_index")
            inputs.pop("value_rows", None)
        return (model or self.engine)(**inputs, temperature=self.config.temperature)

    def _micro_batches(self, turns: Turns, units: list[Unit]) -> list[MicroBatch]:
        """This rank's micro-batches, padded with zero-weight copies to the count of the rank
        with the most, so that every rank runs the same number of forwards and backwards (at
        least one: a minibatch that no rank has turns for still steps on zero gradients)."""
        chunks = split_units(turns, units, self.engine.config.micro_batch_size)
        wanted = int(self.engine.all_reduce(torch.tensor([len(chunks)]), op="max").item())
        wanted = max(wanted, 1)
        micro = [collate_units(turns, chunk, self.pad_id) for chunk in chunks]
        return micro + [self._padding] * (wanted - len(chunks))

    def _minibatches(self, units: list[Unit], version: int, epoch: int) -> list[list[Unit]]:
        """Units (whole packed episodes, or single turns) shuffled into num_minibatches."""
        seed = ((self.seed * 1_000_003 + version) * 1009 + epoch) * 101 + self.engine.rank
        generator = torch.Generator().manual_seed(seed % 2**62)
        order = [units[i] for i in torch.randperm(len(units), generator=generator).tolist()]
        n = self.config.num_minibatches
        return [order[k::n] for k in range(n)]

    def _behaviour_gap(self, turns: Turns, scored: Scored) -> dict[str, float]:
        mean, top, _ = self._gap(turns, scored, scored.rows)
        return {"behaviour_logprob_gap": mean, "behaviour_logprob_gap_max": top}

    def _guard_gap(self, turns: Turns, scored: Scored, version: int) -> dict[str, float]:
        """The gap over the turns sampled by the weights the learner has now (`version`):
        those must agree up to numerics; older turns differ by design."""
        fresh = [i for i in scored.rows if turns.policy_versions[i] == version]
        mean, top, count = self._gap(turns, scored, fresh)
        return {"guard_gap": mean, "guard_gap_max": top, "guard_turns": count}

    def _gap(self, turns: Turns, scored: Scored, rows: list[int]) -> tuple[float, float, int]:
        """Mean and max |learner - sampler| log-prob over the answer tokens of `rows` on every
        rank, and the turns they came from (collective: every rank calls it)."""
        gaps = [(scored.old_logprobs[i] - torch.tensor(turns.behaviour_logprobs[i])).abs()
                for i in rows]
        flat = torch.cat(gaps) if gaps else torch.zeros(0)
        sums = self.engine.all_reduce(torch.tensor(
            [flat.double().sum(), float(flat.numel()), float(len(rows))], dtype=torch.float64))
        top = self.engine.all_reduce(flat.max().view(1) if flat.numel() else torch.zeros(1), op="max")
        return float(sums[0] / max(float(sums[1]), 1.0)), float(top[0]), int(sums[2])

    def _diverged(self, gaps: dict[str, float]) -> bool:
        """Whether the guard refuses this batch (the same answer on every rank: the gaps are
        all-reduced)."""
        if self.max_gap is None or not gaps["guard_turns"]:
            return False
        mean, top = self.max_gap
        return gaps["guard_gap"] > mean or gaps["guard_gap_max"] > top

    def _normalise(self, advantages: torch.Tensor) -> torch.Tensor:
        moments = torch.tensor([float(len(advantages)), advantages.double().sum().item(),
                                (advantages.double() ** 2).sum().item()], dtype=torch.float64)
        count, total, squares = self.engine.all_reduce(moments).tolist()
        mean = total / max(count, 1.0)
        var = max(squares / max(count, 1.0) - mean**2, 0.0)
        return normalise(advantages, torch.tensor(mean), torch.tensor(var)).float()

    @staticmethod
    def _store(store: dict[int, torch.Tensor], micro: MicroBatch, logprobs: torch.Tensor) -> None:
        if micro.turn_weight[0] == 0:
            return
        per_row = torch.bincount(micro.token_turn, minlength=len(micro.rows)).tolist()
        for row, chunk in zip(micro.rows, logprobs.float().cpu().split(per_row), strict=True):
            store[row] = chunk

    @property
    def _uses_reference(self) -> bool:
        return self.reference is not None and self.config.kl_coef > 0


def _padding_inputs(micro: MicroBatch, logprobs: torch.Tensor, entropy: torch.Tensor,
                    values: torch.Tensor) -> PPOInputs:
    """Inputs for a zero-weight micro-batch: shapes right, every term multiplied by 0."""
    zeros = torch.zeros_like(values).float()
    device = logprobs.device
    return PPOInputs(new_logprobs=logprobs, entropy=entropy, values=values.float(),
                     old_logprobs=logprobs.detach(), behaviour_logprobs=logprobs.detach(),
                     old_values=zeros, returns=zeros, advantages=zeros,
                     token_turn=micro.token_turn.to(device), turn_weight=micro.turn_weight.to(device))


def _padding_micro(turns: Turns, pad_id: int) -> MicroBatch:
    """A zero-weight micro-batch on the shortest of `turns` (any real turn: same modules, same
    shapes as the others' micro-batches)."""
    if not len(turns):
        raise ValueError("a rank with no turns needs a filler turn to pad with")
    return collate_turns(turns, [min(range(len(turns)), key=turns.length)], pad_id, weight=0.0)


def skipped_update(version: int, lr: float, start: float, score_seconds: float,
                   facts: dict[str, float | int]) -> UpdateStats:
    """The stats of an update the guard refused: no optimiser step, the version unchanged."""
    zeros = dict.fromkeys(("loss", "policy_loss", "value_loss", "entropy", "approx_kl",
                           "clip_fraction"), 0.0)
    return UpdateStats(policy_version=version, **zeros, lr=lr, optimizer_steps=0,
                       seconds=time.perf_counter() - start, score_seconds=score_seconds,
                       epoch_losses=[], skipped="gap", **facts)
