"""The reviewer's edit operations, as pure NumPy functions on one scan's curves.

A curve under review lives on its LAS depth grid: for LAS row i, `cols[i]` is the
(fractional) scan column of that depth and `rows[i]` the scan row of the value
(NaN = no value), `conf[i]` its confidence. The store (`review.store`) turns
LAS values into rows before an edit and rows back into values after it (the
sidecar's axes), and writes back only the LAS rows an edit changed, so values
the reviewer did not touch keep their exact bytes.

Every operation returns new arrays and the LAS row indices it changed; none
mutates its inputs. Coordinates are canonical (depth along the width).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: rows either side of a click searched for ink: a click within ~1 mm (at 300 dpi) of a
#: stroke lands on it; further than that the reviewer meant the spot they clicked
SNAP_RADIUS = 12
#: ink strength (trace.ink.darkness, 0 paper .. 1 darkest ink) above which a pixel is ink:
#: the same level QC's ink-support signal uses (trace.qc.INK_LEVEL)
INK_LEVEL = 0.2
#: confidence written for values a person drew (the model's confidences are 0-1)
REVIEWED_CONF = 1.0


class EditError(ValueError):
    """An edit that cannot be applied as asked; the message says what to do instead."""


def span(cols: np.ndarray, c0: float, c1: float) -> np.ndarray:
    """Indices of LAS rows whose column lies in [min(c0, c1), max(c0, c1)]."""
    lo, hi = sorted((float(c0), float(c1)))
    cols = np.asarray(cols, dtype=np.float64)
    return np.flatnonzero((cols >= lo) & (cols <= hi))


def snap_to_ink(ink: np.ndarray, col: float, row: float, radius: int = SNAP_RADIUS) -> float:
    """The centre of the ink stroke nearest to (col, row) in that scan column, or `row` when there is none.

    ink: (H, W) ink strength in [0, 1] (`trace.ink.darkness`). A stroke is a run of
    rows above INK_LEVEL; its centre is the ink-weighted mean row, so a click on
    either edge of a 4-px line lands on the line's middle.
    """
    h, w = ink.shape
    c = int(round(float(col)))
    r = float(row)
    if not (0 <= c < w) or not np.isfinite(r):
        raise EditError(f"point ({col}, {row}) lies outside the scan ({w} columns, {h} rows)")
    lo, hi = max(0, int(np.floor(r)) - radius), min(h, int(np.ceil(r)) + radius + 1)
    if lo >= hi:
        return r
    strength = ink[lo:hi, c].astype(np.float64)
    on = strength > INK_LEVEL
    if not on.any():
        return r
    # runs of consecutive ink rows; the nearest run to the click wins
    idx = np.flatnonzero(on)
    breaks = np.flatnonzero(np.diff(idx) > 1)
    runs = np.split(idx, breaks + 1)
    best = min(runs, key=lambda run: min(abs(lo + run[0] - r), abs(lo + run[-1] - r)))
    weights = strength[best]
    return float(lo + np.sum(best * weights) / np.sum(weights))


def redraw(rows: np.ndarray, conf: np.ndarray, cols: np.ndarray,
           points: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace the stretch between the first and last point by straight segments through the points.

    points: (col, row) pairs, two or more, at distinct columns (any order: they are
    sorted along depth). LAS rows whose column lies within the points' span get the
    row interpolated between their neighbouring points and confidence REVIEWED_CONF.
    Returns (rows, conf, changed indices).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 2:
        raise EditError("click at least two points along the curve to redraw a stretch")
    if not np.isfinite(pts).all():
        raise EditError("points must be finite numbers")
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    if np.any(np.diff(pts[:, 0]) <= 0):
        raise EditError("two points share a column; click points at different depths")
    idx = span(cols, pts[0, 0], pts[-1, 0])
    if idx.size == 0:
        raise EditError("the points span no LAS depth; click points further apart along depth")
    new_rows, new_conf = np.array(rows, dtype=np.float64), np.array(conf, dtype=np.float64)
    new_rows[idx] = np.interp(np.asarray(cols, dtype=np.float64)[idx], pts[:, 0], pts[:, 1])
    new_conf[idx] = REVIEWED_CONF
    return new_rows, new_conf, idx


def swap(rows_a: np.ndarray, conf_a: np.ndarray, rows_b: np.ndarray, conf_b: np.ndarray, cols: np.ndarray,
         c0: float, c1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exchange the two curves' traces between columns c0 and c1 (the model swapped their identities there).

    The swap is of positions on the scan (rows), not of values: curve A's new value
    there is read off A's own axis at the row B was traced at, so curves on
    different scales (GR linear, ILD log) swap correctly.
    Returns (rows_a, conf_a, rows_b, conf_b, changed indices).
    """
    idx = span(cols, c0, c1)
    if idx.size == 0:
        raise EditError("the range spans no LAS depth; drag across a wider range")
    old_ra, old_ca = np.asarray(rows_a, dtype=np.float64), np.asarray(conf_a, dtype=np.float64)
    old_rb, old_cb = np.asarray(rows_b, dtype=np.float64), np.asarray(conf_b, dtype=np.float64)
    ra, ca, rb, cb = old_ra.copy(), old_ca.copy(), old_rb.copy(), old_cb.copy()
    ra[idx], rb[idx] = old_rb[idx], old_ra[idx]
    ca[idx], cb[idx] = old_cb[idx], old_ca[idx]
    return ra, ca, rb, cb, idx


def mark_absent(rows: np.ndarray, conf: np.ndarray, cols: np.ndarray, c0: float, c1: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """No value between columns c0 and c1 (the curve is not on the paper there): NULL, confidence 0."""
    idx = span(cols, c0, c1)
    if idx.size == 0:
        raise EditError("the range spans no LAS depth; drag across a wider range")
    new_rows, new_conf = np.array(rows, dtype=np.float64), np.array(conf, dtype=np.float64)
    new_rows[idx] = np.nan
    new_conf[idx] = 0.0
    return new_rows, new_conf, idx


def reject(rows: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole curve is wrong beyond repair: every value NULL, confidence 0."""
    n = np.asarray(rows).shape[0]
    return np.full(n, np.nan), np.zeros(n), np.arange(n)


__all__ = ["EditError", "INK_LEVEL", "REVIEWED_CONF", "SNAP_RADIUS", "mark_absent", "redraw", "reject", "snap_to_ink",
           "span", "swap"]
