"""GeneralPoints settings: the one place their defaults live."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from envs.general_points.cards import ColourSet
from verifier.general_points.cards import Rule
from verifier.general_points.rewards import GPRewardTable


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
