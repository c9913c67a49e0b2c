"""Curve tracing: per-pixel class probabilities -> one sub-pixel row per depth column per curve.

Each curve class is traced on its own probability channel (so curves keep their
identity where they cross) by a Viterbi pass over the columns. States per
column: "on the curve at row r" (r = 0..H-1) and one "absent" state.

Costs (negative log-likelihood style, smaller is better):
- emission on row r: -log(clip(m, P_FLOOR, 1)), m = probability mass of the
  class in rows r-1..r+1 (a blurred or 2-3 px wide trace still scores ~1);
- emission absent: -log(presence): "on" wins where the local mass > presence;
- moving from row r' to r between adjacent columns: jump_penalty * |r - r'|,
  or the wrapped distance when the class has a backup period (cyclic rows);
- switching between on and absent: switch_cost (each way).

The min over previous rows of V[r'] + penalty * |r - r'| is an L1 distance
transform; it is exact and vectorised over rows with two cumulative-min scans
(min over r' <= r of (V - pen*r') + pen*r, and the mirror image), so a column
step is a fixed handful of NumPy calls on (K, H) arrays whatever the jump size.
Written by hand because no NumPy/SciPy routine does a Viterbi with L1
transitions (STYLE.md practice 10).

After the DP: sub-pixel rows are probability-weighted centroids in a +-2 row
window around the path; confidence is the class mass near the path (clipped
to 1); columns with confidence < min_confidence are NaN; short NaN runs between
confident columns are bridged by linear interpolation at lower confidence;
without a wrap, adjacent rows more than `max_jump` apart are cut (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: floor on the emission probability: a column with no ink costs -log(0.01) = 4.6
P_FLOOR = 0.01
#: half-width (rows) of the centroid window for the sub-pixel estimate
CENTROID_HALF = 2
#: rows pooled per DP state (coarse-to-fine); 2 keeps a 1-px trace's neighbours apart
ROW_POOL = 2
#: default threshold below which a column is "not confident" (-> NaN)
MIN_CONFIDENCE = 0.3


@dataclass(frozen=True)
class TraceResult:
    """Traced curves, one row per class in `class_ids`.

    rows: (K, W) float64 sub-pixel canonical row per column; NaN where the curve is
        absent or not confident. For wrapped (backup) classes rows are unwrapped:
        they may lie beyond [0, H) by multiples of the period.
    confidence: (K, W) float64 in [0, 1]: class probability mass near the path
        (0 where the DP says absent; bridged columns get a reduced value).
    class_ids: the class id of each row.
    bridged: (K, W) bool, columns filled by interpolation across a short gap.
    """

    rows: np.ndarray
    confidence: np.ndarray
    class_ids: tuple[int, ...]
    bridged: np.ndarray
    height: int

    def index(self, class_id: int) -> int:
        try:
            return self.class_ids.index(class_id)
        except ValueError:
            raise KeyError(f"class_id {class_id} was not traced; traced {list(self.class_ids)}") from None


def trace_curves(
    probs: np.ndarray,
    class_ids: Sequence[int] = (1, 2),
    *,
    wrap_px: Mapping[int, float | None] | None = None,
    jump_penalty: float = 0.05,
    switch_cost: float = 6.0,
    presence: float = 0.5,
    min_confidence: float = MIN_CONFIDENCE,
    max_gap: int = 12,
    max_jump: float | None = None,
) -> TraceResult:
    """Trace each class in `class_ids` through a (C, H, W) probability map.

    probs: (C, H, W) floating probabilities (softmax output, class 0 background).
    wrap_px: class_id -> backup period in pixels (sidecar: wrap.period *
        CurveAxis.track_px), or None/absent for no wrap.
    jump_penalty: cost per pixel of row change between adjacent columns.
    switch_cost: cost of entering or leaving the absent state.
    presence: local class mass above which "on the curve" beats "absent".
    min_confidence: columns whose confidence is lower are NaN (unless bridged).
    max_gap: longest run of NaN columns (between confident ones) that is bridged.
    max_jump: row change between adjacent columns above which an unwrapped trace
        is cut (NaN); default half the image height.
    """
    probs = _check_probs(probs)
    n_classes, height, width = probs.shape
    class_ids = _check_class_ids(class_ids, n_classes)
    periods = _check_wrap(wrap_px, class_ids)
    for name, val in (("jump_penalty", jump_penalty), ("switch_cost", switch_cost)):
        if not (math.isfinite(val) and val >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {val!r}")
    if not 0 < presence < 1:
        raise ValueError(f"presence must lie in (0, 1), got {presence!r}")
    if not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence!r}")
    max_jump = 0.5 * height if max_jump is None else float(max_jump)

    k = len(class_ids)
    if k == 0:
        empty = np.zeros((0, width))
        return TraceResult(empty, empty.copy(), (), np.zeros((0, width), bool), height)

    # (K, H, W): the DP reads one (K, H) column slice per step (strided, but small)
    p = probs[list(class_ids)].astype(np.float32, copy=False)
    mass = p.copy()
    mass[:, 1:] += p[:, :-1]
    mass[:, :-1] += p[:, 1:]
    emit_on = np.maximum(mass, P_FLOOR)
    np.minimum(emit_on, 1.0, out=emit_on)
    np.log(emit_on, out=emit_on)
    np.negative(emit_on, out=emit_on)
    emit_abs = np.float32(-math.log(presence))

    # coarse-to-fine: the DP runs on rows pooled by ROW_POOL (best emission of each
    # pair); its cost is per element, so this halves it. The fine row is the better
    # row of the pair, and the centroid below restores sub-pixel accuracy.
    pad = (-height) % ROW_POOL
    if pad:
        emit_on = np.concatenate([emit_on, np.repeat(emit_on[:, -1:], pad, axis=1)], axis=1)
    coarse = emit_on.reshape(k, -1, ROW_POOL, width).min(axis=2)
    path_c, path_shift = _viterbi(
        coarse, emit_abs, periods / ROW_POOL, float(jump_penalty) * ROW_POOL, float(switch_cost)
    )
    on = path_c >= 0  # (K, W)
    cand = np.where(on, path_c, 0)[:, :, None] * ROW_POOL + np.arange(ROW_POOL)  # (K, W, pool)
    cand = np.minimum(cand, height - 1)
    cand_mass = mass[np.arange(k)[:, None, None], cand, np.arange(width)[None, :, None]]
    rr = np.take_along_axis(cand, cand_mass.argmax(axis=2)[:, :, None], axis=2)[:, :, 0]
    # sub-pixel centroid in a +-CENTROID_HALF window (clipped to the image)
    offs = np.arange(-CENTROID_HALF, CENTROID_HALF + 1)
    win = rr[:, :, None] + offs  # (K, W, 2h+1)
    inside = (win >= 0) & (win < height)
    winc = np.clip(win, 0, height - 1)
    kk = np.arange(k)[:, None, None]
    ww = np.arange(width)[None, :, None]
    pw = np.where(inside, p[kk, winc, ww], 0.0).astype(np.float64)
    tot = pw.sum(axis=2)
    centroid = np.where(tot > 0, (pw * win).sum(axis=2) / np.where(tot > 0, tot, 1.0), rr)
    conf = np.clip(mass[np.arange(k)[:, None], rr, np.arange(width)[None, :]].astype(np.float64), 0.0, 1.0)
    conf = np.where(on, conf, 0.0)

    offset = np.cumsum(path_shift * np.nan_to_num(periods)[:, None], axis=1)
    rows = np.where(on & (conf >= min_confidence), centroid + offset, np.nan)

    # cut implausible jumps (a wrapped trace is already unwrapped, so it passes)
    rows = _cut_jumps(rows, max_jump)
    rows, conf, bridged = _bridge(rows, conf, max_gap, max_jump, min_confidence)
    return TraceResult(rows, conf, tuple(class_ids), bridged, height)


# ------------------------------------------------------------------- Viterbi
def _viterbi(
    emit_on: np.ndarray, emit_abs: np.float32, periods: np.ndarray, pen: float, switch: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best state sequence. emit_on: (K, H, W) float32.

    Returns path_row (K, W) int (-1 = absent) and path_shift (K, W) int in
    {-1, 0, 1}: the wrap crossing taken into each column (unwrap offset += shift * P).
    """
    k, height, width = emit_on.shape
    r = np.arange(height)
    lam_r = (pen * r).astype(np.float32)
    lam_r_rev = np.ascontiguousarray(lam_r[::-1])
    wrapped = np.isfinite(periods)
    # wrap candidates: reach row r from the previous column's transform evaluated at
    # x = r + s*P; between integer rows the lower envelope of cones is exact from the
    # two neighbouring rows, and beyond the image it continues with slope pen
    shifts = []
    if wrapped.any():
        base = (np.arange(k) * height)[:, None]
        for s in (1, -1):
            x = r[None, :] + s * np.where(wrapped, periods, 0.0)[:, None]  # (K, H)
            i0 = np.clip(np.floor(x), 0, height - 1).astype(np.int64)
            i1 = np.clip(np.ceil(x), 0, height - 1).astype(np.int64)
            c0 = (pen * np.abs(x - i0)).astype(np.float32)
            c1 = (pen * np.abs(x - i1)).astype(np.float32)
            c0[~wrapped] = np.inf
            c1[~wrapped] = np.inf
            shifts.append((s, (i0 + base).ravel(), (i1 + base).ravel(), c0, c1))

    code_dtype = np.int16 if 3 * height < np.iinfo(np.int16).max else np.int32
    # code: prev row + (shift + 1) * H for "on", -1 = came from absent
    bp_on = np.empty((width, k, height), dtype=code_dtype)
    bp_abs = np.empty((width, k), dtype=np.int32)  # prev row, or -1 = stayed absent
    v = emit_on[:, :, 0].copy()
    a = np.full(k, emit_abs, dtype=np.float32)
    bp_on[0] = -1
    bp_abs[0] = -1
    kidx = np.arange(k)
    # scratch buffers: the loop is overhead-bound, so avoid allocations
    x1, f, x2, b = (np.empty((k, height), np.float32) for _ in range(4))
    eq = np.empty((k, height), bool)
    tmp_i, fa, ba = (np.empty((k, height), np.int64) for _ in range(3))
    use_f = np.empty((k, height), bool)
    for t in range(1, width):
        # exact L1 distance transform of v with argmin: forward and backward cumulative mins
        np.subtract(v, lam_r, out=x1)
        np.minimum.accumulate(x1, axis=1, out=f)
        np.equal(x1, f, out=eq)
        np.multiply(eq, r, out=tmp_i)
        np.maximum.accumulate(tmp_i, axis=1, out=fa)
        np.add(v[:, ::-1], lam_r_rev, out=x2)
        np.minimum.accumulate(x2, axis=1, out=b)
        np.equal(x2, b, out=eq)
        np.multiply(eq, r, out=tmp_i)
        np.maximum.accumulate(tmp_i, axis=1, out=ba)
        f += lam_r
        b_fwd = b[:, ::-1]
        b_fwd -= lam_r
        np.less_equal(f, b_fwd, out=use_f)
        dt = np.minimum(f, b_fwd)
        # shift 0 is coded as +H; the backward argmin is in reversed row coordinates
        code = np.where(use_f, fa + height, (2 * height - 1) - ba[:, ::-1])
        if shifts:
            # wrap candidates read the unshifted transform (one crossing per column at most)
            flat_dt, flat_code = dt.ravel(), code.ravel()
            for s, j0, j1, c0, c1 in shifts:
                m0 = flat_dt[j0].reshape(k, height) + c0
                m1 = flat_dt[j1].reshape(k, height) + c1
                pick0 = m0 <= m1
                m = np.where(pick0, m0, m1)
                src = np.where(pick0, flat_code[j0].reshape(k, height), flat_code[j1].reshape(k, height))
                better = m < dt
                dt = np.where(better, m, dt)
                code = np.where(better, src + s * height, code)
        enter = (a + switch)[:, None]
        from_abs = enter < dt
        np.minimum(dt, enter, out=dt)
        code[from_abs] = -1
        bp_on[t] = code
        vmin_i = v.argmin(axis=1)
        vmin = v[kidx, vmin_i] + switch
        stay = a <= vmin
        bp_abs[t] = np.where(stay, -1, vmin_i)
        a = np.minimum(a, vmin) + emit_abs
        np.add(dt, emit_on[:, :, t], out=v)

    path_row = np.empty((k, width), dtype=np.int64)
    path_shift = np.zeros((k, width), dtype=np.int64)
    for ci in range(k):
        best = int(v[ci].argmin())
        state = best if v[ci, best] < a[ci] else -1
        for t in range(width - 1, -1, -1):
            path_row[ci, t] = state
            if t == 0:
                break
            if state < 0:
                state = int(bp_abs[t, ci])
            else:
                c = int(bp_on[t, ci, state])
                if c < 0:
                    state = -1
                else:
                    path_shift[ci, t] = c // height - 1
                    state = c % height
    # shift s at column t: the step came from x = r_t + s*P near r_{t-1}, so the unwrapped
    # row is u_t = u_{t-1} + (x - r_{t-1}) = r_t + offset_{t-1} + s*P: offset grows by s*P
    return path_row, path_shift


