"""GeneralPoints: make the target number from four cards, revising after verifier feedback."""

from envs.general_points.cards import Card
from envs.general_points.episode import GPEpisode, make_episode
from envs.general_points.prompt import ANSWER_FORMAT, format_answer, render_prompt
from envs.general_points.render import render_hand
from envs.general_points.sampler import sample_hand
from envs.general_points.solver import is_solvable, solve

__all__ = [
    "ANSWER_FORMAT", "Card", "GPEpisode", "format_answer",
    "is_solvable", "make_episode", "render_hand", "render_prompt", "sample_hand", "solve",
]
