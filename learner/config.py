"""The learner's settings, and the SFT trainer's: the one place their defaults live.

Pure pydantic: loading settings (a job, a study, `revisor plan`) imports no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.tasks import GPConfig, TaskConfig
from envs.corpora import Corpus
from weight_transport.choices import WeightSync, learner_refusal


class ModelConfig(BaseModel):
    """Which checkpoint to train and how the critic is built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    """A Hugging Face checkpoint directory (or hub name where downloads are allowed)."""
    kind: Literal["auto", "causal", "vision"] = "auto"
    """'auto' picks 'vision' when the checkpoint's config has a vision part."""
    critic: Literal["shared", "separate"] = "shared"
    """'shared': value head on the policy's backbone (the study). 'separate': its own backbone,
    when value gradients disturb the policy or the value needs more capacity."""
    critic_path: str | None = None
    """Checkpoint of a separate critic's backbone; defaults to `path`."""
    value_head_hidden: int | None = None
    """Width of the value MLP; default: the backbone's hidden size, at most 1024."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, about a third more compute."""
    trust_remote_code: bool = False


class OptimConfig(BaseModel):
    """Adam(W) and its schedule. Defaults are the study's PPO values (Adam, lr 1e-6 at 11B,
    constant); SFT swaps in a cosine schedule with 3% warm-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lr: float = Field(1e-6, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    """Decoupled weight decay on weight matrices (never on norms and biases)."""
    max_grad_norm: float = Field(1.0, ge=0.0)
    """Clip the global gradient norm to this (0 turns clipping off). It really applies: it is
    DeepSpeed's own gradient_clipping, at every ZeRO stage."""
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of the total steps spent ramping the lr up linearly (step k of w: lr * k/(w+1))."""
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    """Floor of the cosine / linear decay, as a share of lr."""
    value_head_lr_scale: float = Field(1.0, gt=0.0)
    """The value head's lr as a multiple of lr. The head starts from zero while the backbone
    starts trained: at lr 1e-6 (the study, 11B) the head alone would need thousands of steps to
    reach returns of a few units, and until it does, advantages mostly measure the value error
    (with several turns per episode, normalised advantages then mainly tell turns apart).
    Raise it (10-100) when values lag; 1 is the study's single learning rate."""


def schedule_needs_length(config: OptimConfig) -> bool:
    """Whether the schedule depends on the run's total steps (decay or warm-up)."""
    return config.schedule != "constant" or config.warmup_ratio > 0


class DeepSpeedConfig(BaseModel):
    """How the model is sharded and in which precision it trains."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zero_stage: int = Field(2, ge=0, le=3)
    """0: plain data parallel; 1: optimizer state sharded; 2: + gradients; 3: + parameters
    (needed when one replica does not fit; weight export then gathers the shards)."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """'auto' trains in bf16 on GPU and fp32 on CPU (CPU bf16 matmuls are slow and lossy)."""
    micro_batch_size: int = Field(8, ge=1)
    """Turns per forward/backward; the memory knob. Gradients accumulate up to one minibatch."""
    offload_optimizer: bool = False
    """ZeRO 1-3: keep the fp32 master weights and Adam moments (12 bytes a parameter, sharded)
    in host memory and step them there with Revisor's own AdamW: GPU memory for slower steps."""

    @model_validator(mode="after")
    def _offload_needs_zero(self) -> DeepSpeedConfig:
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage >= 1: ZeRO 0 keeps no "
                             "optimizer partition of its own to move to host memory")
        return self


