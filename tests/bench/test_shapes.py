"""bench.shapes without a server: each shape's ticks, the stability rule's verdicts, and the one driver."""
from __future__ import annotations

import pytest

from bench import shapes
from bench.shapes import CLOSED, FRAMES, OPEN, Level, StabilityRule

pytestmark = pytest.mark.unit


def ticks(shape: shapes.Shape, outcome=lambda level: {}) -> list[Level]:
    """Every level the shape says, each given the outcome ``outcome(level)``."""
    seen: list[Level] = []
    shapes.drive(shape, lambda level: seen.append(level) or outcome(level))
    return seen


def windows(*pairs) -> list[dict]:
    return [{"throughput_images_per_s": t, "p50_ms": p} for t, p in pairs]


# ------------------------------------------------------------------ the stability rule
def test_the_rule_is_stable_on_three_agreeing_windows_and_takes_the_first_run():
    rule = StabilityRule(needed=3, tolerance=0.10, limit=10)
    assert rule.chosen(windows((100, 5.0), (105, 5.2), (109, 5.4))) == ([0, 1, 2], True)
    drifting = windows((50, 9.0), (80, 7.0), (100, 5.0), (104, 5.1), (101, 5.3), (99, 5.0))
    assert rule.chosen(drifting) == ([2, 3, 4], True) and shapes.stable_run(drifting) == 2
    assert rule.settled(drifting[:5]) and not rule.settled(drifting[:4])


def test_the_rule_marks_a_level_unstable_at_its_limit_with_its_last_windows():
    rule = StabilityRule(needed=3, tolerance=0.10, limit=5)
    flipping = windows(*[(100 + 20 * (k % 2), 5.0) for k in range(5)])  # throughput 20% apart
    assert not rule.settled(flipping[:4]) and rule.settled(flipping)
    assert rule.chosen(flipping) == ([2, 3, 4], False)


def test_both_metrics_must_agree_and_nothing_is_never_stable():
    assert shapes.stable_run(windows((100, 5.0), (100, 6.0), (100, 5.0))) is None  # p50 20% apart
    assert shapes.stable_run(windows((100, 5.0), (109, 5.45), (100, 5.0))) == 0
    assert not shapes.agree([0.0, 0.0, 0.0], 0.1) and not shapes.agree([1.0, None, 1.0], 0.1)
    assert not shapes.agree([], 0.1)
    assert shapes.chosen_windows([], 3, 0.1) == ([], False)
    assert shapes.chosen_windows(windows((1, 1), (1, 1)), 3, 0.1) == ([0, 1], False)
    assert shapes.median_of(windows((100, 5.0), (300, 1.0), (110, None)), "p50_ms") == 3.0


# ------------------------------------------------------------------ the shapes
def test_closed_and_open_loops_are_one_level_each():
    (closed,) = ticks(shapes.ClosedLoop(4, seconds=2.0))
    assert (closed.kind, closed.concurrency, closed.seconds, closed.measured) == (CLOSED, 4, 2.0, True)
    assert closed.spec() == {"mode": "closed", "concurrency": 4}
    (opened,) = ticks(shapes.OpenLoop(50.0, arrivals="poisson", connections=8, count=100))
    assert (opened.kind, opened.rate, opened.arrivals, opened.count) == (OPEN, 50.0, "poisson", 100)
    assert opened.spec() == {"mode": "open", "rate": 50.0, "arrivals": "poisson", "connections": 8}
    with pytest.raises(ValueError, match="arrivals"):
        shapes.OpenLoop(5.0, arrivals="bursty")


def test_closed_and_open_loops_repeat_their_level_once_per_pass():
    assert ticks(shapes.ClosedLoop(2, count=50, repeats=3)) == [Level(CLOSED, concurrency=2, count=50)] * 3
    passes = ticks(shapes.OpenLoop(20.0, connections=4, count=50, repeats=2))
    assert [(lv.kind, lv.rate, lv.connections, lv.count) for lv in passes] == [(OPEN, 20.0, 4, 50)] * 2


def test_soak_probes_capacity_then_holds_a_share_of_it():
    shape = shapes.SoakShape(seconds=600, load=0.7, batch=2, probe_concurrency=8, probe_s=15, warmup=20,
                             connections=16)
    warm, probe, soak = ticks(shape, lambda level: {"images_per_s": 400.0} if level.label == "capacity" else {})
    assert (warm.kind, warm.count, warm.concurrency, warm.measured) == (CLOSED, 20, 8, False)
    assert (probe.kind, probe.concurrency, probe.seconds) == (CLOSED, 8, 15)
    assert (soak.kind, soak.arrivals, soak.seconds, soak.connections) == (OPEN, "constant", 600, 16)
    assert soak.rate == pytest.approx(0.7 * 400.0 / 2)
    (given,) = ticks(shapes.SoakShape(seconds=60, load=0.7, rate=12.5))  # a rate given: no probe, no warm-up
    assert given.rate == 12.5 and given.kind == OPEN
    with pytest.raises(ValueError):
        shapes.soak_rate(0.0, 0.7, 1)


