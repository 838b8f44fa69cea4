"""Supervised fine-tuning on expert demonstrations: the warm start that PPO needs.

Demonstrations come from the environments themselves (the prompt an episode opens with and
the answer its expert gives), tokenised through the same chat-template pieces the rollout
workers use, so SFT trains on exactly the ids the policy will later see and emit. The loss
covers only the answer tokens (and the end-of-turn token the engines stop on). Checkpoints in
Hugging Face format every k steps let the RL init be picked early: an over-trained SFT model
is one RL cannot rescue.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contracts.learner_messages import SFTResult, SFTStepStats
from contracts.tasks import TaskConfig
from envs.corpora import Corpus, corpus_documents
from envs.registry import make_episode
from learner import telemetry
from learner.batch import Turns, collate_turns, split_micro_batches
from learner.config import SFTConfig
from learner.engine import TrainEngine, resolve_dtype
from learner.export import gathered_state_dict
from learner.model import PolicyValueModel, is_vision, load_backbone
from learner.rank import disable_dropout, pad_token_id
from learner.sft_eval import EvalHook, evaluate_generation
from model_inputs.vision import excluded_token_ids


@dataclass
class Demonstration:
    """One expert turn: the prompt of a state the expert reached and its answer, as token ids."""

    prompt_ids: list[int]
    answer_ids: list[int]
    answer: str
    image_refs: list[str]
    seed: int
    mistakes: tuple[str, ...] = ()
    """The mistaken answers the episode opened with (empty: none)."""
    earlier: tuple[str, ...] = ()
    """Every answer given in the episode before this one (its mistakes, then the expert's
    answers at earlier states): replaying them reaches this demonstration's state."""


PROGRESS_LINES = 10
PROGRESS_LOG = "progress.log"


def demonstrations(task: TaskConfig, seeds: range, tokenizer: Any, chat: Any = None,
                   revision_share: float = 0.0, max_mistakes: int = 4) -> list[Demonstration]:
    """The expert's answers along the episodes of `seeds`, tokenised exactly as rollout workers
    tokenise turns: one per state the expert reaches (GeneralPoints: the opening; V-IRL: every
    position of the ground-truth path). A `revision_share` of the episodes (drawn per seed)
    open with 1..`max_mistakes` mistaken answers."""
    from model_inputs.dialogue import DialogueTokens

    dialogue = DialogueTokens.from_tokenizer(tokenizer, chat)
    demos = []
    for seed in seeds:
        rng = random.Random(seed)
        mistakes = rng.randint(1, max_mistakes) if rng.random() < revision_share else 0
        demos += _episode_demonstrations(task, seed, dialogue, mistakes, rng)
    return demos


def corpus_demonstrations(corpus: Corpus, tokenizer: Any, chat: Any = None) -> list[Demonstration]:
    """The corpus's documents as single-turn demonstrations, tokenised like rollout turns; a
    document's pictures (the vision corpus's) travel by reference, as an episode's do, and
    `chat` (a VLM's processor) places their tokens."""
    from contracts.episode import Observation
    from model_inputs.dialogue import DialogueTokens

    dialogue = DialogueTokens.from_tokenizer(tokenizer, chat)
    demos = []
    for index, doc in enumerate(corpus_documents(corpus)):
        refs = tuple(getattr(doc, "image_refs", ()))
        # Only the count of `images` shapes the prompt; the learner renders each by reference.
        shown = Observation(text=doc.prompt, images=refs, image_refs=refs)
        demos.append(Demonstration(dialogue.opening(shown), dialogue.answer(doc.answer),
                                   doc.answer, list(refs), index))
    return demos


class _Playthrough:
    """One episode played answer by answer, its prompt growing exactly as a rollout's does:
    answer ids, closing, feedback, or a fresh prompt where the task restarts the dialogue."""

    def __init__(self, task: TaskConfig, seed: int, dialogue: Any) -> None:
        self.episode, self.seed, self.dialogue = make_episode(task, seed), seed, dialogue
        observation = self.episode.observe()
        self.prompt, self.refs = dialogue.opening(observation), list(observation.image_refs)
        self.played: list[str] = []
        self.mistakes: tuple[str, ...] = ()

    def play(self, answer: str) -> bool:
        """Submit `answer`; False once the episode has ended."""
        answer_ids = self.dialogue.answer(answer)
        transition = self.episode.submit(answer)
        self.played.append(answer)
        if transition.done or transition.next is None:
            return False
        if transition.restart:
            self.prompt = self.dialogue.opening(transition.next)
            self.refs = list(transition.next.image_refs)
        else:
            self.prompt = self.prompt + answer_ids + self.dialogue.continuation(
                answer_ids, transition.next.text)
        return True

    def demonstration(self, answer: str) -> Demonstration:
        return Demonstration(self.prompt, self.dialogue.answer(answer), answer, list(self.refs),
                             self.seed, self.mistakes, tuple(self.played))