class PPOConfig(BaseModel):
    """PPO settings; defaults are the study's values at 11B unless a field says otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    advantage: Literal["gae", "group"] = "gae"
    """'gae': turn-level GAE with the value head as baseline (the study). 'group': each turn's
    return-to-go minus the mean of its group's at the same turn, the group being the episodes
    of one task instance (needs training.group_size >= 2; see learner.group_advantage). The
    value head is still trained, on the Monte-Carlo returns, but unused as a baseline."""
    gamma: float = Field(0.9, ge=0.0, le=1.0)
    """Discount between verification steps: a later success is worth less than an early one."""
    lam: float = Field(0.95, ge=0.0, le=1.0)
    """GAE lambda over verification steps; 1 gives Monte-Carlo returns, 0 one-step TD (unused by
    the 'group' advantage)."""
    clip_ratio: float = Field(0.1, gt=0.0)
    """PPO clip range for the policy ratio (the study: 0.1)."""
    value_clip: float | None = Field(0.1, gt=0.0)
    """Clip range of the value change around the old value (the study clips it like the ratio).
    None turns value clipping off, which helps when rewards are large relative to 0.1."""
    value_coef: float = Field(0.5, ge=0.0)
    """Weight of the value loss in the shared-backbone loss."""
    ppo_epochs: int = Field(4, ge=1)
    """Passes over each batch of trajectories."""
    num_minibatches: int = Field(4, ge=1)
    """Optimizer steps per epoch; each takes an equal share of the batch."""
    normalize_advantages: bool = True
    """Standardise turn advantages over the whole batch (all ranks), as the study does."""
    ratio_level: Literal["token", "sequence"] = "token"
    """'token': one ratio per answer token, each carrying its turn's advantage (standard PPO for
    LMs, low variance). 'sequence': one ratio per answer, exp of the summed token log-ratios, as
    the study's code did; use it to reproduce the study exactly. The study also weighted tokens
    before the answer field by 0.5 in that sum; Revisor does not, because the weighted sum is no
    longer the answer's log-probability and the ratio stops measuring a policy change."""
    temperature: float = Field(0.2, gt=0.0)
    """The rollout sampling temperature: log-probs are log_softmax(logits / temperature) so
    that they match the sampler's. In a job it is one setting with rollout.sampling.temperature
    (either fills the other; set apart, they are refused)."""
    entropy_coef: float = Field(0.0, ge=0.0)
    """Entropy bonus. The study computed no entropy; Revisor always measures it (a collapse
    warning) and adds a bonus only when this is > 0."""
    kl_coef: float = Field(0.0, ge=0.0)
    """KL penalty to a frozen reference model (the SFT init); 0 as in the study. A reference
    model is loaded only when this is > 0."""
    max_staleness: int = Field(0, ge=0)
    """How many policy versions a trajectory may lag behind the learner (set from the cluster's
    setting). 0 is synchronous on-policy PPO and applies no correction; above 0 the
    `stale_correction` reweights stale samples."""
    stale_correction: Literal["truncated_is", "decoupled"] = "truncated_is"
    """How stale samples are corrected, with w = pi_old / pi_behaviour (pi_old: this learner's
    policy at the start of the update, pi_behaviour: the sampler's). The ratio is always taken
    against pi_old, so clipping bounds the change of *this* update.
    'truncated_is': multiply the loss by min(w, is_cap) (bounded variance, slight bias).
    'decoupled': multiply by w but drop samples with w > is_cap (decoupled PPO with a cap;
    unbiased on the kept samples, fewer samples when the lag is large)."""
    is_cap: float = Field(2.0, gt=1.0)
    """Cap on the stale-sample weight w."""
    pack_episodes: bool = True
    """Read an episode whose turns extend each other (each prompt = the previous prompt + answer
    + feedback, checked on the ids) as one sequence, its last turn's: one forward gives every
    turn's log-probs and values, the loss stays per turn (learner.packing). Vision-language
    episodes too, with the last turn's image inputs, where every turn shows the last turn's
    first images (Mllama: all of them). A dialogue that restarts (V-IRL after a correct
    action) is read one sequence per run of turns that extend. False: one row per turn, each
    re-reading the dialogue so far."""

    @property
    def uses_stale_correction(self) -> bool:
        return self.max_staleness > 0


BEHAVIOUR_GAP_DEFAULTS: dict[str, tuple[float, float]] = {
    "float32": (1e-3, 0.05),
    "bfloat16": (0.1, 8.0),
}
"""Training dtype -> (mean, max) behaviour-gap limits in nats, when BehaviourGapLimit leaves
them unset. float32 (the CPU learner against CPU engines): every on-policy update of the
job tests measured a mean gap below 6e-6 and a max below 6e-5 (93 updates), so 1e-3 and 0.05
leave a margin of over a hundred; a worker on the wrong weights shows a mean gap of 0.1 and
more. bfloat16 (GPU learner against vLLM): rounding alone puts the mean near 1e-2 and single
low-probability tokens a few nats off, so the limits are 0.1 and 8: they catch weights that
are not the learner's, not bf16 noise."""


