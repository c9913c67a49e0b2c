"""Recovered-curve metrics against truth (LAS) on a shared depth grid.

Values are normalised to the track (0 = left edge, 1 = right edge), so MAE and
MSE read as fractions of the track width. Two views:

- resampled (the whitepaper's protocol): `n_points` (300) points spaced
  uniformly along the depth index over the span where truth is defined;
  keys r2, mae, mse, pearson, coverage.
- full grid: every depth sample; keys r2_full, mae_full, mse_full, pearson_full.

NaN means missing (a gap in the LAS, or depth where tracing found no curve).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["curve_metrics", "resample_linear"]


def resample_linear(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of `values` at fractional indices `positions`.

    Unlike `np.interp`, missing data stays missing: a position between a
    defined sample and a NaN is NaN, and a position exactly on a sample takes
    that sample alone (its NaN neighbour does not leak in).
    """
    values = np.asarray(values, dtype=np.float64)
    i0 = np.clip(np.floor(positions).astype(np.int64), 0, len(values) - 1)
    i1 = np.minimum(i0 + 1, len(values) - 1)
    frac = positions - i0
    with np.errstate(invalid="ignore"):
        blended = (1.0 - frac) * values[i0] + frac * values[i1]
    return np.where(frac == 0.0, values[i0], blended)


def _scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    both = np.isfinite(pred) & np.isfinite(truth)
    if both.sum() < 2:
        return {"r2": math.nan, "mae": math.nan, "mse": math.nan, "pearson": math.nan}
    p, t = pred[both], truth[both]
    err = p - t
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    # R^2 against the truth's own variance; a flat truth has none, so NaN.
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    sp, st = p.std(), t.std()
    pearson = float(np.mean((p - p.mean()) * (t - t.mean())) / (sp * st)) if sp > 0 and st > 0 else math.nan
    return {"r2": r2, "mae": float(np.mean(np.abs(err))), "mse": float(np.mean(err**2)), "pearson": pearson}


def curve_metrics(pred: np.ndarray, truth: np.ndarray, n_points: int = 300) -> dict[str, float]:
    """Compare a recovered curve with its truth on the same depth grid.

    Args:
        pred: (N,) recovered values normalised to the track; NaN = not found.
        truth: (N,) truth values on the same grid; NaN = missing.
        n_points: resampled points over the span where truth is defined.

    Returns:
        r2, mae, mse, pearson, coverage (resampled) and r2_full, mae_full,
        mse_full, pearson_full (full grid). Metrics use the points where both
        are defined and are NaN when fewer than 2 such points exist (and R^2 /
        Pearson are NaN when the truth or prediction is constant). coverage is
        the share of sample points with defined truth where pred is defined too;
        it is 0 when truth has fewer than 2 defined samples.
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.ndim != 1 or pred.shape != truth.shape:
        raise ValueError(f"pred and truth must be 1D arrays of equal length; got {pred.shape} and {truth.shape}")
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2; got {n_points}")

    full = {f"{k}_full": v for k, v in _scores(pred, truth).items()}
    defined = np.flatnonzero(np.isfinite(truth))
    if len(defined) < 2:
        nan = {"r2": math.nan, "mae": math.nan, "mse": math.nan, "pearson": math.nan}
        return {**nan, "coverage": 0.0, **full}

    positions = np.linspace(defined[0], defined[-1], n_points)
    p, t = resample_linear(pred, positions), resample_linear(truth, positions)
    truth_ok = np.isfinite(t)
    coverage = float(np.isfinite(p[truth_ok]).mean()) if truth_ok.any() else 0.0
    return {**_scores(p, t), "coverage": coverage, **full}
