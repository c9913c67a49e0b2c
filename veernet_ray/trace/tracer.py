"""Curve tracing: per-pixel class probabilities -> one sub-pixel row per depth column per curve.

Each curve class is traced on its own probability channel (so curves keep their
identity where they cross) by a Viterbi pass over the columns. States per
column: "on the curve at candidate row r" and one "absent" state. The candidate
rows are the N_CANDIDATES strongest local maxima of the class mass m in the
column (at most one per CAND_BLOCK rows; every row when the image is that small):
a path off a local maximum only ever costs more emission for the same jumps, except
across ink-free columns, where the path is absent or not confident either way.

Costs (negative log-likelihood style, smaller is better):
- emission on row r: -log(clip(m, P_FLOOR, 1)), m = probability mass of the
  class in rows r-1..r+1 (a blurred or 2-3 px wide trace still scores ~1);
- emission absent: -log(presence): "on" wins where the local mass > presence;
- moving from row r' to r between adjacent columns: jump_penalty * |r - r'|,
  or the wrapped distance when the class has a backup period (cyclic rows);
- switching between on and absent: switch_cost (each way).

Speed: the DP is sequential over columns, with (n+1)**2 transitions per column and
class. As NumPy calls per column it was bound by call overhead (~8 us a column); it is
compiled with Numba instead (`_viterbi_states`, cached on disk after the first call of
a process), with the same arithmetic in the same order, so the paths are the ones the
NumPy version found. The candidate search is one compiled pass down each channel's rows
(`_block_peaks`) plus NumPy work on (H / CAND_BLOCK, W). uint8 probabilities are read
as they are, never converted whole.
Written by hand because no NumPy/SciPy routine does this Viterbi (STYLE.md practice 10).

After the DP: sub-pixel rows are probability-weighted centroids in a +-2 row
window around the path; confidence is the trace's contrast against its column
(best two-row mass near the path minus the column's mean two-row mass); columns with confidence < min_confidence are NaN; short NaN runs between
confident columns are bridged by linear interpolation at lower confidence;
without a wrap, adjacent rows more than `max_jump` apart are cut (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np

#: floor on the emission probability: a column with no ink costs -log(0.01) = 4.6
P_FLOOR = 0.01
#: half-width (rows) of the centroid window for the sub-pixel estimate
CENTROID_HALF = 2
#: candidate rows (local maxima) per column and class in the DP, plus one "absent" state
N_CANDIDATES = 8
SHARED_HALF = 2  # rows either side of a trace that count as the same ink
#: rows per block in the candidate search: at most one candidate per block
CAND_BLOCK = 8
#: default threshold below which a column is "not confident" (-> NaN)
MIN_CONFIDENCE = 0.3
#: default longest run of NaN columns (between confident ones) that is bridged
MAX_GAP = 12
#: a wrapped path's edge crossing is counted between on-columns at most this many apart: a broken
#: (dashed, dotted) backup curve often leaves the page in a gap (bench/RESULTS.md, "Wraps across gaps")
UNWRAP_GAP = 256
#: rows per column of a gap that a curve may move for free on coming back (`trace_curves`' gap_slack):
#: beyond it each row costs the jump penalty, so a dotted curve 2 does not hop onto curve 1's ink in its
#: gaps for the price of a switch. Chosen on the training-style and validation sets (bench/RESULTS.md,
#: "A path comes back near where it left"); inf is the rule before it (anywhere, for the switch alone)
GAP_SLACK = 0.5


@dataclass(frozen=True)
class TraceResult:
    """Traced curves, one row per class in `class_ids`.

    rows: (K, W) float64 sub-pixel canonical row per column; NaN where the curve is
        absent or not confident. For wrapped (backup) classes rows are unwrapped:
        they may lie beyond [0, H) by multiples of the period.
    confidence: (K, W) float64 in [0, 1]: contrast of the path against its column
        (0 where the DP says absent; bridged columns get a reduced value).
    class_ids: the class id of each row.
    bridged: (K, W) bool, columns filled by interpolation across a short gap.
    offset: (K, W) float64, what unwrapping added to each column's row (whole periods; 0 for a
        class without a wrap, and everywhere when None): `page` = rows - offset, the pixel rows
        the trace lies on.
    """

    rows: np.ndarray
    confidence: np.ndarray
    class_ids: tuple[int, ...]
    bridged: np.ndarray
    height: int
    offset: np.ndarray | None = None

    @property
    def page(self) -> np.ndarray:
        """(K, W) rows on the page (rows less the unwrapping offset): where to read pixels under a trace."""
        return self.rows if self.offset is None else self.rows - self.offset

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
    max_gap: int = MAX_GAP,
    max_jump: float | None = None,
    gap_slack: float | None = None,
) -> TraceResult:
    """Trace each class in `class_ids` through a (C, H, W) probability map.

    probs: (C, H, W) floating probabilities (softmax output, class 0 background), or
        uint8 quantised ones (p * 255, as the model stage ships them): read as
        float32(q) / 255 where needed, never converted whole.
    wrap_px: class_id -> backup period in pixels (sidecar: wrap.period *
        CurveAxis.track_px), or None/absent for no wrap.
    jump_penalty: cost per pixel of row change between adjacent columns.
    switch_cost: cost of entering or leaving the absent state.
    presence: local class mass above which "on the curve" beats "absent".
    min_confidence: columns whose confidence is lower are NaN (unless bridged).
    max_gap: longest run of NaN columns (between confident ones) that is bridged.
    max_jump: row change between adjacent columns above which an unwrapped trace
        is cut (NaN); default half the image height.
    gap_slack: rows a curve may move per column of a gap at no cost: coming back after a gap
        costs jump_penalty per row beyond gap_slack x the gap's length from where the path left
        (a dotted curve 2 cannot hop onto curve 1's ink in its gaps for the price of a switch);
        inf: anywhere for the switch alone; default GAP_SLACK.
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
    gap_slack = GAP_SLACK if gap_slack is None else float(gap_slack)
    if not gap_slack >= 0:
        raise ValueError(f"gap_slack must be a number >= 0 (inf: no cost), got {gap_slack!r}")
    args = (jump_penalty, switch_cost, presence, min_confidence, max_gap, max_jump, gap_slack)
    if not class_ids:
        empty = np.zeros((0, width))
        return TraceResult(empty, empty.copy(), (), np.zeros((0, width), bool), height)
    chans = [_Channel.of(probs[cid]) for cid in class_ids]
    result = _trace(chans, class_ids, periods, *args)
    return _resolve_shared_ink(result, probs, chans, class_ids, periods, args)


def _resolve_shared_ink(result: "TraceResult", probs: np.ndarray, chans: list["_Channel"],
                        class_ids: tuple[int, ...], periods: np.ndarray, args: tuple) -> "TraceResult":
    """Keep two traces from following the same ink.

    Each class is traced on its own channel, so when a weak model puts some
    curve-2 probability on curve 1's ink (more than on curve 2's own, fainter,
    dashed ink), both traces ride the same line. Ink belongs to one curve
    (docs/contracts.md section 1: where curves cross, the top curve owns the pixel), so where two
    traces share rows for longer than a crossing (> `max_gap` columns), the
    trace with the lower probability there loses that ink: it is retraced with
    those rows (+-SHARED_HALF) removed from its channel, and finds its own curve
    or goes absent (NaN, flagged by QC). Short overlaps, i.e. real crossings,
    are left alone.
    """
    max_gap, height = args[4], result.height
    page = result.page
    for a in range(len(class_ids)):
        for b in range(a + 1, len(class_ids)):
            ra, rb = result.rows[a], result.rows[b]
            near = np.isfinite(ra) & np.isfinite(rb) & (np.abs(ra - rb) <= SHARED_HALF)
            shared = long_runs(near, max_gap + 1)
            if not shared.any():
                continue
            cols = np.flatnonzero(shared)
            ria = np.clip(np.round(page[a][cols]).astype(np.int64), 0, height - 1)
            pa = as_probability(probs[class_ids[a], ria, cols]).mean()
            pb = as_probability(probs[class_ids[b], ria, cols]).mean()
            loser = b if pa >= pb else a
            owner_rows = np.round(page[a if loser == b else b][cols]).astype(np.int64)
            patched = chans[loser].without(cols, owner_rows)
            redo = _trace([patched], (class_ids[loser],), periods[[loser]], *args)  # only the loser, patched
            rows_new, conf_new, bridged_new = result.rows.copy(), result.confidence.copy(), result.bridged.copy()
            off_new = result.offset.copy()
            rows_new[loser], conf_new[loser], bridged_new[loser] = redo.rows[0], redo.confidence[0], redo.bridged[0]
            off_new[loser] = redo.offset[0]
            result = TraceResult(rows_new, conf_new, result.class_ids, bridged_new, height, off_new)
            page = result.page
    return result


def long_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    """The True runs of a 1-D `mask` that are at least `min_len` long."""
    out = np.zeros_like(mask)
    if not mask.any():
        return out
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for s0, e0 in zip(starts, ends):
        if e0 - s0 >= min_len:
            out[s0:e0] = True
    return out


@dataclass(frozen=True)
class _Channel:
    """One class channel as the DP reads it: the (H, W) map, its candidates and column means.

    `zeroed` = (cols, centres): in those columns the rows centre +- SHARED_HALF read as 0.
    The shared-ink retrace removes the other trace's ink that way, kept beside the map
    instead of in a patched copy of it, so only the patched columns are searched again
    (the candidates, the column means and the values are all per column).
    """

    x: np.ndarray  # (H, W) float32 probabilities, or uint8 quantised ones (p * 255)
    rows: np.ndarray  # (W, n) int64 candidate rows
    mass: np.ndarray  # (W, n) float32 3-row mass there
    col_mean: np.ndarray  # (W,) float64
    zeroed: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def of(cls, chan: np.ndarray) -> "_Channel":
        # a slice of float32 or uint8 probs is read in place
        x = np.ascontiguousarray(chan if chan.dtype == np.uint8 else chan.astype(np.float32, copy=False))
        rows, mass = _candidates(x, N_CANDIDATES)
        return cls(x, rows, mass, _col_mean(x, _scale(x)))

    def without(self, cols: np.ndarray, centres: np.ndarray) -> "_Channel":
        """This channel with rows centres +- SHARED_HALF of columns `cols` set to 0."""
        h = self.x.shape[0]
        sub = self.x[:, cols]  # a (H, len(cols)) copy
        for d in range(-SHARED_HALF, SHARED_HALF + 1):
            sub[(centres + d) % h, np.arange(cols.size)] = 0.0
        rows, mass, col_mean = self.rows.copy(), self.mass.copy(), self.col_mean.copy()
        rows[cols], mass[cols] = _candidates(sub, N_CANDIDATES)
        col_mean[cols] = _col_mean(sub, _scale(sub))
        return _Channel(self.x, rows, mass, col_mean, (cols, centres))

    def values(self, win: np.ndarray) -> np.ndarray:
        """x[win[c, j], c] for (W, m) rows `win`, patched rows reading 0."""
        v = as_probability(self.x[win, np.arange(win.shape[0])[:, None]])
        if self.zeroed is not None:
            cols, centres = self.zeroed
            h = self.x.shape[0]
            off = (win[cols] - centres[:, None]) % h
            v[cols] = np.where((off <= SHARED_HALF) | (off >= h - SHARED_HALF), 0.0, v[cols])
        return v


def _trace(chans: list[_Channel], class_ids: tuple[int, ...], periods: np.ndarray, jump_penalty: float,
           switch_cost: float, presence: float, min_confidence: float, max_gap: int, max_jump: float,
           gap_slack: float = math.inf) -> "TraceResult":
    """One independent trace per class (the body of `trace_curves`, inputs already checked)."""
    k = len(class_ids)
    height, width = chans[0].x.shape
    cand = np.stack([c.rows for c in chans])  # (K, W, n) int64
    cmass = np.stack([c.mass for c in chans]).astype(np.float64)  # (K, W, n)
    emit_on = -np.log(np.clip(cmass, P_FLOOR, 1.0))
    emit_abs = -math.log(presence)
    state, path_shift = _viterbi(cand, emit_on, emit_abs, periods, float(jump_penalty), float(switch_cost),
                                 float(gap_slack))
    n = cand.shape[2]
    on = state < n  # (K, W); state n = absent
    pick = np.minimum(state, n - 1)[:, :, None]
    rr = np.take_along_axis(cand, pick, axis=2)[:, :, 0]  # (K, W) fine row on the path

    # sub-pixel centroid in a +-CENTROID_HALF window (clipped to the image)
    offs = np.arange(-CENTROID_HALF, CENTROID_HALF + 1)
    win = rr[:, :, None] + offs  # (K, W, 2h+1)
    inside = (win >= 0) & (win < height)
    winc = np.clip(win, 0, height - 1)
    pw = np.stack([np.where(inside[ci], chans[ci].values(winc[ci]), 0.0) for ci in range(k)]).astype(np.float64)
    tot = pw.sum(axis=2)
    centroid = np.where(tot > 0, (pw * win).sum(axis=2) / np.where(tot > 0, tot, 1.0), rr)
    # confidence = contrast of the trace against its column: the best two adjacent rows'
    # probability mass near the path (a sub-pixel line splits its ink over two rows)
    # minus what any two rows of that column hold on average. A sharp trace on clean
    # background scores ~1; a lukewarm map (an untrained or confused model, ~0.33
    # everywhere) scores ~0, so QC flags it instead of reading the mass as certainty.
    pair = (pw[:, :, :-1] + pw[:, :, 1:]).max(axis=2) if pw.shape[2] > 1 else pw[:, :, 0]
    col_mean = np.stack([c.col_mean for c in chans])  # (K, W)
    conf = np.where(on, np.clip(pair - 2.0 * col_mean, 0.0, 1.0), 0.0)

    offset = np.cumsum(path_shift * np.nan_to_num(periods)[:, None], axis=1)
    keep = on & (conf >= min_confidence)
    # the path's first column fixes no cycle: a backup curve lies on its own scale (offset 0)
    # most of the depth and beyond it only on excursions, so the cycle held longest is cycle 0;
    # a backup scale is drawn once, so a path more than one period away has lost count: on scale
    for ki in np.flatnonzero(np.isfinite(periods)):
        if keep[ki].any():
            cycles, counts = np.unique(offset[ki][keep[ki]], return_counts=True)
            offset[ki] -= cycles[np.argmax(counts)]
            offset[ki][np.abs(offset[ki]) > 1.5 * periods[ki]] = 0.0
    rows = np.where(keep, centroid + offset, np.nan)

    # cut implausible jumps (a wrapped trace is already unwrapped, so it passes)
    rows = _cut_jumps(rows, max_jump)
    rows, conf, bridged = _bridge(rows, conf, max_gap, max_jump, min_confidence)
    return TraceResult(rows, conf, tuple(class_ids), bridged, height, offset)


# ---------------------------------------------------------------- candidates
def _candidates(x: np.ndarray, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate rows of one class channel. x: (H, W) float32, or uint8 (p * 255).

    Returns rows (W, n) int64 and the 3-row mass m[r] = x[r-1] + x[r] + x[r+1] there
    (W, n) float32, n = min(n_max, number of row blocks). Candidates are local maxima of
    the mass (m[r] >= m[r-1] and m[r] > m[r+1]: one row per plateau): the best one in
    each block of CAND_BLOCK rows (`_block_peaks`), then the n blocks with the largest.
    A column with fewer maxima than n fills up with arbitrary rows (harmless: they only
    offer the DP more states at the P_FLOOR cost).
    """
    h, w = x.shape
    block = max(1, min(CAND_BLOCK, h // (2 * n_max)))
    nb = -(-h // block)
    # sort keys: non-negative float32 bits order like the floats, so the low mantissa
    # bits can carry the row within the block (and below, the block): one int32 max per
    # block and one partition per column then give both the value order and the row
    rbits = (block - 1).bit_length()
    bbits = max(1, (nb - 1).bit_length())
    peak = _block_peaks(np.ascontiguousarray(x), _scale(x), block, nb, rbits)  # (nb, W)
    low = np.int32((1 << (rbits + bbits)) - 1)
    peak = (peak & ~low) | (peak & np.int32((1 << rbits) - 1)) | (np.arange(nb, dtype=np.int32) << rbits)[:, None]
    n = min(n_max, nb)
    peak = np.ascontiguousarray(peak.T)  # (W, nb)
    top = np.partition(peak, nb - n, axis=1)[:, nb - n :] if n < nb else peak
    top &= low
    rows = (top >> rbits) * block + (top & np.int32((1 << rbits) - 1))  # (W, n)
    cols = np.arange(w)[:, None]
    rows = np.minimum(rows, h - 1).astype(np.int64)  # a pad row only wins an all-zero block
    # the mass there, added in the order `_block_peaks` added it (0 beyond the edges)
    up = np.where(rows > 0, as_probability(x[np.maximum(rows - 1, 0), cols]), np.float32(0))
    down = np.where(rows < h - 1, as_probability(x[np.minimum(rows + 1, h - 1), cols]), np.float32(0))
    return rows, (up + as_probability(x[rows, cols])) + down


def as_probability(values: np.ndarray) -> np.ndarray:
    """uint8 quantised probabilities (p * 255, as the model stage ships them) as float32 p;
    floating values as they are. float32(q) / 255 is the division the kernels below do too."""
    if values.dtype == np.uint8:
        return np.divide(values, np.float32(255.0), dtype=np.float32)
    return values


def _scale(x: np.ndarray) -> np.float32:
    return np.float32(255.0 if x.dtype == np.uint8 else 1.0)


@numba.njit(cache=True, nogil=True)
def _block_peaks(x, scale, block, nb, rbits):  # pragma: no cover - compiled
    """(nb, W) int32: per block of `block` rows and column, the largest sort key of its rows.

    A row's key is the float32 bits of its 3-row mass where the mass is a local maximum
    down the column (else 0), with the low `rbits` bits replaced by the row within the
    block; rows past H (padding of the last block) count with mass 0. x is read as
    float32(x) / scale (255 for uint8 probabilities, 1 for float32). One pass down the
    rows with a rolling three-row window: the (H, W) mass, comparison and key arrays
    NumPy needed cost more in fresh pages than in arithmetic.
    """
    h, w = x.shape
    keep = np.int32(~((1 << rbits) - 1))
    peak = np.zeros((nb, w), np.int32)
    # probabilities of rows r-1, r, r+1, r+2 (0 beyond the edges: (0 + a) + b == a + b exactly)
    p0, p1, p2, p3 = np.zeros(w, np.float32), np.zeros(w, np.float32), np.zeros(w, np.float32), np.zeros(w, np.float32)
    _prob_row(x, scale, 0, p1)
    _prob_row(x, scale, 1, p2)
    below = np.full(w, -np.inf, np.float32)  # the mass "above row 0" and "below row H-1": never >= a mass
    prev, cur, nxt = below.copy(), np.empty(w, np.float32), np.empty(w, np.float32)
    for c in range(w):
        cur[c] = (p0[c] + p1[c]) + p2[c]
    score = np.zeros(w, np.float32)
    bits = score.view(np.int32)
    zero = np.float32(0.0)
    for r in range(h):
        if r + 1 < h:
            _prob_row(x, scale, r + 2, p3)
            for c in range(w):
                nxt[c] = (p1[c] + p2[c]) + p3[c]
        else:
            nxt[:] = below
        for c in range(w):  # a local maximum down the column keeps its mass, else 0
            m = cur[c]
            score[c] = m if (m >= prev[c]) & (m > nxt[c]) else zero
        b = r // block
        sub = np.int32(r % block)
        for c in range(w):
            peak[b, c] = max(peak[b, c], (bits[c] & keep) | sub)
        prev, cur, nxt = cur, nxt, prev
        p0, p1, p2, p3 = p1, p2, p3, p0
    for r in range(h, nb * block):
        b = r // block
        sub = np.int32(r % block)
        for c in range(w):
            peak[b, c] = max(peak[b, c], sub)
    return peak


@numba.njit(cache=True, nogil=True)
def _prob_row(x, scale, r, out):  # pragma: no cover - compiled
    """out[:] = float32(x[r]) / scale, or 0 for a row beyond the edges."""
    h, w = x.shape
    if r >= h:
        out[:] = 0.0
        return
    for c in range(w):
        out[c] = np.float32(x[r, c]) / scale


@numba.njit(cache=True, nogil=True)
def _col_mean(x, scale):  # pragma: no cover - compiled
    """(W,) float64 mean down each column of float32(x) / scale, summed row by row as
    NumPy's `mean(axis=0, dtype=float64)` sums a C-ordered array."""
    h, w = x.shape
    acc = np.zeros(w)
    for r in range(h):
        for c in range(w):
            acc[c] += np.float64(np.float32(x[r, c]) / scale)
    return acc / h


# ------------------------------------------------------------------- Viterbi
def _viterbi(
    cand: np.ndarray, emit_on: np.ndarray, emit_abs: float, periods: np.ndarray, pen: float, switch: float,
    gap_slack: float = math.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Best state sequence over candidate rows. cand: (K, W, n) rows; emit_on: (K, W, n).

    States per column: the n candidates and "absent" (index n). The forward pass and the
    backtrack run in `_viterbi_states`, compiled; the wrap crossing each step took is then
    recovered here for the wrapped classes.

    Returns state (K, W) int (n = absent) and path_shift (K, W) int in {-1, 0, 1}: the
    wrap crossing taken into each column (unwrap offset += shift * P), from the path's last
    on-column when that is at most UNWRAP_GAP columns back (so across gaps too: a broken pen
    often leaves the page between two strokes); after a longer gap, none.
    """
    k, width, n = cand.shape
    cand = np.ascontiguousarray(cand, dtype=np.int64)
    state = _viterbi_states(cand, np.ascontiguousarray(emit_on, dtype=np.float64), float(emit_abs),
                            np.ascontiguousarray(periods, dtype=np.float64), float(pen), float(switch),
                            float(gap_slack))
    path_shift = np.zeros((k, width), np.int64)
    for ci in np.flatnonzero(np.isfinite(periods)):
        # the wrap crossing of each step between on-columns: argmin over s of |r_t + sP - r_prev|,
        # ties to 0 then +1 (the order the DP minimised its jump costs in)
        on_cols = np.flatnonzero(state[ci] < n)
        r = cand[ci, np.arange(width), np.minimum(state[ci], n - 1)].astype(np.float64)
        prev = on_cols[:-1]
        tt = on_cols[1:]
        near = (tt - prev) <= UNWRAP_GAP
        tt, prev = tt[near], prev[near]
        d = r[tt] - r[prev]
        opts = np.abs(d[:, None] + np.array([0.0, 1.0, -1.0]) * periods[ci])
        path_shift[ci, tt] = np.array([0, 1, -1])[opts.argmin(axis=1)]
    return state, path_shift


@numba.njit(cache=True, nogil=True, inline="always")
def _row_distance(d, period, wrapped):  # pragma: no cover - compiled
    """|d| rows, or the shorter way round a wrapped class's period."""
    a = abs(d)
    if wrapped:
        a = min(a, abs(d + period))
        a = min(a, abs(d - period))
    return a


@numba.njit(cache=True, nogil=True)
def _viterbi_states(cand, emit_on, emit_abs, periods, pen, switch, slack):  # pragma: no cover - compiled
    """The DP itself, per class: (K, W) best states (n = absent).

    Column t's cost of reaching candidate j from candidate i is pen * |r_j - r_i| (the
    shorter way round a wrapped class's period) + emit_on[t, j]; entering or leaving
    "absent" costs `switch`, being absent `emit_abs`. The absent state remembers the row its
    best path left from and for how many columns it has been absent (g): coming back at r_j
    costs pen * max(0, |r_j - left| - slack * g) more (nothing when it never was on; slack inf:
    nothing ever). With a finite slack the memory is the best absent path's alone, so the path is
    the best one under that approximation, not over every sequence. Ties go to the lowest source state.
    A loop over columns that no NumPy or SciPy routine does (STYLE.md practice 10): as
    NumPy calls it cost ~8 us per column in call overhead alone, compiled ~0.2 us.
    """
    k, width, n = cand.shape
    s = n + 1
    state = np.empty((k, width), np.int64)
    back = np.zeros((width, s), np.uint8)
    v = np.empty(s)
    nxt = np.empty(s)
    gated = np.isfinite(slack)
    for ci in range(k):
        period = periods[ci]
        wrapped = np.isfinite(period)
        for j in range(n):
            v[j] = emit_on[ci, 0, j]
        v[n] = emit_abs
        left = np.nan  # the row the absent state's best path left from (NaN: never on)
        gap = 0
        for t in range(1, width):
            for j in range(n):
                e = emit_on[ci, t, j]
                rj = float(cand[ci, t, j])
                best = np.inf
                arg = 0
                for i in range(n):
                    a = _row_distance(rj - float(cand[ci, t - 1, i]), period, wrapped)
                    val = v[i] + (a * pen + e)
                    if val < best:
                        best = val
                        arg = i
                back_cost = 0.0
                if gated and np.isfinite(left):
                    back_cost = pen * max(0.0, _row_distance(rj - left, period, wrapped) - slack * gap)
                val = v[n] + (switch + e + back_cost)
                if val < best:
                    best = val
                    arg = n
                nxt[j] = best
                back[t, j] = arg
            best = np.inf
            arg = 0
            leave = switch + emit_abs
            for i in range(n):
                val = v[i] + leave
                if val < best:
                    best = val
                    arg = i
            val = v[n] + emit_abs
            if val < best:
                best = val
                arg = n
            nxt[n] = best
            back[t, n] = arg
            if arg == n:
                gap += 1
            else:
                left = float(cand[ci, t - 1, arg])
                gap = 1
            v, nxt = nxt, v
        st = 0
        for j in range(1, n):
            if v[j] < v[st]:
                st = j
        if not v[st] < v[n]:
            st = n
        for t in range(width - 1, 0, -1):
            state[ci, t] = st
            st = back[t, st]
        state[ci, 0] = st
    return state


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
    if probs.dtype != np.uint8 and not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"probs must be floating-point probabilities (or uint8 p * 255), got dtype {probs.dtype}")
    c, h, w = probs.shape
    if c < 2:
        raise ValueError(f"probs needs at least 2 classes (background + a curve), got C={c}")
    if h < 1 or w < 1:
        raise ValueError(f"probs has no pixels: shape {probs.shape}")
    if probs.dtype == np.uint8:  # quantised p * 255: in range by construction
        return probs
    lo, hi = float(probs.min()), float(probs.max())  # min/max propagate NaN: no isfinite pass
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("probs contains NaN or infinite values")
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
