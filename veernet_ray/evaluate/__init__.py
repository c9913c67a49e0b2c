"""Curve-level evaluation shared by training validation, tuning and the demo.

Mask metrics punish one-pixel traces, so the platform grades on the recovered
curve: probabilities -> trace -> position normalised to the track, against the
truth LAS mapped through the sidecar onto the same columns. Positions are
normalised to the image height (0 = bottom row, 1 = top row) and stay
unwrapped for backup segments (a value one scale cycle on lies one track
height beyond the edge), so the comparison is the whitepaper's "values
normalised to the track".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from veernet_ray.las.sidecar import Sidecar


@dataclass(frozen=True)
class TruthCurves:
    class_ids: tuple[int, ...]
    positions: np.ndarray  # (K, W) float32, normalised, NaN where the truth has no value
    wrap_px: tuple[float | None, ...]  # period in pixels per curve, None if the sidecar declares no wrap


def truth_positions(las_path: str | Path, sidecar: str | Path | Sidecar, height: int, width: int) -> TruthCurves:
    """Truth curve values at every column of a (height, width) canonical raster, as track positions."""
    from veernet_ray.las.lasfile import read_las_curves

    sc = sidecar if isinstance(sidecar, Sidecar) else Sidecar.load(sidecar)
    # canonical() takes the scan's own shape; a portrait scan is (width, height) of its canonical raster
    sc = sc.canonical((width, height)) if sc.orientation != "depth_along_width" else sc
    depth, curves, _ = read_las_curves(las_path)
    col_depth = sc.depth.depth_at(np.arange(width, dtype=np.float64))
    order = np.argsort(depth)
    positions = np.full((len(sc.curves), width), np.nan, np.float32)
    for k, axis in enumerate(sorted(sc.curves, key=lambda c: c.class_id)):
        values = curves.get(axis.mnemonic)
        if values is None:
            continue
        v = np.asarray(values, np.float64)[order]
        d = depth[order]
        # interpolate only between defined samples; a NULL gap stays NaN
        ok = np.isfinite(v)
        if ok.sum() < 2:
            continue
        coord = np.log10(np.where(v > 0, v, np.nan)) if axis.scale == "log" else v
        at = np.interp(col_depth, d[ok], coord[ok], left=np.nan, right=np.nan)
        gap = _in_gap(col_depth, d, ok)
        at[gap] = np.nan
        vals = np.power(10.0, at) if axis.scale == "log" else at
        rows = axis.row_at(vals)
        positions[k] = normalised(rows, height)
    wraps = tuple(
        None if c.wrap is None else c.wrap.period * c.track_px for c in sorted(sc.curves, key=lambda c: c.class_id)
    )
    return TruthCurves(tuple(sorted(c.class_id for c in sc.curves)), positions, wraps)


def _in_gap(x: np.ndarray, d: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """True where x falls between two depth samples of which one is undefined."""
    idx = np.clip(np.searchsorted(d, x), 1, len(d) - 1)
    return ~(ok[idx] & ok[idx - 1])


def normalised(rows: np.ndarray, height: int) -> np.ndarray:
    """Canonical row -> track position: 0 = bottom row, 1 = top row (docs/contracts.md section 4)."""
    return (height - 1 - np.asarray(rows, np.float64)) / max(height - 1, 1)


def trace_positions(
    probs: np.ndarray, class_ids: tuple[int, ...], wrap_px: tuple[float | None, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (C, H, W) -> (positions (K, W), confidence (K, W)) for the given curves."""
    from veernet_ray.trace.decode import decode

    wraps = None
    if wrap_px is not None:
        wraps = {cid: (None if w is None or not np.isfinite(w) else float(w)) for cid, w in zip(class_ids, wrap_px)}
    result = decode(probs, class_ids, wrap_px=wraps)
    return normalised(result.rows, probs.shape[1]), result.confidence


def score_curves(pred: np.ndarray, truth: np.ndarray) -> list[dict[str, float]]:
    """Per-curve metrics (R^2, MAE, MSE, Pearson r on 300 points and on the full grid)."""
    from veernet_ray.metrics.curves import curve_metrics

    out = []
    for p, t in zip(pred, truth):
        if np.isfinite(t).sum() < 2:
            continue  # no truth for this curve on this scan: nothing to grade
        out.append(curve_metrics(np.asarray(p, np.float64), np.asarray(t, np.float64)))
    return out


def summarise(scores: list[dict[str, float]], prefix: str = "") -> dict[str, float]:
    """Median R^2 / Pearson and mean MAE / MSE / coverage over curves.

    A curve the trace missed entirely has NaN R^2 and Pearson; it counts as 0
    (no skill) in the medians rather than being dropped, so a model cannot
    look better by finding fewer curves. MAE/MSE average over curves that have
    values; coverage says how many do.
    """
    if not scores:
        return {}
    keys = {"r2": np.median, "pearson": np.median, "mae": np.nanmean, "mse": np.nanmean, "coverage": np.nanmean}
    out = {}
    for key, fn in keys.items():
        vals = np.array([s.get(key, np.nan) for s in scores], np.float64)
        if fn is np.median:
            vals = np.nan_to_num(vals, nan=0.0)
        out[f"{prefix}curve_{key}" + ("_median" if fn is np.median else "")] = (
            float(fn(vals)) if np.isfinite(vals).any() else float("nan")
        )
    return out