class BehaviourGapLimit(BaseModel):
    """How far the engine's log-probs of the sampled tokens may lie from the learner's before
    an update is refused (the sync-divergence guard). Measured on the turns sampled by the
    learner's current weights only: stale turns differ by design (learner.ppo.max_staleness)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: float | None = Field(None, gt=0)
    """Largest mean |learner - engine| log-prob per answer token, in nats; None: the default
    of the training dtype (BEHAVIOUR_GAP_DEFAULTS: 1e-3 for float32, 0.1 for bfloat16)."""
    max: float | None = Field(None, gt=0)
    """Largest |learner - engine| log-prob of any one answer token, in nats; None: the
    default of the training dtype (0.05 for float32, 8 for bfloat16)."""

    def bounds(self, dtype: str) -> tuple[float, float]:
        """(mean, max) for a learner training in `dtype` ('float32', 'bfloat16')."""
        mean, top = BEHAVIOUR_GAP_DEFAULTS.get(dtype, BEHAVIOUR_GAP_DEFAULTS["bfloat16"])
        return (mean if self.mean is None else self.mean, top if self.max is None else self.max)


class LearnerConfig(BaseModel):
    """Model, optimisation, sharding and PPO settings of the learner ranks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelConfig
    optim: OptimConfig = OptimConfig()
    engine: DeepSpeedConfig = DeepSpeedConfig()
    ppo: PPOConfig = PPOConfig()
    num_ranks: int = Field(1, ge=1)
    """Data-parallel DeepSpeed ranks, one Ray actor each, placed together."""
    cpus_per_rank: float = Field(1.0, gt=0)
    gpus_per_rank: float = Field(0.0, ge=0)
    """1 on a GPU cluster (one rank per GPU); 0 runs on CPU with gloo."""
    total_updates: int | None = Field(None, ge=0)
    """Planned PPO updates: the length of a decaying LR schedule (cosine, linear) or a warm-up,
    total_updates x ppo_epochs x num_minibatches optimizer steps. A job fills it in from
    training.updates; on its own, a schedule that needs it and lacks it is an error."""
    publish_every: int = Field(1, ge=1)
    """Export weights for the rollout workers after every this many updates."""
    seed: int = 0
    """Seeds value-head init and minibatch shuffling."""
    weight_sync: WeightSync = "auto"
    """How published weights reach the rollout engines. 'auto' (the default): the fastest way
    that works wherever the workers run, chosen when the job starts on its Ray cluster:
    'shared_memory' on a one-node cluster, else 'object_store' (never 'nccl').
    'object_store': rank 0 packs them into the Ray object store and every worker loads them
    from there (CPU and GPU, any nodes). 'shared_memory': rank 0 packs them into a
    shared-memory segment that the workers on its node map (fewest copies; workers on other
    nodes each fetch rank 0's copy through the object store). 'nccl': rank 0 broadcasts the
    packed buffers to every vLLM engine over NCCL, GPU to GPU (needs GPU learner ranks and GPU
    vLLM workers). See weight_transport (the choice: weight_transport.choices.resolve)."""
    max_behaviour_gap: BehaviourGapLimit | None = BehaviourGapLimit()
    """The sync-divergence guard: an update whose fresh turns' log-prob gap exceeds these
    limits is not trained on; the weights are published again, and a second breach in a row
    ends the job naming the workers and the weight version. The same happens when a worker's
    weight fingerprint differs from rank 0's. None turns the guard off."""
    weight_sync_timeout_s: float = Field(300.0, gt=0)
    """weight_sync='nccl': seconds a publication's broadcast may take. Workers that have not
    taken it by then are named and replaced, and the next publication forms the weight group
    without them (a broadcast has no time limit of its own: one absent member stalls it)."""

    @model_validator(mode="after")
    def _schedule_has_a_length(self) -> LearnerConfig:
        if self.total_updates is None and schedule_needs_length(self.optim):
            raise ValueError(
                f"learner.optim.schedule '{self.optim.schedule}' (warmup_ratio "
                f"{self.optim.warmup_ratio}) needs learner.total_updates, the length it runs "
                "over; a job sets it from training.updates")
        return self

    @model_validator(mode="after")
    def _ranks_can_send(self) -> LearnerConfig:
        if refusal := learner_refusal(self.weight_sync, self.gpus_per_rank):
            raise ValueError(refusal)
        return self

    @property
    def gap_limits(self) -> tuple[float, float] | None:
        """The guard's (mean, max) gap limits for the dtype the ranks train in ('auto': bf16
        on GPU ranks, fp32 on CPU ones, as learner.engine.resolve_dtype); None: guard off."""
        if self.max_behaviour_gap is None:
            return None
        dtype = self.engine.dtype
        if dtype == "auto":
            dtype = "bfloat16" if self.gpus_per_rank else "float32"
        return self.max_behaviour_gap.bounds(dtype)

    @property
    def total_optimizer_steps(self) -> int | None:
        if self.total_updates is None:
            return None
        return self.total_updates * self.ppo.ppo_epochs * self.ppo.num_minibatches


