"""The fixed shape grid and its cost model (issue 13, item 1): pure planning over shapes."""

from __future__ import annotations

import numpy as np
import pytest

from veernet_ray.data.buckets import plan_batches
from veernet_ray.data.shapes import (CPU_COST, GPU_COST, DeviceCost, ShapeGrid, bucket_plan_cost, choose_grid,
                                     grid_for, plan_grid)


def _seed_shapes(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(480, 641)), int(rng.integers(3200, 12801))) for _ in range(n)]


def test_grid_covers_every_shape_on_multiples():
    shapes = _seed_shapes()
    grid = grid_for(shapes, 64, 1024)
    assert all(h % 32 == 0 for h in grid.heights) and all(w % 32 == 0 for w in grid.widths)
    assert grid.heights[-1] >= 640 and grid.widths[-1] >= 12800
    for h, w in shapes:
        hp, wp = grid.cell(h, w)
        assert hp >= h and wp >= w
    with pytest.raises(ValueError, match="larger than the grid"):
        grid.cell(10_000, 10)


def test_plan_uses_every_item_once_in_full_batches_of_one_cell():
    shapes = _seed_shapes(200)
    grid = grid_for(shapes, 96, 2048)
    plan = plan_grid(shapes, grid, 8, GPU_COST)
    items = sorted(i for b in plan.batches for i in b)
    assert items == list(range(len(shapes)))
    for b, (hp, wp) in zip(plan.batches, plan.shapes):
        assert len(b) <= 8 and all(grid.cell(*shapes[i]) == (hp, wp) for i in b)
    cells = {s for s in plan.shapes}
    assert sum(len(b) < 8 for b in plan.batches) <= len(cells)  # at most one partial batch per cell
    assert plan.real_px < plan.computed_px and 0 < plan.padding < 1


def test_gpu_cost_trades_padding_for_fewer_shapes_and_fuller_batches():
    """With a per-shape warm-up, the chosen grid beats height bucketing on the cost model's own
    terms: fuller batches, an order of magnitude fewer distinct shapes, more useful Mpx/s."""
    shapes = _seed_shapes(512)
    grid = choose_grid(shapes, 16, GPU_COST, epochs=10)
    bucket = bucket_plan_cost(shapes, plan_batches(shapes, 16), 16, GPU_COST, epochs=10)
    assert grid.fill > bucket.fill
    assert grid.distinct_shapes * 4 < bucket.distinct_shapes
    assert grid.useful_mpx_per_s > 1.2 * bucket.useful_mpx_per_s
    assert grid.padding > bucket.padding  # what it costs, reported, not hidden


def test_without_warmup_the_grid_keeps_padding_low():
    shapes = _seed_shapes(256)
    plan = choose_grid(shapes, 4, CPU_COST)
    assert plan.padding < 0.06


def test_bad_cost_and_batch_are_refused():
    with pytest.raises(ValueError, match="px_per_s"):
        DeviceCost(0.01, 0.0, 1.0)
    with pytest.raises(ValueError, match="physical_batch"):
        plan_grid([(480, 3200)], ShapeGrid((480,), (3200,)), 0, GPU_COST)
    with pytest.raises(ValueError, match="no shapes"):
        choose_grid([], 4, GPU_COST)
