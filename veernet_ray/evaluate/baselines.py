"""Classical tracers: the floor a learned model must beat.

Two tracers that need no training, run on the scan's own pixels:

- `darkest_rows` (the 20-line heuristic): remove each row's and each column's
  median grey level (long grid lines and paper tone go), then per column the
  darkest row is one curve and the darkest row at least `min_sep` rows away the
  other.
- `viterbi_ink` (a stand-in for the open classical digitiser's tracer): an ink
  map with long dark rows and columns damped (grid lines), traced by the
  project's own Viterbi tracer (`trace.trace_curves`, jump penalty and all);
  the path's ink is erased and the map traced again for the second curve.

Neither knows which curve is which. `assign_identity` gives each the
better of the two pairings against the truth: an oracle the model does not
get, so the comparison flatters the baselines, never the model.
"""

from __future__ import annotations

import numpy as np

#: rows either side of the first trace erased before the second is traced
ERASE_HALF = 3


def darkest_rows(image: np.ndarray, min_sep: int = 6) -> np.ndarray:
    """(2, W) rows of the darkest and the second darkest (>= min_sep rows away) pixel per column."""
    x = image.astype(np.float32)
    x = x - np.median(x, axis=1, keepdims=True)
    x = x - np.median(x, axis=0, keepdims=True)
    r1 = np.argmin(x, axis=0)
    rows = np.arange(x.shape[0])[:, None]
    x2 = np.where(np.abs(rows - r1[None, :]) < min_sep, np.inf, x)
    r2 = np.argmin(x2, axis=0)
    return np.stack([r1, r2]).astype(np.float64)


def viterbi_ink(image: np.ndarray, wrap_px: dict[int, float | None] | None = None) -> np.ndarray:
    """(2, W) rows (NaN where absent) of two curves traced on the grid-suppressed ink map."""
    from veernet_ray.trace.decode import trace_twice, wrap_period
    from veernet_ray.trace.ink import grid_suppressed

    period = wrap_period(wrap_px)
    first, second = trace_twice(grid_suppressed(image), period, ERASE_HALF)
    return np.stack([first.rows[0], second.rows[0]])


def assign_identity(rows: np.ndarray, truth_rows: np.ndarray) -> np.ndarray:
    """Order two identity-free traces (2, W) as the truth's (2, W): the pairing with the smaller error."""
    def err(a: np.ndarray, b: np.ndarray) -> float:
        ok = np.isfinite(a) & np.isfinite(b)
        return float(np.mean(np.abs(a[ok] - b[ok]))) if ok.any() else np.inf

    straight = err(rows[0], truth_rows[0]) + err(rows[1], truth_rows[1])
    swapped = err(rows[1], truth_rows[0]) + err(rows[0], truth_rows[1])
    return rows if straight <= swapped else rows[::-1].copy()


#: registry: name -> (tracer(image, wrap_px) -> (2, W) rows, one-line description)
BASELINES = {
    "darkest-row": (lambda image, wrap_px=None: darkest_rows(image), "darkest row per column after row/column medians"),
    "viterbi-ink": (viterbi_ink, "Viterbi on a grid-suppressed ink map, erase, trace again"),
}
