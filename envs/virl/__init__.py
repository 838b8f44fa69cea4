"""V-IRL: navigate a city by numbered instructions, revising after verifier feedback."""

from envs.virl.episode import VIRLEpisode, make_episode, routes_for
from envs.virl.geometry import COMPASS, RELATIVE, SIDES, compass, relative_action
from envs.virl.path import Step, instructions, walk
from envs.virl.prompt import ANSWER_FORMAT, format_answer, render_prompt
from envs.virl.render import SIGN_BOARD, VIEWS, layout_sentence, render_grid, tile_box, view_of
from envs.virl.routes import (
    Milestone,
    Route,
    RouteFileError,
    Sighting,
    load_routes,
    parse_milestone_info,
    save_routes,
)
from envs.virl.world import benchmark_routes, training_routes

__all__ = [
    "ANSWER_FORMAT", "COMPASS", "RELATIVE", "SIDES", "SIGN_BOARD", "VIEWS", "Milestone", "Route",
    "RouteFileError", "Sighting", "Step", "VIRLEpisode",
    "benchmark_routes", "compass", "format_answer", "instructions", "layout_sentence",
    "load_routes", "make_episode", "parse_milestone_info", "relative_action", "render_grid",
    "render_prompt", "routes_for", "save_routes", "tile_box", "training_routes", "view_of", "walk",
]