def _episode_demonstrations(task: TaskConfig, seed: int, dialogue: Any, mistakes: int,
                            rng: random.Random) -> list[Demonstration]:
    """Play `mistakes` wrong answers (fewer if the episode would end), then follow the expert
    to the episode's end, one demonstration per expert answer."""
    game = _Playthrough(task, seed, dialogue)
    for _ in range(mistakes):
        if not game.play(game.episode.mistaken_answer(rng)):
            return _episode_demonstrations(task, seed, dialogue, mistakes - 1, random.Random(seed))
    game.mistakes = tuple(game.played)
    demos = []
    while True:
        answer = game.episode.expert_answer()
        demos.append(game.demonstration(answer))
        if not game.play(answer):
            return demos


def as_turns(demos: list[Demonstration]) -> Turns:
    """Demonstrations in the learner's turn layout, so SFT batches exactly like PPO."""
    n = len(demos)
    return Turns(episode_ids=[str(d.seed) for d in demos], turn_index=[0] * n,
                 instances=[("sft", "", d.seed) for d in demos],
                 policy_versions=[0] * n, prompt_ids=[d.prompt_ids for d in demos],
                 response_ids=[d.answer_ids for d in demos],
                 behaviour_logprobs=[[0.0] * len(d.answer_ids) for d in demos],
                 rewards=torch.zeros(n), dones=torch.ones(n, dtype=torch.bool),
                 successes=torch.zeros(n, dtype=torch.bool),
                 image_refs=[d.image_refs for d in demos])


