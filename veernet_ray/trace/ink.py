"""Ink from a scan's own pixels: the classical baselines' input and QC's second opinion.

NumPy (and one compiled pass) on a canonical uint8 scan (H, W): dark ink on lighter paper.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: columns per window over which a row's median darkness is taken (grid rows span it, curves do not)
ROW_WINDOW = 256


def darkness(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 ink strength: 0 on paper (each column's 90th percentile), ~1 on the darkest ink."""
    return InkMap(image).full()


class InkMap:
    """A scan's `darkness`, read only where it is needed (QC reads a few rows per column).

    The two per-scan quantities are computed up front: each column's paper level (the
    90th percentile of every (H // 128)-th row) and the normaliser (the 99.9th percentile
    of the unnormalised ink over the whole scan, from the values near the top only,
    `_ink_at_least`). Ink at any pixel is then (paper - x) / max(paper, 1), clipped to
    [0, 1], over the normaliser: the float32 arithmetic `full()` does, so `at` returns
    the values of `full()` without the (H, W) array.
    """

    #: the normaliser's percentile: the darkest ink reads ~1
    TOP = 99.9

    def __init__(self, image: np.ndarray):
        if image.ndim != 2 or image.size == 0 or image.dtype != np.uint8:
            raise ValueError(f"ink needs a non-empty (H, W) uint8 scan, got {image.dtype} {image.shape}")
        self.image = image
        self.paper = column_percentile(image[:: max(1, image.shape[0] // 128)], 90)  # (W,) float32
        self._div = np.maximum(self.paper, 1.0)
        self.norm = np.float32(max(self._top(), 1e-3))

    def _raw(self, x: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Unnormalised ink of pixel values x in columns cols (broadcast)."""
        ink = np.subtract(self.paper[cols], x, dtype=np.float32)
        np.divide(ink, self._div[cols], out=ink)
        return np.clip(ink, 0.0, 1.0, out=ink)

    def _top(self) -> float:
        """`np.percentile(raw ink, TOP)` (linear), without the raw ink array: the two order
        statistics come from the values above a bound taken from a sample (all values when
        the bound lets too few through), interpolated in float64 (within a rounding step)."""
        h, w = self.image.shape
        n = h * w
        pos = self.TOP / 100.0 * (n - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, n - 1)
        flat = np.arange(0, n, max(1, n // 65536))
        sample = self._raw(self.image.reshape(-1)[flat], flat % w)
        bound = np.float32(np.percentile(sample, max(0.0, 100.0 - 4.0 * (100.0 - self.TOP))))  # ~4x what is needed
        image = np.ascontiguousarray(self.image)
        top = _ink_at_least(image, self.paper, self._div, bound)
        if top.size < n - lo:  # the sample misjudged: take every value
            top = _ink_at_least(image, self.paper, self._div, np.float32(-1.0))
        skip = n - top.size
        part = np.partition(top, (lo - skip, hi - skip))
        a, b = float(part[lo - skip]), float(part[hi - skip])
        return a + (b - a) * (pos - lo)

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """darkness(image)[rows, cols] (broadcast index arrays)."""
        rows, cols = np.broadcast_arrays(rows, cols)
        ink = self._raw(self.image[rows, cols], cols)
        ink /= self.norm
        return ink

    def full(self) -> np.ndarray:
        """The whole (H, W) float32 darkness map."""
        ink = self.image.astype(np.float32)
        # in place: one (H, W) array instead of five (fresh pages cost more than the arithmetic)
        np.subtract(self.paper[None, :], ink, out=ink)
        np.divide(ink, self._div[None, :], out=ink)
        np.clip(ink, 0.0, 1.0, out=ink)
        ink /= self.norm
        return ink

    def row_median_at(self, rows: np.ndarray, cols: np.ndarray, window: int = ROW_WINDOW) -> np.ndarray:
        """`row_median(self.full(), window)[rows, cols]`, with medians taken only where they are read.

        QC reads the row median only under a trace: a few rows per window, not all H.
        Each distinct (row, window) pair is one median, so the values equal `row_median`'s.
        """
        h, w = self.image.shape
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        if rows.size == 0:
            return np.empty(0, dtype=np.float32)
        end = np.minimum(w, (cols // window) * window + window)
        start = np.maximum(0, end - window)  # the window `row_median` gives each column
        pairs, which = np.unique(rows * w + start, return_inverse=True)
        block = self.at((pairs // w)[:, None], (pairs % w)[:, None] + np.arange(min(window, w)))
        return np.median(block, axis=1)[which.ravel()]


@numba.njit(cache=True, nogil=True)
def _ink_at_least(image, paper, div, bound):  # pragma: no cover - compiled
    """1-D float32: every unnormalised ink value of a uint8 scan >= bound.

    Ink falls as a pixel lightens, so per column the pixels that pass are those at or below
    a limit found once from the 256 possible values; the scan is then read with integer
    compares (count, then fill), and ink computed only for what passes, with the float32
    arithmetic of `InkMap._raw`: (paper - x) / div, clipped to [0, 1].
    """
    h, w = image.shape
    limit = np.full(w, -1, np.int32)
    for c in range(w):
        for v in range(256):
            if _raw_ink(paper[c], div[c], v) >= bound:
                limit[c] = v
            else:
                break
    count = 0
    for r in range(h):
        for c in range(w):
            count += np.int32(image[r, c]) <= limit[c]
    out = np.empty(count, np.float32)
    k = 0
    for r in range(h):
        for c in range(w):
            if np.int32(image[r, c]) <= limit[c]:
                out[k] = _raw_ink(paper[c], div[c], image[r, c])
                k += 1
    return out


@numba.njit(cache=True, nogil=True)
def _raw_ink(paper, div, value):  # pragma: no cover - compiled
    """One pixel's unnormalised ink, in float32: (paper - value) / div, clipped to [0, 1]."""
    return min(max((paper - np.float32(value)) / div, np.float32(0.0)), np.float32(1.0))


def column_percentile(sample: np.ndarray, q: float) -> np.ndarray:
    """(W,) float32: `np.percentile(sample.astype(np.float32), q, axis=0)` (linear), bit for bit.

    NumPy partitions down the strided columns; here each column is sorted as a contiguous
    row instead (a radix sort for uint8 scans: `kind="stable"`), and the two order
    statistics are interpolated with NumPy's own float32 arithmetic (`_lerp` with a
    scalar weight). About 2.5x faster on a seed scan's sampled rows.
    """
    n = sample.shape[0]
    rows = np.sort(np.ascontiguousarray(sample.T), axis=1, kind="stable")
    pos = (n - 1) * (q / 100)
    lo = int(math.floor(pos))
    t = pos - lo
    a = rows[:, lo].astype(np.float32)
    b = rows[:, min(lo + 1, n - 1)].astype(np.float32)
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


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


def grid_suppressed(image: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] with long dark rows (row medians) and columns (column medians) removed."""
    ink = darkness(image)
    ink = ink - row_median(ink)
    ink = np.clip(ink - np.median(ink, axis=0, keepdims=True), 0.0, None)
    top = float(np.percentile(ink, 99.9)) or 1.0
    return np.clip(ink / top, 0.0, 1.0)
