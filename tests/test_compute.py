"""Compute accounting follows the study's formulas on real token counts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cluster.results.compute import TokenCounts, training_flops, training_gflops


def test_sft_run_costs_six_n_d():
    assert training_flops(1_000, TokenCounts(sft=50)) == 6 * 1_000 * 50


def test_rl_run_counts_the_warm_start_training_and_generated_tokens():
    tokens = TokenCounts(init=10, rl=20, generated=100)
    assert training_flops(2, tokens) == 6 * 2 * (10 + 20) + 2 * 2 * 100
    assert training_gflops(10**9, TokenCounts(rl=1)) == pytest.approx(6.0)


def test_counts_add_and_reject_negatives():
    assert TokenCounts(sft=1, generated=2) + TokenCounts(sft=3) == TokenCounts(sft=4, generated=2)
    with pytest.raises(ValidationError, match="sft"):
        TokenCounts(sft=-1)
