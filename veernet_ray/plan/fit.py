"""The two straight lines the planner believes in, fitted to measurements: pure numpy, no torch.

Memory: peak = fixed + per_pixel x batch x padded_height x padded_width.
    `fixed` is weights, gradients and AdamW's two moments (16 bytes per fp32
    parameter) plus whatever the allocator keeps; `per_pixel` is what autograd
    saves per input pixel, summed over every layer. Linear in pixels because
    every activation is a fixed number of channels at a fixed fraction of the
    input's area, and attention runs through fused SDPA (memory linear in tokens).
Time: seconds per micro-step = overhead + per_pixel x batch x padded area.

Both fits minimise *relative* error, so a 3 GiB point counts as much as a 30 GiB
one, and both keep their residuals so the caller can say how straight the line is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

GIB = 2**30
# A fit whose points stray further than this from the line is reported as suspect.
RESIDUAL_TOLERANCE = 0.05


@dataclass(frozen=True)
class Point:
    """One training-step observation at (batch, padded height, padded width).

    peak_bytes: peak memory of the step (measured on a GPU, or estimated).
    seconds: wall clock of one micro-step (forward, backward, optimiser), if timed.
    """

    batch: int
    height: int
    width: int
    peak_bytes: float
    seconds: float | None = None

    @property
    def pixels(self) -> int:
        return self.batch * self.height * self.width


def _relative_lstsq(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) minimising sum(((a + b x) / y - 1)^2)."""
    if len(set(x.tolist())) < 2:
        raise ValueError("a line needs points at two or more different pixel counts (batch x height x width)")
    w = 1.0 / y
    A = np.stack([w, x * w], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.ones_like(y), rcond=None)
    return float(a), float(b)


@dataclass(frozen=True)
class MemoryFit:
    """peak = fixed_bytes + per_pixel_bytes x batch x height x width.

    basis: "measured" (torch.cuda.max_memory_allocated around real steps) or
    "estimate" (activation accounting on a CPU); never mixed.
    """

    fixed_bytes: float
    per_pixel_bytes: float
    basis: str
    points: tuple[Point, ...] = ()

    def predict(self, batch: int, height: int, width: int) -> float:
        return self.fixed_bytes + self.per_pixel_bytes * batch * height * width

    def residuals(self) -> list[float]:
        """(predicted - observed) / observed for every fitted point."""
        return [self.predict(p.batch, p.height, p.width) / p.peak_bytes - 1.0 for p in self.points]

    @property
    def max_residual(self) -> float:
        r = self.residuals()
        return max((abs(v) for v in r), default=0.0)

    def max_batch(self, height: int, width: int, budget_bytes: float, cap: int = 4096) -> int:
        """The largest batch whose predicted peak fits `budget_bytes` at this padded shape (0 = not even 1)."""
        room = budget_bytes - self.fixed_bytes
        per_image = self.per_pixel_bytes * height * width
        if room < per_image or per_image <= 0:
            return 0
        return int(min(cap, room // per_image))

    def max_width(self, height: int, budget_bytes: float, batch: int = 1, multiple: int = 32) -> int:
        """The widest padded width (a multiple of `multiple`) that fits `batch` at `height`; 0 if none."""
        room = budget_bytes - self.fixed_bytes
        if room <= 0 or self.per_pixel_bytes <= 0:
            return 0
        return int(room / (self.per_pixel_bytes * batch * height)) // multiple * multiple

    def to_dict(self) -> dict:
        return {
            "basis": self.basis,
            "fixed_bytes": round(self.fixed_bytes),
            "per_pixel_bytes": self.per_pixel_bytes,
            "max_rel_residual": self.max_residual,
            "residual_ok": self.max_residual <= RESIDUAL_TOLERANCE,
            "points": [{**asdict(p), "rel_residual": r} for p, r in zip(self.points, self.residuals())],
        }


def fit_memory(points: Sequence[Point], basis: str) -> MemoryFit:
    """Least-squares (relative) line through the points' peak memory against batch x area."""
    if len(points) < 2:
        raise ValueError(f"the memory fit needs at least 2 points, got {len(points)}")
    x = np.array([p.pixels for p in points], dtype=np.float64)
    y = np.array([p.peak_bytes for p in points], dtype=np.float64)
    fixed, per_px = _relative_lstsq(x, y)
    if per_px <= 0:
        raise ValueError(f"memory did not grow with batch x area across {len(points)} points; cannot plan from them")
    return MemoryFit(fixed, per_px, basis, tuple(points))


@dataclass(frozen=True)
class StepTime:
    """seconds per micro-step = overhead_s + s_per_pixel x batch x height x width.

    basis: "measured" (real steps on this GPU), "cpu-measured" (real steps on
    this CPU: not a GPU figure) or "given" (a throughput someone supplied).
    """

    overhead_s: float
    s_per_pixel: float
    basis: str
    device: str

    @property
    def mpx_per_s(self) -> float:
        return 1e-6 / self.s_per_pixel

    def seconds(self, pixels: int) -> float:
        return self.overhead_s + self.s_per_pixel * pixels

    def to_dict(self) -> dict:
        return {"basis": self.basis, "device": self.device, "mpx_per_s": self.mpx_per_s,
                "overhead_s_per_micro_step": self.overhead_s}


def fit_step_time(points: Sequence[Point], basis: str, device: str) -> StepTime:
    """Time line through timed points; one point (or one pixel count) gives a pure throughput, no overhead."""
    timed = [p for p in points if p.seconds]
    if not timed:
        raise ValueError("no timed points to fit a throughput from")
    x = np.array([p.pixels for p in timed], dtype=np.float64)
    y = np.array([p.seconds for p in timed], dtype=np.float64)
    if len(set(x.tolist())) < 2:
        return StepTime(0.0, float(np.sum(y) / np.sum(x)), basis, device)
    overhead, per_px = _relative_lstsq(x, y)
    if per_px <= 0 or overhead < 0:  # noisy timings: fall back to the plain ratio, which is never negative
        return StepTime(0.0, float(np.sum(y) / np.sum(x)), basis, device)
    return StepTime(overhead, per_px, basis, device)


def given_throughput(mpx_per_s: float, source: str) -> StepTime:
    if not mpx_per_s > 0:
        raise ValueError(f"throughput must be a positive number of megapixels per second, got {mpx_per_s}")
    return StepTime(0.0, 1e-6 / mpx_per_s, "given", source)
