"""V-IRL settings: the one place their defaults live."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from envs.virl.world import WorldConfig
from verifier.virl.rewards import VIRLRewardTable

BUILT_IN_SOURCES = ("synthetic-train", "synthetic-benchmark")


class VIRLConfig(BaseModel):
    """One V-IRL variant: action space, observation kind, routes and attempt budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["virl"] = "virl"
    rule: Literal["id", "ood"] = "id"
    """Action space: 'id' absolute compass directions (training), 'ood' relative turns."""
    vision: bool = False
    """V-IRL-VL: show a 2x2 grid of street views instead of describing them (detection checked)."""
    max_attempts_per_position: int = Field(2, ge=1, le=20)
    route_source: str = "synthetic-train"
    """'synthetic-train', 'synthetic-benchmark', or the path of a JSON route file."""
    num_train_routes: int = Field(1000, ge=1, le=100_000)
    """Size of the synthetic training set (the study trained on 1,000 routes)."""
    benchmark_routes_per_city: int = Field(2, ge=1, le=1000)
    world_seed: int = 0
    """Seed of the synthetic cities and routes (the episode seed only picks a route)."""
    world: WorldConfig = WorldConfig()
    forward_step_m: float = Field(50.0, gt=0, le=10_000)
    """Roughly how far one forward() moves; sets how many steps lie between key points."""
    max_forward_steps: int = Field(3, ge=1, le=50)
    """At most this many forward() actions per stretch between key points."""
    max_history_steps: int | None = Field(None, ge=0)
    """Keep only the latest steps in the prompt's history (None: the whole walk)."""
    image_tile_px: int = Field(224, ge=32, le=1024)
    """Side of one view in the 2x2 grid image."""
    image_table: Path | None = None
    """A JSON or Parquet table of street-view photos (lat, lng, heading, path) used for VL."""
    prompt_template: Path | None = None
    """A file replacing the built-in prompt (string.Template with $instructions,
    $action_space, $history, $heading, $observation, $answer_format)."""
    rewards: VIRLRewardTable = VIRLRewardTable()

    @field_validator("route_source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in BUILT_IN_SOURCES and not Path(value).is_file():
            raise ValueError(f"route_source must be one of {', '.join(BUILT_IN_SOURCES)} or an "
                             f"existing route file; {value!r} is neither")
        return value

    @property
    def task_name(self) -> str:
        return "virl-vl" if self.vision else "virl-l"

    @property
    def variant(self) -> str:
        """The rule, plus the route set when it is not the training set."""
        if self.route_source == "synthetic-train":
            return self.rule
        source = "benchmark" if self.route_source == "synthetic-benchmark" else "file"
        return f"{self.rule}-{source}"
