"""Ink from a scan's own pixels: the classical baselines' input and QC's second opinion.

Pure NumPy on a canonical uint8 scan (H, W): dark ink on lighter paper.
"""

from __future__ import annotations

import math

import numpy as np

#: columns per window over which a row's median darkness is taken (grid rows span it, curves do not)
ROW_WINDOW = 256


def darkness(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 ink strength: 0 on paper (each column's 90th percentile), ~1 on the darkest ink."""
    ink = image.astype(np.float32)
    paper = np.percentile(ink[:: max(1, ink.shape[0] // 128)], 90, axis=0)[None, :]
    # in place: one (H, W) array instead of five (fresh pages cost more than the arithmetic)
    np.subtract(paper, ink, out=ink)
    np.divide(ink, np.maximum(paper, 1.0), out=ink)
    np.clip(ink, 0.0, 1.0, out=ink)
    ink /= np.float32(max(top_percentile(ink, 99.9), 1e-3))
    return ink


def top_percentile(x: np.ndarray, q: float) -> float:
    """`np.percentile(x, q)` (linear interpolation) for q near 100, read from the top of x only.

    A full-size partition of a scan's ink costs more than all the rest of `darkness`.
    The q-th percentile lies between two order statistics near the top, so only the
    values above a bound taken from a small sample are partitioned (with every value
    when the bound lets too few through). The same order statistics as np.percentile,
    interpolated in float64: equal to it within a rounding step.
    """
    flat = np.asarray(x).ravel()
    n = flat.size
    if n == 0:
        raise ValueError("top_percentile of an empty array")
    pos = q / 100.0 * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    sample = flat[:: max(1, n // 65536)]
    bound = np.percentile(sample, max(0.0, 100.0 - 4.0 * (100.0 - q)))  # keeps ~4x what is needed
    top = flat[flat >= bound]
    if top.size < n - lo:  # the sample misjudged: take everything
        top = flat
    skip = n - top.size  # values below every one kept
    part = np.partition(top, (lo - skip, hi - skip))
    a, b = float(part[lo - skip]), float(part[hi - skip])
    return a + (b - a) * (pos - lo)


def row_median(ink: np.ndarray, window: int = ROW_WINDOW) -> np.ndarray:
    """Each row's median over windows of `window` columns, broadcast back to (H, W).

    High on long horizontal lines (grid, track borders), ~0 on curves, which
    cross a row in a few columns.
    """
    h, w = ink.shape
    out = np.empty_like(ink)
    for a in range(0, w, window):
        b = min(w, a + window)
        b0 = max(0, b - window)  # the last window is full-width too
        out[:, a:b] = np.median(ink[:, b0:b], axis=1, keepdims=True)
    return out


def row_median_at(ink: np.ndarray, rows: np.ndarray, cols: np.ndarray, window: int = ROW_WINDOW) -> np.ndarray:
    """`row_median(ink, window)[rows, cols]`, with medians taken only where they are read.

    QC reads the row median only under a trace: a few rows per window, not all H.
    Each distinct (row, window) pair is one median, so the values equal `row_median`'s.
    """
    h, w = ink.shape
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if rows.size == 0:
        return np.empty(0, dtype=ink.dtype)
    end = np.minimum(w, (cols // window) * window + window)
    start = np.maximum(0, end - window)  # the window `row_median` gives each column
    pairs, which = np.unique(rows * w + start, return_inverse=True)
    block = ink[(pairs // w)[:, None], (pairs % w)[:, None] + np.arange(min(window, w))]
    return np.median(block, axis=1)[which.ravel()]


def grid_suppressed(image: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] with long dark rows (row medians) and columns (column medians) removed."""
    ink = darkness(image)
    ink = ink - row_median(ink)
    ink = np.clip(ink - np.median(ink, axis=0, keepdims=True), 0.0, None)
    top = float(np.percentile(ink, 99.9)) or 1.0
    return np.clip(ink / top, 0.0, 1.0)
