import math

import pytest

from bench.studies.serverless import cost

pytestmark = pytest.mark.unit


def test_study_table_bills_in_100_ms_units_on_a_64_mb_grid():
    t = cost.load("study-2019")
    assert t.billed_ms(0.001) == 100 and t.billed_ms(0.1) == 100 and t.billed_ms(0.1001) == 200
    assert t.billed_ms(99.95) == 100_000
    grid = t.grid()
    assert grid[0] == 128 and grid[1] == 192 and grid[-1] == 3008 and 2048 in grid and 768 in grid
    with pytest.raises(ValueError, match="not a memory setting"):
        t.check_memory(1000)


def test_gb_seconds_and_cost_on_known_inputs():
    t = cost.load("study-2019")
    # 3,008 MB for 10.05 s: billed 10.1 s -> 2.9375 GB x 10.1 s = 29.66875 GB-s
    assert t.gb_s(3008, 10.05) == pytest.approx(29.66875)
    assert t.invocation_cost(3008, 10.05) == pytest.approx(29.66875 * 0.0000166667 + 0.0000002)
    # 1,024 MB for 1 s = 1 GB-s
    assert t.invocation_cost(1024, 1.0) == pytest.approx(0.0000166667 + 0.0000002)
    assert cost.per_images(0.5, 500) == pytest.approx(1.0)
    assert math.isnan(cost.per_images(1.0, 0))


def test_current_table_bills_by_the_millisecond_and_the_init_phase():
    t = cost.load("aws-2025")
    assert t.billed_ms(0.0123) == 13 and t.bills_init and t.grid()[-1] == 10240


def test_unknown_table_is_named():
    with pytest.raises(ValueError, match="no price table 'nope'"):
        cost.load("nope")
