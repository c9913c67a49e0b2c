"""A fixed grid of batch shapes, chosen by what it costs on the device (issue 13, item 1).

Bucketing by padded height with a 3% padding cap (`data.buckets`) keeps padding
low but fragments batches: on seed-size logs nearly every micro-batch has a new
(H, W), holds 1-3 images, and a GPU pays a warm-up (cuDNN autotuning, allocator
growth, a compile) per new shape. This module instead pads every image up to
the smallest cell of a coarse grid of heights x widths, fills micro-batches to
the physical batch inside each cell, and picks the grid steps with a cost
model that weighs padding, batch fill and the number of distinct shapes
together:

    time = sum over micro-batches (step_overhead_s + computed_px / px_per_s)
           + warmup_s * distinct shapes / epochs

and the score is *useful* pixels (the images' own) per second. Padding is one
input, no longer the objective. The constants are per device (`DeviceCost`);
the GPU defaults are an H200's measured figures (2026-11-27), meant to be
replaced by `veernet plan`'s measurement on the device at hand.

Pure NumPy over shapes from the manifest; never reads pixels.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from veernet_ray.data.buckets import MULTIPLE
from veernet_ray.data.collate import round_up


@dataclass(frozen=True)
class DeviceCost:
    """What a training step costs on one device."""

    step_overhead_s: float  # per micro-batch, whatever its size (launches, host work)
    px_per_s: float  # computed (padded) pixels per second at full occupancy
    warmup_s: float  # one-off cost of a new (batch, H, W) shape: autotune, allocator, compile

    def __post_init__(self):
        for name in ("step_overhead_s", "warmup_s"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if not (self.px_per_s > 0 and math.isfinite(self.px_per_s)):
            raise ValueError(f"px_per_s must be a positive number, got {self.px_per_s!r}")


#: measured on an H200, 2026-11-28 (bench/RESULTS.md, "Issue 13 on a GPU, second session"): the grid
#: regime at batch 16 (seed model, bf16, channels_last, torch's native GroupNorm kernels on NCHW copies)
#: computed 107 Mpx/s (77.0 useful at 28.3% padding), and its warm-up pass took 57.6 s more than a
#: timed pass over 8 shapes, 7.2 s a shape (cuDNN autotuning forward and backward); 20 ms host
#: overhead per step. 2026-11-27, with the sliced GroupNorm: 73 Mpx/s and 6.0 s. Re-measure with
#: bench/gpu_session.sh after a kernel change.
GPU_COST = DeviceCost(step_overhead_s=0.02, px_per_s=107e6, warmup_s=7.2)
#: a CPU has no per-shape warm-up worth the name; its cost is the pixels
CPU_COST = DeviceCost(step_overhead_s=0.01, px_per_s=1.5e6, warmup_s=0.0)


@dataclass(frozen=True)
class ShapeGrid:
    heights: tuple[int, ...]  # padded heights, ascending, multiples of `multiple`
    widths: tuple[int, ...]  # padded widths, ascending

    def cell(self, h: int, w: int) -> tuple[int, int]:
        """The smallest grid cell an (h, w) image fits in."""
        hi = int(np.searchsorted(self.heights, h))
        wi = int(np.searchsorted(self.widths, w))
        if hi == len(self.heights) or wi == len(self.widths):
            raise ValueError(f"a {h} x {w} image is larger than the grid's largest cell "
                             f"{self.heights[-1]} x {self.widths[-1]}")
        return self.heights[hi], self.widths[wi]


@dataclass(frozen=True)
class GridPlan:
    grid: ShapeGrid
    batches: list[list[int]]  # item indices per micro-batch
    shapes: list[tuple[int, int]]  # padded (H, W) per micro-batch
    real_px: int
    computed_px: int
    physical_batch: int
    seconds: float  # predicted by the cost model, warm-up included

    @property
    def padding(self) -> float:
        return 1.0 - self.real_px / self.computed_px if self.computed_px else 0.0

    @property
    def fill(self) -> float:
        """Mean micro-batch size over the physical batch."""
        return float(np.mean([len(b) for b in self.batches])) / self.physical_batch if self.batches else 0.0

    @property
    def distinct_shapes(self) -> int:
        return len({(len(b), *s) for b, s in zip(self.batches, self.shapes)})

    @property
    def useful_mpx_per_s(self) -> float:
        return self.real_px / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, float]:
        return {"micro_batches": len(self.batches), "fill": round(self.fill, 3), "padding": round(self.padding, 4),
                "distinct_shapes": self.distinct_shapes, "useful_mpx_per_s": round(self.useful_mpx_per_s, 2),
                "heights": list(self.grid.heights), "widths": list(self.grid.widths)}


def grid_for(shapes: Sequence[tuple[int, int]], h_step: int, w_step: int, multiple: int = MULTIPLE) -> ShapeGrid:
    """Heights and widths on a step (rounded to `multiple`) that cover every shape, from the smallest up."""
    hs = np.array([h for h, _ in shapes])
    ws = np.array([w for _, w in shapes])

    def axis(lo: int, hi: int, step: int) -> tuple[int, ...]:
        step = round_up(step, multiple)
        top = round_up(hi, multiple)
        # on the step from the smallest; the largest cell ends at the largest shape, not a step beyond it
        return tuple(v for v in range(round_up(lo, multiple), top, step)) + (top,)

    return ShapeGrid(axis(int(hs.min()), int(hs.max()), h_step), axis(int(ws.min()), int(ws.max()), w_step))


def plan_grid(shapes: Sequence[tuple[int, int]], grid: ShapeGrid, physical_batch: int, cost: DeviceCost,
              *, epochs: int = 1, seed: int = 0) -> GridPlan:
    """Micro-batches of up to `physical_batch` items of one grid cell each, with the cost model's time.

    A cell's items are shuffled (seeded) and cut into full batches; its remainder forms one
    smaller batch. Batch order is shuffled so training sees cells mixed.
    """
    if physical_batch < 1:
        raise ValueError(f"physical_batch must be at least 1, got {physical_batch}")
    rng = np.random.default_rng(seed)
    cells: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (h, w) in enumerate(shapes):
        cells[grid.cell(h, w)].append(i)
    batches, shapes_out = [], []
    for cell in sorted(cells):
        items = list(rng.permutation(cells[cell]))
        for a in range(0, len(items), physical_batch):
            batches.append([int(i) for i in items[a : a + physical_batch]])
            shapes_out.append(cell)
    order = rng.permutation(len(batches))
    return _costed(grid, [batches[i] for i in order], [shapes_out[i] for i in order], shapes, physical_batch,
                   cost, epochs)


def _costed(grid: ShapeGrid, batches: list[list[int]], shapes_out: list[tuple[int, int]],
            shapes: Sequence[tuple[int, int]], physical_batch: int, cost: DeviceCost, epochs: int) -> GridPlan:
    """A plan with its pixel counts and the cost model's time."""
    real = int(sum(h * w for h, w in shapes))
    computed = int(sum(len(b) * hp * wp for b, (hp, wp) in zip(batches, shapes_out)))
    plan = GridPlan(grid, batches, shapes_out, real, computed, physical_batch, seconds=0.0)
    seconds = (len(batches) * cost.step_overhead_s + computed / cost.px_per_s
               + cost.warmup_s * plan.distinct_shapes / max(1, epochs))
    return dataclasses.replace(plan, seconds=seconds)


