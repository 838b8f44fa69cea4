"""The task settings: what a config file's `task:` section holds and what every episode spec
carries to the process that plays it.

They are pure settings (pydantic models with their validation and defaults, the one place those
defaults live), so they are contracts: the driver validates them when it loads a config, the
broker hands them out inside `EpisodeSpec`s, and envs/ (which builds episodes from them,
`envs.registry.make_episode`) and verifier/ (which scores with their reward tables) import them
from here. Keeping them here is what lets contracts/ import no envs or verifier module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Rule = Literal["id", "ood"]
"""GeneralPoints face-card values: 'id': J, Q and K all count as 10 (the training rule).
'ood': J=11, Q=12, K=13."""
ColourSet = Literal["black", "red", "mixed"]
"""'black' (spades, clubs) is the training look; 'red' (hearts, diamonds) the visual OOD one."""
CardLayout = Literal["study", "tiles"]
"""How GP-VL draws a hand: 'study' the study's strip of four cards on a table (480x172),
'tiles' a square 2x2 grid, one card per tile, that a tiny vision tower can read."""
ViewStyle = Literal["street", "signs"]
"""How V-IRL-VL paints a view: 'street' a street scene with each landmark a sign board over
it, 'signs' each view nearly all its landmarks' boards, which a tiny vision tower can read."""
BUILT_IN_SOURCES = ("synthetic-train", "synthetic-benchmark")
"""V-IRL route sources drawn by envs/virl/world.py rather than read from a route file."""


class GPRewardTable(BaseModel):
    """Rewards per outcome, defaulting to the study's table.

    The study's original code summed several penalties and paid a hidden +1 for partial
    solutions; Revisor scores each answer with exactly one row of this table.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    success: float = 5.0
    """Legal formula, every card used once, equals the target."""
    wrong_value: float = -1.0
    """Legal formula, every card used once, another value (or a division by zero)."""
    step_limit: float = -1.0
    """The last allowed attempt failed: the episode ran out of verification steps."""
    wrong_numbers: float = -2.0
    """The formula uses numbers that are not the cards' numbers, or misses or repeats one."""
    illegal: float = -3.0
    """No formula, unknown symbols, unbalanced brackets, bad syntax, or an over-long answer."""
    wrong_cards: float = -1.5
    """Vision only: the reported cards are not the cards in the image (checked first)."""

    def values(self) -> frozenset[float]:
        """Every reward a verification step can receive."""
        return frozenset(self.model_dump().values())


class CardImage(BaseModel):
    """How a GP-VL hand is drawn. A tiny tower sees a 64-128 pixel square: the study's strip
    squeezed into it leaves each rank a glyph about 3 pixels wide, while 'tiles' is square,
    so nothing is squeezed, and gives each card a quarter of the square, the size of one of
    the tiny towers' patches (docs/tasks.md, "GP-VL images", has the measurements)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: CardLayout = "tiles"
    """'tiles' for the tiny models (every shipped CPU config); 'study' for the study's picture,
    which real models see at 448-560 pixels (configs/paper/gp-vl.yaml sets it)."""
    tile_px: int = Field(64, ge=16, le=512)
    """'tiles' only: side of one card's tile; the image is a square of 2 * tile_px. 64 gives
    128 pixels, which towers of 64, 96 and 128 pixels resize to one patch per card."""


class GPConfig(BaseModel):
    """One GeneralPoints variant: rule, look, target and attempt budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["gp"] = "gp"
    rule: Rule = "id"
    """Face-card values: 'id' (J, Q, K = 10, the training rule) or 'ood' (11, 12, 13)."""
    target: int = Field(24, ge=1, le=1000)
    vision: bool = False
    """GP-VL: show the cards as an image and ask the model to report them (checked first)."""
    colours: ColourSet = "black"
    """Suits to draw from; 'red' is the visual out-of-distribution look."""
    image: CardImage = CardImage()
    """GP-VL only: how the hand is drawn."""
    require_face_card: bool | None = None
    """Keep only hands with a J, Q or K. Default: on for the 'ood' rule, as the study evaluates."""
    sorted_hand: bool = False
    """Show the cards in rank order (A..K) instead of the order drawn. A hand is a multiset and
    its order carries no information, but a small model has to learn that: with random order
    the same four values reach it in up to 24 different prompts. Off in the study."""
    max_attempts: int = Field(5, ge=1, le=100)
    """Verification steps per episode; the episode ends on success or when they run out."""
    prompt_template: Path | None = None
    """A file replacing the built-in prompt (string.Template with $cards, $face_rule, $target,
    $answer_format), to match the format an existing checkpoint was trained on; or the name of
    a template that ships in envs/general_points/templates: 'prompt.txt' (the default, the
    study's wording) or 'compact.txt' (the rule and target in a third of the tokens, which a
    tiny model learns faster: the CPU demo's)."""
    rewards: GPRewardTable = GPRewardTable()

    @property
    def needs_face_card(self) -> bool:
        return self.rule == "ood" if self.require_face_card is None else self.require_face_card

    @property
    def task_name(self) -> str:
        return "gp-vl" if self.vision else "gp-l"

    @property
    def variant(self) -> str:
        """'id' or 'ood' for the rule, plus the suit colours when the cards are shown as images."""
        return f"{self.rule}-{self.colours}" if self.vision else self.rule


class VIRLRewardTable(BaseModel):
    """Rewards per outcome, defaulting to the study's table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    correct: float = 1.0
    """The action is the one the route calls for here."""
    wrong_action: float = -1.0
    """Another action, or a direction outside the action space."""
    unparseable: float = -1.0
    """No action could be read from the answer: scored as a wrong action."""
    step_limit: float = -1.0
    """The last allowed attempt at a position failed: the walker is moved on along the route."""
    detection_failed: float = -1.5
    """Vision only: the answer's observation misses what is in sight (checked first)."""

    def values(self) -> frozenset[float]:
        """Every reward a verification step can receive."""
        return frozenset(self.model_dump().values())


class WorldConfig(BaseModel):
    """The shape of synthetic routes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_intersections: int = Field(2, ge=1, le=10)
    max_intersections: int = Field(6, ge=1, le=10)
    straight_on_share: float = Field(0.2, ge=0.0, le=1.0)
    """How often a route crosses an intersection straight on (a slight turn) instead of turning."""

    @model_validator(mode="after")
    def _ordered(self) -> WorldConfig:
        if self.min_intersections > self.max_intersections:
            raise ValueError("min_intersections must not exceed max_intersections")
        return self


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
    image_style: ViewStyle = "street"
    """'street', or 'signs' for tiny towers (configs/tasks/virl_vl.yaml): in a 64-pixel tower
    a street view's sign names are letters ~3 pixels high, a 'signs' view's fill the view
    (docs/tasks.md, "V-IRL-VL views", has the measurements). Photos need 'street'."""
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

    @model_validator(mode="after")
    def _photos_are_street_views(self) -> VIRLConfig:
        if self.image_table is not None and self.image_style != "street":
            raise ValueError("image_style 'signs' paints every view, so an image_table of photos "
                             "would go unused: set image_style: street, or drop image_table")
        return self

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


TaskConfig = Annotated[GPConfig | VIRLConfig, Field(discriminator="task")]
"""A task's settings, chosen by its `task` field ('gp' or 'virl')."""


def vision_unless_said(settings: object) -> object:
    """Raw task settings with `vision: true` unless they say otherwise: a vision corpus's
    `prompt: {target: 12}` means the vision task's prompt with that change."""
    return {"vision": True, **settings} if isinstance(settings, dict) else settings