class SFTTrainer:
    """SFT on one rank (of a process group that may have several)."""

    def __init__(self, config: SFTConfig, hooks: list[EvalHook] | None = None) -> None:
        from transformers import AutoTokenizer

        from model_inputs.vision import load_processor

        torch.manual_seed(config.seed)
        self.config = config
        backbone = load_backbone(config.model, resolve_dtype(config.engine))
        disable_dropout(backbone)
        vision = is_vision(config.model, backbone.config)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model.path)
        self.processor = load_processor(config.model.path) if vision else None
        self.pad_id = pad_token_id(backbone.config)
        policy = PolicyValueModel(backbone, value_head=None,
                                  excluded_token_ids=excluded_token_ids(config.model.path))
        self.engine = TrainEngine(policy, config.optim, config.engine, total_steps=config.steps)
        if config.batch_size % self.engine.world_size:
            raise ValueError(f"batch_size {config.batch_size} must divide over "
                             f"{self.engine.world_size} ranks")
        self.train_demos = (corpus_demonstrations(config.corpus, self.tokenizer, self.processor)
                            if config.corpus
                            else self._demos(config.train_seed_start, config.train_episodes))
        self.eval_demos = self._demos(config.eval_seed_start, config.eval_episodes)
        self.train_set = self._turns(self.train_demos)
        self.eval_set = self._turns(self.eval_demos)
        self.hooks = [evaluate_generation] if hooks is None else hooks
        self.step = 0

    @property
    def backbone(self) -> torch.nn.Module:
        return self.engine.module.backbone

    def run(self) -> SFTResult:
        """Train for `steps`, evaluating and checkpointing on schedule."""
        c = self.config
        steps, evaluations, checkpoints = [], [], []
        while self.step < c.steps:
            steps.append(self.train_step())
            last = self.step == c.steps
            self._report_progress(steps)
            if c.eval_every and (self.step % c.eval_every == 0 or last):
                evaluations.append(self.evaluate())
            if c.output_dir and (self._checkpoint_due() or last):
                checkpoints.append(str(self.save_checkpoint(c.output_dir / f"step-{self.step}")))
        return SFTResult(steps=steps, evaluations=evaluations, checkpoints=checkpoints)

    def _checkpoint_due(self) -> bool:
        every = self.config.checkpoint_every
        return bool(every and self.step % every == 0) or self.step in self.config.checkpoint_steps

    def train_step(self) -> SFTStepStats:
        """One optimizer step on the next global batch of demonstrations."""
        start = time.perf_counter()
        rows = self._rows(self.step)
        lengths = [self.train_set.length(i) for i in range(len(self.train_set))]
        micro_batches = split_micro_batches(rows, lengths, self.engine.config.micro_batch_size)
        counts = torch.tensor([float(sum(len(self.train_set.response_ids[i]) for i in rows)),
                               float(sum(lengths[i] for i in rows))], dtype=torch.float64)
        total, processed = self.engine.all_reduce(counts).tolist()
        loss_sum = torch.zeros((), dtype=torch.float64)
        self.engine.train()
        for chunk in micro_batches:
            micro = collate_turns(self.train_set, chunk, self.pad_id)
            inputs = {k: self.engine.to_device(v) for k, v in micro.model_inputs().items()}
            inputs.pop("value_index")
            logprobs, _, _ = self.engine(**inputs, temperature=1.0)
            loss = -logprobs.sum() / total
            self.engine.backward(loss)
            loss_sum += loss.detach().double().cpu()
        grad_norm = self.engine.step()
        self.step += 1
        stats = SFTStepStats(step=self.step, loss=float(self.engine.all_reduce(loss_sum.view(1))[0]),
                             lr=self.engine.lr, grad_norm=grad_norm, tokens=int(processed),
                             answer_tokens=int(total),
                             seconds=time.perf_counter() - start)
        if self.engine.rank == 0:
            telemetry.record_sft_step(stats)
        return stats

    def _report_progress(self, steps: list[SFTStepStats]) -> None:
        """A line per tenth of the run from rank 0, printed and appended to
        OUTPUT_DIR/progress.log, which the job's driver follows (an embedded Ray cluster does
        not forward actor output), so a person watching a long warm start sees it move."""
        every = max(1, self.config.steps // PROGRESS_LINES)
        if self.engine.rank or (self.step % every and self.step != self.config.steps):
            return
        recent = steps[-every:]
        loss = sum(s.loss for s in recent) / len(recent)
        seconds = sum(s.seconds for s in steps)
        phase = "pretraining" if self.config.corpus is not None else "SFT"
        line = (f"{phase} step {self.step}/{self.config.steps}: loss {loss:.3f}  "
                f"lr {steps[-1].lr:.2e}  {seconds:.0f} s")
        print(line, flush=True)
        if self.config.output_dir:
            self.config.output_dir.mkdir(parents=True, exist_ok=True)
            with open(self.config.output_dir / PROGRESS_LOG, "a") as log:
                log.write(line + "\n")

    def evaluate(self) -> dict[str, Any]:
        """Run every hook; all ranks run the same evaluation (ZeRO-3 forwards are collective)."""
        self.engine.train(False)
        result: dict[str, Any] = {"step": self.step}
        with torch.no_grad():
            for hook in self.hooks:
                result.update(hook(self))
        self.engine.train()
        return result

    def save_checkpoint(self, out: Path) -> Path:
        """A Hugging Face checkpoint (weights, tokenizer or processor) any Revisor part loads by
        path; the PPO learner adds a fresh value head on top."""
        weights = gathered_state_dict(self.backbone, keep=self.engine.rank == 0)
        if self.engine.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            self.backbone.save_pretrained(out, state_dict=weights)
            (self.processor or self.tokenizer).save_pretrained(out)
        return out

    def _rows(self, step: int) -> list[int]:
        """This rank's share of global step `step`: a seeded shuffle per pass over the data."""
        n, size = len(self.train_set), self.config.batch_size
        picks = []
        for k in range(step * size, (step + 1) * size):
            epoch, index = divmod(k, n)
            picks.append(self._order(epoch)[index])
        return picks[self.engine.rank :: self.engine.world_size]

    def _order(self, epoch: int) -> list[int]:
        if getattr(self, "_epoch", None) != epoch:
            generator = torch.Generator().manual_seed(self.config.seed * 7919 + epoch)
            self._epoch, self._epoch_order = epoch, torch.randperm(
                len(self.train_set), generator=generator).tolist()
        return self._epoch_order

    def _demos(self, start: int, count: int) -> list[Demonstration]:
        c = self.config
        return demonstrations(c.task, range(start, start + count), self.tokenizer,
                              self.processor, c.revision_share, c.revision_max_mistakes)

    def _turns(self, demos: list[Demonstration]) -> Turns:
        turns = as_turns(demos)
        if self.processor is None:
            return turns
        from learner.vision import VisionInputs

        return VisionInputs(self.config.model.path, processor=self.processor).expand(turns)