class SFTConfig(BaseModel):
    """SFT settings; defaults follow the study (AdamW, cosine, 3% warm-up, batch 128)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelConfig
    task: TaskConfig = GPConfig()
    """The task whose expert answers are imitated (its train rule and look)."""
    corpus: Corpus | None = None
    """Imitate this generated corpus instead of the task's expert answers: pretraining a base
    model (`revisor pretrain`). Its documents replace train_episodes."""
    train_episodes: int = Field(10_000, ge=1)
    """Episodes of seeds train_seed_start, ... whose expert answers are the demonstrations
    (GeneralPoints: one per episode; V-IRL: one per position of the route)."""
    train_seed_start: int = 0
    eval_episodes: int = Field(234, ge=0)
    """Held-out episodes for evaluation (the study evaluates on 234)."""
    eval_seed_start: int = 10_000_000
    """Far from the training seeds, so evaluation hands are unseen."""
    optim: OptimConfig = OptimConfig(lr=1e-6, schedule="cosine", warmup_ratio=0.03,
                                     weight_decay=0.0)
    """The study: lr about 1e-6 for text, 5e-7 for vision, at 11B."""
    engine: DeepSpeedConfig = DeepSpeedConfig()
    batch_size: int = Field(128, ge=1)
    """Demonstrations per optimizer step, over all ranks."""
    steps: int = Field(1000, ge=1)
    eval_every: int = Field(100, ge=0)
    """Run the evaluation hooks every this many steps (and after the last); 0: never."""
    checkpoint_every: int = Field(100, ge=0)
    """Save a Hugging Face checkpoint every this many steps (and after the last); 0: only
    the last. Checkpoints go to output_dir; without one nothing is saved. A job, a study and
    pretraining each set output_dir themselves (RUN/sft, STUDY/sft), so settings never need
    it: a check here refused every saved job settings file with SFT (config.yaml holds every
    default) and with it `--resume` of the paper's configurations."""
    checkpoint_steps: list[int] = Field(default_factory=list)
    """Also save a checkpoint after each of these steps (a study's init and its compute
    points, `revisor study`)."""
    output_dir: Path | None = None
    revision_share: float = Field(0.0, ge=0.0, le=1.0)
    """Share of demonstrations that open with mistaken answers and their real feedback before
    the expert's answer (the study's SFT is single-turn: 0). A small model that has only seen
    opening prompts answers nonsense once feedback follows a wrong answer (the CPU demo's
    0.5M model: every sampled answer after the first feedback was illegal), so RL's later
    attempts carry no signal and the verifier's feedback is wasted."""
    revision_max_mistakes: int = Field(4, ge=1)
    """A revision demonstration opens with 1..this many mistakes (uniform); keep it below the
    task's attempt limit (4 for GeneralPoints' 5 attempts)."""
    max_answer_tokens: int = Field(64, ge=1)
    """Greedy generation length for evaluation."""
    seed: int = 0

    @model_validator(mode="after")
    def _checkpoints_within_the_run(self) -> SFTConfig:
        late = [step for step in self.checkpoint_steps if not 1 <= step <= self.steps]
        if late:
            raise ValueError(f"checkpoint_steps {late} lie outside the run's steps 1..{self.steps}")
        return self