#: grid steps searched by `choose_grid` (pixels, before rounding to the multiple)
H_STEPS = (32, 64, 96, 128, 192, 256)
W_STEPS = (128, 256, 512, 768, 1024, 1536, 2048, 4096)


def choose_grid(shapes: Sequence[tuple[int, int]], physical_batch: int, cost: DeviceCost, *, epochs: int = 1,
                multiple: int = MULTIPLE, seed: int = 0) -> GridPlan:
    """The grid (over H_STEPS x W_STEPS) whose plan has the most useful pixels per second."""
    if not shapes:
        raise ValueError("no shapes to plan")
    best = None
    for hs in H_STEPS:
        for ws in W_STEPS:
            plan = plan_grid(shapes, grid_for(shapes, hs, ws, multiple), physical_batch, cost, epochs=epochs, seed=seed)
            if best is None or plan.useful_mpx_per_s > best.useful_mpx_per_s:
                best = plan
    return best


def bucket_plan_cost(shapes: Sequence[tuple[int, int]], batches: Sequence[Sequence[int]], physical_batch: int,
                     cost: DeviceCost, *, epochs: int = 1, multiple: int = MULTIPLE) -> GridPlan:
    """The same cost model applied to another plan (e.g. `buckets.plan_batches`), for a side-by-side figure."""
    shapes_out = [(round_up(max(shapes[i][0] for i in b), multiple), round_up(max(shapes[i][1] for i in b), multiple))
                  for b in batches]
    grid = ShapeGrid(tuple(sorted({s[0] for s in shapes_out})), tuple(sorted({s[1] for s in shapes_out})))
    return _costed(grid, [list(b) for b in batches], shapes_out, shapes, physical_batch, cost, epochs)