def test_stepped_runs_closed_levels_then_open_ones_at_fractions_of_the_saturation():
    rule = StabilityRule(3, 0.1, 4)
    shape = shapes.Stepped((1, 4, 16), rule=rule, window_s=2.0, warmup_s=1.0, fractions=(0.5, 1.1), batch=1,
                           arrivals="poisson", connections=32)
    thr = {1: 100.0, 4: 300.0, 16: 320.0}
    stable = {1: True, 4: True, 16: False}

    def outcome(level: Level) -> dict:
        return {**level.spec(), "throughput_images_per_s": thr.get(level.concurrency), "stable":
                stable.get(level.concurrency, True)}

    levels = ticks(shape, outcome)
    assert [lv.kind for lv in levels] == [CLOSED] * 3 + [OPEN] * 2
    assert [lv.concurrency for lv in levels[:3]] == [1, 4, 16]
    # The saturation is the stable level with the most throughput (300, not the unstable 320).
    assert [lv.rate for lv in levels[3:]] == [150.0, 330.0]
    assert levels[3].spec() == {"mode": "open", "rate": 150.0, "rate_fraction": 0.5, "arrivals": "poisson",
                                "connections": 32}
    assert all(lv.rule is rule and lv.window_s == 2.0 for lv in levels)
    assert levels[0].longest_s == 1.0 + 4 * 2.0


def test_stepped_with_given_rates_or_no_saturation():
    rule = StabilityRule()
    given = ticks(shapes.Stepped((1,), rule=rule, window_s=1.0, rates=(10, 20), fractions=(0.5,)),
                  lambda level: {"mode": level.kind})
    assert [(lv.kind, lv.rate) for lv in given] == [(CLOSED, None), (OPEN, 10.0), (OPEN, 20.0)]
    nothing = ticks(shapes.Stepped((1, 2), rule=rule, window_s=1.0, fractions=(0.5,)),
                    lambda level: {"mode": level.kind, "throughput_images_per_s": None})
    assert [lv.kind for lv in nothing] == [CLOSED, CLOSED]  # nothing saturated: no open-loop level
    assert shapes.open_rates((), (0.5, 1.0), 2, 400.0) == [(100.0, 0.5), (200.0, 1.0)]


def test_saturation_prefers_stable_closed_levels():
    lv = [{"mode": "closed", "concurrency": c, "throughput_images_per_s": t, "stable": s}
          for c, t, s in ((1, 100, True), (4, 300, True), (16, 320, False))]
    lv.append({"mode": "open", "rate": 500, "throughput_images_per_s": 999, "stable": True})
    assert shapes.saturation(lv)["concurrency"] == 4
    assert shapes.saturation([]) is None


def test_loadgen_scenarios_are_levels_loadgen_runs():
    (single,) = ticks(shapes.LoadGenScenario("singlestream", min_queries=64, min_duration_s=2.0,
                                             expected_latency_ms=5.0))
    assert (single.kind, single.concurrency, single.rate, single.count, single.seconds) == (
        "singlestream", 1, None, 64, 2.0)
    assert single.extra == {"expected_latency_ms": 5.0}
    (server,) = ticks(shapes.LoadGenScenario("server", target_qps=200.0, connections=8))
    assert (server.kind, server.concurrency, server.rate, server.arrivals) == ("server", 8, 200.0, "poisson")
    assert server.spec()["scenario"] == "server"
    with pytest.raises(ValueError, match="target QPS"):
        shapes.LoadGenScenario("server")
    with pytest.raises(ValueError, match="scenario"):
        shapes.LoadGenScenario("offline")


def test_frame_stream_warms_up_then_runs_its_passes():
    warm, first, second = ticks(shapes.FrameStream(300, rate=30.0, window=8, warmup=20, repeats=2))
    assert (warm.kind, warm.count, warm.rate, warm.concurrency, warm.measured) == (FRAMES, 20, None, 8, False)
    assert (first.count, first.rate, first.measured, second.label) == (300, 30.0, True, "pass 2")
    assert [lv.measured for lv in ticks(shapes.FrameStream(10))] == [True]  # no warm-up asked


def test_a_scripted_shape_yields_levels_and_gets_their_outcomes_back():
    got = []

    def script():
        first = yield Level(CLOSED, concurrency=1)
        got.append(first)
        if first["throughput"] > 10:
            yield Level(OPEN, rate=first["throughput"] / 2)
        yield Level(CLOSED, concurrency=8, label="last")

    levels = ticks(shapes.Scripted(script), lambda level: {"throughput": 40.0, "kind": level.kind})
    assert [(lv.kind, lv.rate, lv.concurrency) for lv in levels] == [(CLOSED, None, 1), (OPEN, 20.0, None),
                                                                      (CLOSED, None, 8)]
    assert got == [{"throughput": 40.0, "kind": CLOSED}]
    assert ticks(shapes.Scripted(lambda: iter(()))) == []  # a script with no step

    def stopped(level: Level) -> dict:
        return {"interrupted": level.concurrency == 1}

    assert ticks(shapes.Scripted(script), stopped) == [Level(CLOSED, concurrency=1)]  # the driver stops it


# ------------------------------------------------------------------ the driver
def test_the_driver_stops_at_an_interrupted_level_and_keeps_every_outcome():
    shape = shapes.Fixed([Level(CLOSED, concurrency=c) for c in (1, 2, 4)])
    ran = []

    def run(level: Level) -> dict:
        ran.append(level.concurrency)
        return {"concurrency": level.concurrency, "interrupted": level.concurrency == 2}

    outcomes = shapes.drive(shape, run)
    assert ran == [1, 2] and [o["concurrency"] for o in outcomes] == [1, 2]


def test_a_shape_sees_every_outcome_so_far():
    class Doubling(shapes.Shape):
        def tick(self, outcomes):
            if len(outcomes) >= 3:
                return None
            return Level(CLOSED, concurrency=2 * outcomes[-1]["concurrency"] if outcomes else 1)

    assert [lv.concurrency for lv in ticks(Doubling(), lambda level: {"concurrency": level.concurrency})] == [1, 2, 4]
