"""The original-loop benchmark's bookkeeping: the study's re-tokenised turns in the trajectory
format, and what `whole_loop_speedup` divides."""

from benchmarks.original_loop import OriginalLoopBenchmark, _mark_restarts, _report
from contracts.trajectory import EpisodeRecord, TurnRecord, to_record_batch
from learner.batch import turns_from_record_batches
from learner.packing import plan_units


def _turn(prompt: list[int], response: list[int], done: bool) -> TurnRecord:
    return TurnRecord(prompt_ids=prompt, response_ids=response,
                      response_logprobs=[-1.0] * len(response), policy_version=0, truncated=False,
                      reward=-1.0, done=done, success=False, outcome="wrong", feedback="",
                      parsed_answer="", recognition_ok=None, restart=False)


def test_a_reread_prompt_that_does_not_extend_is_flagged_and_the_record_validates():
    extending = EpisodeRecord("a", "gp-l", "id", 0, [_turn([1, 2], [3], False),
                                                     _turn([1, 2, 3, 4], [5], True)])
    retokenised = EpisodeRecord("b", "gp-l", "id", 1, [_turn([1, 2], [3, 3], False),
                                                       _turn([1, 2, 6, 4], [5], True)])
    batch = to_record_batch([_mark_restarts(extending), _mark_restarts(retokenised)], "study")
    assert batch.column("restart").to_pylist() == [False, False, True, False]
    plan = plan_units(turns_from_record_batches([batch]))
    assert [unit.packed for unit in plan.units] == [True, False, False]


def _side(episodes: int, play: float, train: float) -> dict[str, float]:
    return {"episodes": episodes, "turns": 5 * episodes, "tokens": 200 * episodes,
            "successes": 0, "packable_episodes": 0, "tokens_read": 400 * episodes,
            "play_seconds": play, "play_cpu_seconds": play, "train_seconds": train,
            "train_cpu_seconds": train}


def test_whole_loop_speedup_is_episodes_over_play_and_train_seconds():
    rounds = [{"revisor": _side(32, 2.0, 6.0), "study": _side(32, 20.0, 60.0)},
              {"revisor": _side(32, 2.0, 6.0), "study": _side(32, 20.0, 60.0)}]
    report = _report(OriginalLoopBenchmark(), rounds)
    assert report["revisor_whole_loop_episodes_per_s"] == 4.0  # 64 episodes / 16 s
    assert report["study_whole_loop_episodes_per_s"] == 0.4
    assert report["whole_loop_speedup"] == 10.0
    assert report["speedup"] == 10.0 and report["train_speedup"] == 10.0
    assert report["revisor"]["train_share"] == 0.75
