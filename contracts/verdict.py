"""What every verifier returns: one outcome, one reward, one sentence of feedback.

Both tasks share this shape so that the episode machinery, the trajectory schema and the
metrics never need to know which task produced a verdict.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Verdict(BaseModel):
    """The verifier's judgement of one answer (one verification step)."""

    model_config = ConfigDict(frozen=True)

    reward: float
    success: bool
    outcome: str
    """Which row of the task's reward table applied (a stable, machine-readable name)."""
    feedback: str
    """One short sentence for the model's next attempt, in the project's own words."""
    recognition_ok: bool | None = None
    """Vision variants: whether the model reported what the image shows; None for text."""
    parsed_answer: str = ""
    """The part of the answer the verifier judged (formula or action), for logs and data."""