# ------------------------------------------------------------ post-processing
def _cut_jumps(rows: np.ndarray, max_jump: float) -> np.ndarray:
    rows = rows.copy()
    d = np.abs(np.diff(rows, axis=1))
    cut = np.zeros(rows.shape, dtype=bool)
    cut[:, 1:] = d > max_jump  # NaN comparisons are False
    rows[cut] = np.nan
    return rows


def _bridge(
    rows: np.ndarray, conf: np.ndarray, max_gap: int, max_jump: float, min_confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearly interpolate NaN runs of <= max_gap columns between two valid columns."""
    rows, conf = rows.copy(), conf.copy()
    bridged = np.zeros(rows.shape, dtype=bool)
    if max_gap <= 0:
        return rows, conf, bridged
    for ci in range(rows.shape[0]):
        valid = np.flatnonzero(~np.isnan(rows[ci]))
        if valid.size < 2:
            continue
        gaps = np.diff(valid) - 1
        for g in np.flatnonzero((gaps > 0) & (gaps <= max_gap)):
            left, right = valid[g], valid[g + 1]
            r0, r1 = rows[ci, left], rows[ci, right]
            if abs(r1 - r0) > max_jump:
                continue
            cols = np.arange(left + 1, right)
            rows[ci, cols] = r0 + (r1 - r0) * (cols - left) / (right - left)
            reduced = 0.5 * min(conf[ci, left], conf[ci, right])
            conf[ci, cols] = max(min_confidence, reduced)
            bridged[ci, cols] = True
    return rows, conf, bridged


# ------------------------------------------------------------------ checking
def _check_probs(probs: np.ndarray) -> np.ndarray:
    if not isinstance(probs, np.ndarray):
        raise ValueError(f"probs must be a NumPy array, got {type(probs).__name__}")
    if probs.ndim != 3:
        raise ValueError(f"probs must have shape (C, H, W), got ndim {probs.ndim} shape {probs.shape}")
    if not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"probs must be floating-point probabilities, got dtype {probs.dtype}")
    c, h, w = probs.shape
    if c < 2:
        raise ValueError(f"probs needs at least 2 classes (background + a curve), got C={c}")
    if h < 1 or w < 1:
        raise ValueError(f"probs has no pixels: shape {probs.shape}")
    if not np.isfinite(probs).all():
        raise ValueError("probs contains NaN or infinite values")
    lo, hi = float(probs.min()), float(probs.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"probs must lie in [0, 1] (softmax output), got range [{lo:.3g}, {hi:.3g}]")
    return probs


def _check_class_ids(class_ids: Sequence[int], n_classes: int) -> tuple[int, ...]:
    out = []
    for cid in class_ids:
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)):
            raise ValueError(f"class ids must be integers, got {cid!r}")
        if not 1 <= int(cid) < n_classes:
            raise ValueError(f"class id {cid} out of range: probs has classes 0..{n_classes - 1}, 0 is background")
        out.append(int(cid))
    if len(set(out)) != len(out):
        raise ValueError(f"class ids must be unique, got {out}")
    return tuple(out)


def _check_wrap(wrap_px: Mapping[int, float | None] | None, class_ids: tuple[int, ...]) -> np.ndarray:
    periods = np.full(len(class_ids), np.nan)
    for cid, period in (wrap_px or {}).items():
        if period is None or cid not in class_ids:
            continue
        period = float(period)
        if not (math.isfinite(period) and period > 1):
            raise ValueError(f"wrap_px[{cid}] must be a period in pixels > 1, got {period!r}")
        periods[class_ids.index(cid)] = period
    return periods
