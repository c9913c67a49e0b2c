"""Decoders: from the model's (C, H, W) probabilities to one row per column per curve.

*Where* the curves are and *which* is which are separate questions, and the
decoders differ in how they answer the second:

- ``per-class`` (`trace_curves`): each curve class is traced on its own channel.
  It needs the model to separate the classes well: where it puts a dashed backup
  curve's ink in the wrong class, or nowhere, that curve is lost.
- ``ink-identity`` (and ``-global``): the model's curve ink (the curve classes
  summed) is traced twice, the strongest path first, then again with that path's
  stroke erased, as a classical digitiser does on raw ink, but on an ink map the
  model has already cleaned of grid lines, text and noise; the model's class
  channels along each path then decide which is which (per stretch of columns,
  or once per scan).
- ``ink-stroke``: the same two paths; the more solid one is curve 1. Curve 1
  is drawn solid and curve 2 broken or thinner (docs/contracts.md section 1): a
  cue that holds for pen patterns the model never saw, where its class channels
  do not. Paths that trade curves far from a crossing are swapped back (`untangle`).
- ``ink-stroke-closed``: ``ink-stroke`` without `untangle`, with a stiffer
  tracer (`INK_TRACER`: dearer jumps and dearer leaving), and a pass that covers
  little of the depth (a dotted or short-dash pen, whose gaps cost the tracer
  more than leaving it does) traced again over its gaps closed, then put back on
  its ink (`trace_sparse`).
- ``ink-classes-closed``: the same two paths; the pen
  and the model's classes vote once per scan on which is curve 1, and then each
  stretch between the paths' meetings goes to the curve its classes say
  (`identity_swaps`): a pass that turned onto the other curve at a crossing is
  handed back. Chosen once the model's classes had become the better cue on
  training styles (bench/RESULTS.md, "Curve identity from the classes again").
- ``ink-classes-jumps`` (the default, `decode`): ``ink-classes-closed`` whose
  stretches also end where a path jumps (`jump_columns`): the first pass may
  leave one curve for the other across a gap without meeting it, and the second
  pass then takes the rest of both, so the paths trade curves far apart
  (bench/RESULTS.md, "Curve identity at the paths' jumps").
- ``ink-classes-second``: ``ink-classes-jumps`` whose second pass runs on the
  erased ink times the share of the class the first path is not
  (`other_class_ink`): what the first pass left of its own curve weighs less than
  the other curve's sparse ink. Fewer curves below R^2 0.8 on the choosing sets,
  but only by tracing less of curve 2 (coverage 0.76 to 0.69 on training styles):
  not the default (bench/RESULTS.md, "The second pass looks for the other class").

`DECODERS` names them for `bench/decoders.py`, which chose the default on
training styles (never on the held-out set; see bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import numba
import numpy as np

from veernet_ray.trace.tracer import TraceResult, trace_curves

#: rows either side of the first path removed from the ink map before the second pass
ERASE_HALF = 4
#: columns over which the identity evidence is averaged before a stretch is swapped
IDENTITY_WINDOW = 301
#: line darkness (row or column median of the scan's ink) at which curve probability is zeroed
LINE_LEVEL = 0.35


def damp_lines(probs: np.ndarray, image: np.ndarray | None) -> np.ndarray:
    """Curve probabilities scaled down on long straight dark lines of the scan itself.

    A grid line, a track border or a heavy division is dark along a whole row (or
    column); a curve crosses any row in a few columns. The row median of the
    scan's ink over 256-column windows (`trace.ink.row_median`), and each
    column's median down its rows, measure that; curve classes are scaled by
    1 - line / LINE_LEVEL (clipped), so a model that mistakes a border for a
    curve cannot make the tracer ride it. A curve that runs along a grid line
    loses those columns (bridged when short, flagged by QC when long).
    """
    if image is None:
        return probs
    from veernet_ray.trace.ink import darkness, row_median

    ink = darkness(image)
    line = np.maximum(row_median(ink), np.median(ink, axis=0, keepdims=True))
    keep = np.clip(1.0 - line / LINE_LEVEL, 0.0, 1.0).astype(np.float32)
    out = np.array(probs, dtype=np.float32, copy=True)
    out[1:] *= keep[None]
    out[0] = np.clip(1.0 - out[1:].sum(axis=0), 0.0, 1.0)
    return out


def wrap_period(wrap_px: Mapping[int, float | None] | None) -> float | None:
    """The backup period (px) the identity-free ink decoders trace both paths with: the first one
    declared, or None. They trace before they know which path is which class."""
    return next((float(p) for p in (wrap_px or {}).values() if p), None)


def trace_twice(ink: np.ndarray, period: float | None, erase_half: int, close: int = 0,
                second_ink=None, **kwargs) -> tuple[TraceResult, TraceResult]:
    """Two identity-free paths through an (H, W) ink map: the strongest one, then the strongest once
    that path's stroke is erased. A classical digitiser's way, shared by the ink decoders and the
    `viterbi-ink` baseline. kwargs go to `trace_curves`.

    ink: float in [0, 1], or uint8 (ink * 255). Erased: +-erase_half rows about the path, and beyond
    them the rest of the stroke, as long as it stays inked without a break (`erase_stroke`): a bold
    pen (up to 6 px, more where it runs steeply) otherwise leaves its edges for the second pass to
    ride instead of the fainter curve. close: the second pass runs on the erased ink with its gaps
    closed over that many columns (`close_gaps`; 0: not). second_ink(erased, first page rows) -> the
    map the second pass runs on (default: the erased ink itself).
    """
    first = trace_ink(ink, period, **kwargs)
    erased = erase_path(ink, first.page[0], erase_half)
    if second_ink is not None:
        erased = second_ink(erased, first.page[0])
    return first, trace_sparse(erased, period, close, **kwargs)


#: `other_class_ink`: ink (of 1) that counts as left for the second pass, and the share of the other class
#: (99th percentile on that ink) below which the model gives no cue and the ink is left as it is
SECOND_INKED = 0.25
SECOND_FLOOR = 0.02


def other_class_ink(probs: np.ndarray, window: int):
    """A `trace_twice` second_ink: the erased ink scaled, pixel by pixel, by p_other / (p1 + p2), where
    "other" is the class the first path is not: the class the model sees less of along it
    (`class_evidence`), column by column over `window` columns. The share is taken relative to its
    99th percentile on the ink left; below SECOND_FLOOR, not at all. What the first pass leaves of
    its own curve (a bold pen's edges, a stretch it skipped) then weighs less than the other curve's
    sparse ink (bench/RESULTS.md, "The second pass looks for the other class")."""
    def second(erased: np.ndarray, page: np.ndarray) -> np.ndarray:
        ev = class_evidence(probs, page[None, :])[0]
        if not np.isfinite(ev).any():
            return erased
        p1, p2 = probs[1].astype(np.float32), probs[2].astype(np.float32)
        total = np.maximum(p1 + p2, 1.0 if probs.dtype == np.uint8 else 1e-6)
        # the first path's class column by column, from its evidence nearby
        k = np.ones(min(window, ev.size))
        num = np.convolve(np.nan_to_num(ev), k, mode="same")
        den = np.convolve(np.isfinite(ev).astype(np.float64), k, mode="same")
        first_is_1 = np.where(den > 0, num / np.maximum(den, 1.0), np.nanmean(ev)) >= 0
        share = np.where(first_is_1[None, :], p2, p1) / total
        # relative to the most the other class gets on the scan's remaining ink: where the model calls
        # every pen one class (a pattern it never saw), the ink keeps its shape instead of fading away
        inked = erased >= SECOND_INKED * (255 if erased.dtype == np.uint8 else 1.0)
        top = float(np.percentile(share[inked], 99)) if inked.any() else 0.0
        if top < SECOND_FLOOR:  # the model sees none of the other class: no cue, the ink as it is
            return erased
        out = erased.astype(np.float32) * np.clip(share / top, 0.0, 1.0)
        return np.round(out).astype(np.uint8) if erased.dtype == np.uint8 else out
    return second


#: columns across which the default decoder closes a sparse pass's gaps (`trace_sparse`): chosen on
#: training styles among 5, 9 and 15 (bench/decoders.py; bench/RESULTS.md, "Dotted pens")
CLOSE_COLUMNS = 9
#: the tracer's costs for the default decoder's ink passes (`trace_curves`' defaults are 0.05 and 6): a
#: pass then leaves a curve that fades for a stretch less readily for the other curve's ink or for
#: nothing; chosen on training styles (bench/RESULTS.md, "Dotted pens")
INK_TRACER = {"jump_penalty": 0.13, "switch_cost": 15.0}
#: a pass covering less than this share of the columns is traced again over closed gaps (`trace_sparse`):
#: 0.8 for stage 7 and `ink-classes-closed` (was 0.6; chosen on training styles among 0.6, 0.8 and always,
#: bench/RESULTS.md "Curve identity from the classes again")
CLOSE_BELOW = 0.8
#: rows either side of a path traced over closed gaps searched for the ink it stands for
SNAP_ROWS = 3


def trace_sparse(ink: np.ndarray, period: float | None, close: int, **kwargs) -> TraceResult:
    """The strongest path through (H, W) `ink`; where that covers less than CLOSE_BELOW of the columns
    and `close` > 1, the path through the ink with its gaps closed over `close` columns
    (`close_gaps`), put back on the ink itself (`snap_to_ink`), if that covers more.

    On the bare map a dotted or short-dash pen's gaps cost the tracer more than leaving the curve
    does, so such a curve comes out absent or in scraps; a curve the bare map traces whole keeps
    its trace."""
    plain = trace_ink(ink, period, **kwargs)
    if close <= 1 or np.isfinite(plain.rows[0]).mean() >= CLOSE_BELOW:
        return plain
    from veernet_ray.trace.tracer import MAX_GAP, MIN_CONFIDENCE

    closed = snap_to_ink(trace_ink(close_gaps(ink, close), period, **kwargs), ink,
                         max_gap=max(close, kwargs.get("max_gap", MAX_GAP)), max_jump=kwargs.get("max_jump"),
                         min_confidence=kwargs.get("min_confidence", MIN_CONFIDENCE))
    return closed if np.isfinite(closed.rows[0]).sum() > np.isfinite(plain.rows[0]).sum() else plain


def snap_to_ink(res: TraceResult, ink: np.ndarray, max_gap: int, max_jump: float | None = None,
                min_confidence: float | None = None) -> TraceResult:
    """A one-path `res` moved onto the ink of (H, W) `ink` (uint8 ink * 255, or float in [0, 1]): in each
    column, the centroid of the inked rows (>= 128 of 255) within SNAP_ROWS of the path, NaN where there
    are none; gaps of up to `max_gap` columns then bridged as the tracer bridges (`max_jump` and
    `min_confidence` as `trace_curves` takes them; None: its defaults)."""
    from veernet_ray.trace.tracer import MIN_CONFIDENCE, _bridge

    h, w = ink.shape
    page, rows, conf = res.page[0], res.rows[0], res.confidence[0]
    cols = np.flatnonzero(np.isfinite(page))
    base = np.clip(np.round(page[cols]).astype(np.int64), 0, h - 1)
    win = np.clip(base[:, None] + np.arange(-SNAP_ROWS, SNAP_ROWS + 1)[None, :], 0, h - 1)
    v = ink[win, cols[:, None]].astype(np.float64)
    weight = np.where(v >= (128 if ink.dtype == np.uint8 else 128 / 255), v, 0.0)
    on = weight.sum(axis=1) > 0
    centre = (weight * win).sum(axis=1) / np.where(on, weight.sum(axis=1), 1.0)
    new = np.full(w, np.nan)
    new[cols[on]] = centre[on] + (rows[cols[on]] - page[cols[on]])  # the unwrapping offset kept
    new_conf = np.where(np.isfinite(new), conf, 0.0)
    out, out_conf, bridged = _bridge(new[None], new_conf[None], max_gap, 0.5 * h if max_jump is None else float(max_jump),
                                     MIN_CONFIDENCE if min_confidence is None else min_confidence)
    return TraceResult(out, out_conf, res.class_ids, bridged, h, res.offset)


def close_gaps(ink: np.ndarray, columns: int) -> np.ndarray:
    """(H, W) `ink` with each pixel the most ink within `columns` columns centred on it (a running max
    along depth; 0 or 1: unchanged). A dotted or short-dash pen then reads as a band the tracer can
    stay on: on the bare map its gaps cost more than leaving the curve does."""
    if columns <= 1:
        return ink
    from scipy.ndimage import maximum_filter1d

    return maximum_filter1d(ink, int(columns), axis=1, mode="constant", cval=0)


def trace_ink(ink: np.ndarray, period: float | None = None, **kwargs) -> TraceResult:
    """The strongest path through an (H, W) ink map (float in [0, 1], or uint8 ink * 255), with the
    backup `period` (px) or none. kwargs go to `trace_curves`."""
    full = 255 if ink.dtype == np.uint8 else 1.0
    two = np.stack([full - ink, ink])
    return trace_curves(two if ink.dtype == np.uint8 else two.astype(np.float32), (1,),
                        wrap_px={1: period} if period else None, **kwargs)


def erase_path(ink: np.ndarray, page: np.ndarray, erase_half: int) -> np.ndarray:
    """A copy of (H, W) `ink` (uint8 or float in [0, 1]) with a path's stroke erased: +-erase_half rows
    about its page rows `page` (W,; NaN where absent), and the rest of the stroke (`erase_stroke`)."""
    h = ink.shape[0]
    erased = ink.copy()
    cols = np.flatnonzero(np.isfinite(page))
    base = np.clip(np.round(page[cols]).astype(np.int64), 0, h - 1)
    for d in range(-erase_half, erase_half + 1):
        erased[(base + d) % h, cols] = 0
    erase_stroke(erased, ink, cols, base, erase_half, STROKE_LEVEL * (255 if ink.dtype == np.uint8 else 1.0))
    return erased


#: ink level (of 1) that still counts as the same stroke when erasing a traced path
STROKE_LEVEL = 0.25
#: rows beyond the path at most erased on each side (a 6 px pen at a steep slope)
STROKE_MAX = 16


def erase_stroke(out: np.ndarray, ink: np.ndarray, cols: np.ndarray, base: np.ndarray, start: int,
                 level: float) -> None:
    """Zero in `out`, column by column, the rest of the stroke about each path row `base`: the rows
    beyond +-start that stay inked (`ink` >= level) without a break, up to STROKE_MAX, plus the
    first row where the ink falls (the stroke's anti-aliased edge)."""
    h = ink.shape[0]
    for sign in (1, -1):
        alive = np.ones(cols.size, dtype=bool)
        for d in range(start + 1, STROKE_MAX + 2):
            r = (base + sign * d) % h
            out[r[alive], cols[alive]] = 0
            alive &= ink[r, cols] >= level


def decode_per_class(probs: np.ndarray, class_ids: Sequence[int] = (1, 2), *,
                     wrap_px: Mapping[int, float | None] | None = None, image: np.ndarray | None = None,
                     **kwargs) -> TraceResult:
    """Each class on its own channel (`trace_curves`)."""
    return trace_curves(probs, class_ids, wrap_px=wrap_px, **kwargs)


def decode_ink_identity(probs: np.ndarray, class_ids: Sequence[int] = (1, 2), *,
                        wrap_px: Mapping[int, float | None] | None = None, image: np.ndarray | None = None,
                        per_stretch: bool = True, **kwargs) -> TraceResult:
    """Trace the curve ink twice (erase between), then give each path its class from the model.

    Falls back to `trace_curves` for anything but two curve classes.
    """
    class_ids = tuple(int(c) for c in class_ids)
    if len(class_ids) != 2:
        return trace_curves(probs, class_ids, wrap_px=wrap_px, **kwargs)
    probs = np.asarray(probs, dtype=np.float32)
    c, h, w = probs.shape
    ink = np.clip(probs[list(class_ids)].sum(axis=0), 0.0, 1.0)
    period = wrap_period(wrap_px)
    first, second = trace_twice(ink, period, ERASE_HALF, **kwargs)
    rows = np.stack([first.rows[0], second.rows[0]])
    conf = np.stack([first.confidence[0], second.confidence[0]])
    bridged = np.stack([first.bridged[0], second.bridged[0]])

    # identity: how much more class a than class b the model sees along each path
    pa, pb = probs[class_ids[0]], probs[class_ids[1]]
    evidence = np.zeros((2, w))
    for k in range(2):
        r = rows[k]
        ok = np.isfinite(r)
        cc = np.flatnonzero(ok)
        rr = np.round(r[cc]).astype(np.int64) % h
        win = np.clip(rr[:, None] + np.arange(-1, 2)[None, :], 0, h - 1)
        evidence[k, cc] = pa[win, cc[:, None]].max(axis=1) - pb[win, cc[:, None]].max(axis=1)
    # > 0: path 0 is class a and path 1 is class b
    vote = evidence[0] - evidence[1]
    if per_stretch:
        kernel = np.ones(min(IDENTITY_WINDOW, w)) / min(IDENTITY_WINDOW, w)
        smooth = np.convolve(vote, kernel, mode="same")
        swap = smooth < 0
    else:
        swap = np.full(w, vote.sum() < 0)
    rows = np.where(swap[None, :], rows[::-1], rows)
    conf = np.where(swap[None, :], conf[::-1], conf)
    bridged = np.where(swap[None, :], bridged[::-1], bridged)
    # a class without a backup period reads its rows on the page: fold unwrapped rows back
    for k, cid in enumerate(class_ids):
        if not (wrap_px or {}).get(cid) and period:
            out = np.isfinite(rows[k]) & ((rows[k] < 0) | (rows[k] > h - 1))
            rows[k] = np.where(out, np.mod(rows[k], period), rows[k])
    return TraceResult(rows, conf, class_ids, bridged, h)


def decode_ink_identity_global(probs, class_ids=(1, 2), **kw) -> TraceResult:
    """`ink-identity` with one pairing for the whole scan."""
    return decode_ink_identity(probs, class_ids, per_stretch=False, **kw)


def decode_per_class_damped(probs, class_ids=(1, 2), *, image=None, **kw) -> TraceResult:
    """`per-class` on probabilities damped on the scan's long straight lines (`damp_lines`)."""
    return decode_per_class(damp_lines(probs, image), class_ids, image=image, **kw)


def decode_ink_identity_damped(probs, class_ids=(1, 2), *, image=None, **kw) -> TraceResult:
    """`ink-identity` on probabilities damped on the scan's long straight lines (`damp_lines`)."""
    return decode_ink_identity(damp_lines(probs, image), class_ids, image=image, **kw)


def curve_ink(probs: np.ndarray, class_ids: Sequence[int]) -> np.ndarray:
    """(H, W) uint8: the model's curve ink (the curve classes' probabilities summed, * 255, saturating).
    probs: (C, H, W) uint8 (p * 255, as the model stage ships them) or float in [0, 1]."""
    if probs.dtype == np.uint8:
        total = np.zeros(probs.shape[1:], dtype=np.uint16)
        for cid in class_ids:
            total += probs[cid]
        return np.minimum(total, 255).astype(np.uint8)
    total = np.clip(np.sum([probs[cid] for cid in class_ids], axis=0, dtype=np.float32), 0.0, 1.0)
    return np.round(total * 255.0).astype(np.uint8)


def solidity(ink: np.ndarray, rows: np.ndarray) -> float:
    """Share of a path's columns inked (>= half) within +-1 row of it; columns where the path is
    absent count as uninked. A solid pen scores about 1, a dashed or dotted one much less.
    ink: (H, W) uint8; rows: (W,) on the page (`TraceResult.page`), NaN where absent."""
    h, w = ink.shape
    cc = np.flatnonzero(np.isfinite(rows))
    if not cc.size or not w:
        return 0.0
    rr = np.clip(np.round(rows[cc]).astype(np.int64), 0, h - 1)
    win = np.clip(rr[:, None] + np.arange(-1, 2)[None, :], 0, h - 1)
    return float(np.count_nonzero(ink[win, cc[:, None]].max(axis=1) >= 128) / w)


#: the outer rows (a share of the height, at least EDGE_MIN_ROWS) where long straight ink is a border
EDGE_BAND = 0.02
EDGE_MIN_ROWS = 3
#: columns a run of ink along an edge band must span to count as a border, not a curve
EDGE_RUN = 256


def drop_edge_lines(ink: np.ndarray) -> np.ndarray:
    """`ink` (H, W) uint8 with long runs of ink along the scan's top and bottom bands set to 0.

    A track's top or bottom border lies on the scan's edge, and the model (trained on padded
    batches) sometimes calls it curve: the tracer then rides the border for thousands of columns.
    A band is EDGE_BAND of the height (at least EDGE_MIN_ROWS rows); where some row of it is inked
    (>= 128) in more than EDGE_RUN consecutive columns, the band is cleared there. A curve dips into
    a band for a short stretch; one pinned off scale at the edge for that long is lost there (bridged
    or absent, and flagged by QC) rather than a border traced as a curve."""
    h, w = ink.shape
    band = min(h // 2, max(EDGE_MIN_ROWS, int(round(EDGE_BAND * h))))
    if w <= EDGE_RUN or band < 1:
        return ink
    out = ink
    for rows in (slice(0, band), slice(h - band, h)):
        on = np.concatenate(([False], (ink[rows] >= 128).any(axis=0), [False]))
        edges = np.flatnonzero(on[1:] != on[:-1])
        starts, ends = edges[::2], edges[1::2]
        for a, b in zip(starts, ends):
            if b - a > EDGE_RUN:
                if out is ink:
                    out = ink.copy()
                out[rows, a:b] = 0
    return out


#: what trading places must save (summed row steps of both paths, as a share of the height) at one
#: column before `untangle` swaps two paths there
UNTANGLE_SAVING = 0.05
#: ... and how far apart (a share of the height) the two paths must have been: where curves run close
#: or cross, the passes' own choice stands
UNTANGLE_APART = 0.15


def untangle(rows: np.ndarray, height: int) -> np.ndarray:
    """(W,) bool: the columns where two identity-free paths (`trace_twice`) trade places.

    Each pass is the best path through the ink, and nothing keeps a pass on one curve: where two
    strokes are about equally inked, a pass may leave its curve for the other in one step (the other
    pass making the mirror step), far from any crossing. Where the paths were more than UNTANGLE_APART
    of the height apart, both jump at once, and trading places would make both steps shorter by more
    than UNTANGLE_SAVING of the height, they trade places from there on. Steps are measured from each path's last traced column, so across gaps too; where
    one path is absent (the tracer cuts a step it finds too long), the other's step decides.
    rows: (2, W), NaN where a path is absent. A real crossing is left alone: there the curves meet,
    and going straight on is the shorter step."""
    return _untangle(np.ascontiguousarray(rows, dtype=np.float64), UNTANGLE_SAVING * float(height),
                     UNTANGLE_APART * float(height))


@numba.njit(cache=True, nogil=True)
def _untangle(rows, saving, apart):  # pragma: no cover - compiled
    w = rows.shape[1]
    swap = np.zeros(w, dtype=np.bool_)
    flipped = False
    pa = np.nan
    pb = np.nan
    for x in range(w):
        ra = rows[1, x] if flipped else rows[0, x]
        rb = rows[0, x] if flipped else rows[1, x]
        if np.isfinite(pa) and np.isfinite(pb) and abs(pa - pb) > apart and (np.isfinite(ra) or np.isfinite(rb)):
            # a path absent here (a gap, or a step cut as too long) counts for nothing either way
            straight = (abs(ra - pa) if np.isfinite(ra) else 0.0) + (abs(rb - pb) if np.isfinite(rb) else 0.0)
            crossed = (abs(ra - pb) if np.isfinite(ra) else 0.0) + (abs(rb - pa) if np.isfinite(rb) else 0.0)
            if straight - crossed > saving:
                flipped = not flipped
                ra, rb = rb, ra
        swap[x] = flipped
        if np.isfinite(ra):
            pa = ra
        if np.isfinite(rb):
            pb = rb
    return swap


#: weight of the model's class vote against the pen's solidity in a scan's curve identity
#: (`identity_swaps`); chosen on training styles among 2-32 (bench/RESULTS.md, "Curve identity from
#: the classes again")
CLASS_WEIGHT = 2.0
#: page rows apart at or below which two paths meet (a crossing, a touch): identity may change there
MEET_ROWS = 10
#: a gap in one path of at most this many columns whose two ends lie within MEET_GAP_ROWS of the other
#: path is part of a meeting (the second pass loses a crossing to the first path's erased stroke)
MEET_GAP = 48
MEET_GAP_ROWS = 14
#: a stretch between meetings is handed to the other curve where the model's class vote along the
#: two paths (mean p1 - p2, `class_evidence`) disagrees with the scan's identity by more than this
STRETCH_VOTE = 0.1
#: ... and the stretch spans at least this many columns
STRETCH_MIN = 30
#: identity may also change where a path jumps more than this many rows from one present column to the
#: next: the first pass leaves one curve for the other across a gap without meeting it, and the second
#: pass takes what is left, so the two paths trade curves there while far apart (`jump_columns`)
JUMP_ROWS = 20
#: the class vote a stretch needs when jumps bound stretches too: they make more, shorter stretches
JUMP_STRETCH_VOTE = 0.2


def class_evidence(probs: np.ndarray, page: np.ndarray) -> np.ndarray:
    """(K, W): how much more class 1 than class 2 the model sees on each path (max over +-1 row of
    p1 and of p2 at the path's page rows), in [-1, 1]; NaN where the path is absent.
    probs: (C, H, W) uint8 (p * 255) or float in [0, 1]; page: (K, W) page rows."""
    h = probs.shape[1]
    scale = 255.0 if probs.dtype == np.uint8 else 1.0
    out = np.full(page.shape, np.nan)
    for k in range(page.shape[0]):
        cc = np.flatnonzero(np.isfinite(page[k]))
        rr = np.clip(np.round(page[k, cc]).astype(np.int64), 0, h - 1)
        win = np.clip(rr[:, None] + np.arange(-1, 2)[None, :], 0, h - 1)
        p1 = probs[1][win, cc[:, None]].max(axis=1).astype(np.float64)
        p2 = probs[2][win, cc[:, None]].max(axis=1).astype(np.float64)
        out[k, cc] = (p1 - p2) / scale
    return out


def meeting_columns(page: np.ndarray) -> np.ndarray:
    """(W,) bool: the columns where two paths (2, W page rows, NaN where absent) meet: both present
    and at most MEET_ROWS apart, or one absent for at most MEET_GAP columns with the other path within
    MEET_GAP_ROWS of both ends of that gap."""
    a, b = page
    w = a.size
    near = np.isfinite(a) & np.isfinite(b) & (np.abs(np.nan_to_num(a - b, nan=np.inf)) <= MEET_ROWS)
    for p, q in ((a, b), (b, a)):
        on = np.concatenate(([True], np.isfinite(p), [True]))
        edges = np.flatnonzero(on[1:] != on[:-1])
        for s, e in zip(edges[::2], edges[1::2]):  # the path's absent runs [s, e)
            if s == 0 or e == w or e - s > MEET_GAP:
                continue
            if abs(p[s - 1] - q[s - 1]) <= MEET_GAP_ROWS and abs(p[e] - q[e]) <= MEET_GAP_ROWS:
                near[s:e] = True
    return near


def jump_columns(page: np.ndarray, jump_rows: float = JUMP_ROWS) -> np.ndarray:
    """Sorted columns where a path (K, W page rows, NaN where absent) lies more than `jump_rows` rows
    from where it was at its previous present column, gaps skipped."""
    cols = []
    for p in page:
        cc = np.flatnonzero(np.isfinite(p))
        if cc.size > 1:
            cols.append(cc[1:][np.abs(np.diff(p[cc])) > jump_rows])
    return np.unique(np.concatenate(cols)) if cols else np.zeros(0, np.int64)


def identity_swaps(probs: np.ndarray, ink: np.ndarray, page: np.ndarray,
                   jumps: bool = False) -> tuple[bool, np.ndarray]:
    """Which of two identity-free paths is curve 1: (swap the whole scan?, (W,) bool columns where,
    after that, the paths trade places).

    Once per scan, the pen and the model's classes vote: solidity(path 0) - solidity(path 1) (curve 1
    is drawn solid, docs/contracts.md section 1) plus CLASS_WEIGHT x (mean class evidence of path 0 -
    of path 1). Then, per stretch between the paths' meetings (`meeting_columns`): a first pass that
    took the other curve at a crossing carries on along it, and the stretch is handed back where the
    classes along it disagree by more than STRETCH_VOTE. jumps: stretches end at the paths' jumps too
    (`jump_columns`), where a vote of JUMP_STRETCH_VOTE hands them over. page: (2, W) page rows (NaN
    where absent); ink: the model's curve ink (`curve_ink`); probs as `class_evidence` takes them."""
    w = page.shape[1]
    ev = class_evidence(probs, page)
    present = np.isfinite(ev).any(axis=1)
    vote = float(np.nanmean(ev[0]) - np.nanmean(ev[1])) if present.all() else 0.0
    flip = solidity(ink, page[1]) - solidity(ink, page[0]) > CLASS_WEIGHT * vote
    if flip:
        page, ev = page[::-1], ev[::-1]
    swap = np.zeros(w, dtype=bool)
    if not present.all():
        return flip, swap
    on = np.concatenate(([False], meeting_columns(page), [False]))
    edges = np.flatnonzero(on[1:] != on[:-1])
    bounds = [0, *((edges[::2] + edges[1::2]) // 2).tolist(), w]
    needed = STRETCH_VOTE
    if jumps:
        bounds = sorted({*bounds, *jump_columns(page).tolist()})
        needed = JUMP_STRETCH_VOTE
    for a, b in zip(bounds[:-1], bounds[1:]):
        e0, e1 = ev[0, a:b], ev[1, a:b]
        if b - a < STRETCH_MIN or not (np.isfinite(e0).any() and np.isfinite(e1).any()):
            continue
        if np.nanmean(e0) - np.nanmean(e1) < -needed:
            swap[a:b] = True
    return flip, swap


def decode_ink_stroke(probs: np.ndarray, class_ids: Sequence[int] = (1, 2), *,
                      wrap_px: Mapping[int, float | None] | None = None, image: np.ndarray | None = None,
                      close: int = 0, untangle_paths: bool = True, classes: bool = False,
                      jumps: bool = False, second_class: bool = False, **kwargs) -> TraceResult:
    """Where from the model's ink, which from the pen: the curve ink traced twice (`trace_twice`),
    then the more solid path is curve 1 (`solidity`), one identity for the whole scan.

    Curve 1 is drawn solid and curve 2 broken or thinner (docs/contracts.md section 1), a cue a
    person reads at a glance and one that holds for pen patterns the model never saw, where its
    class channels do not (bench/RESULTS.md, "Decoders, third pass"). Where one curve has a backup
    period and the other none, both passes run with the period, and the curve without one is then
    traced again on the page (`retrace_on_page`). Falls back to `trace_curves` for anything but two
    curve classes. classes: identity from the pen and the model's classes together, per scan and then
    per stretch between meetings (`identity_swaps`), instead of from the pen alone; jumps: the
    stretches end at the paths' jumps too; second_class: the second pass runs on the erased ink
    weighted towards the class the first path is not (`other_class_ink`).
    """
    asked = tuple(int(c) for c in class_ids)
    if len(asked) != 2:
        return trace_curves(probs, asked, wrap_px=wrap_px, **kwargs)
    class_ids = tuple(sorted(asked))
    h = probs.shape[1]
    ink = drop_edge_lines(curve_ink(probs, class_ids))
    period = wrap_period(wrap_px)
    second_ink = other_class_ink(probs, IDENTITY_WINDOW) if second_class else None
    first, second = trace_twice(ink, period, ERASE_HALF, close, second_ink=second_ink, **kwargs)
    paths = [first, second]
    rows = np.stack([p.rows[0] for p in paths])
    offset = np.stack([np.zeros(rows.shape[1]) if p.offset is None else p.offset[0] for p in paths])
    conf = np.stack([p.confidence[0] for p in paths])
    bridged = np.stack([p.bridged[0] for p in paths])
    traced = (rows, offset, conf, bridged)
    every = np.ones(rows.shape[1], dtype=bool)
    if untangle_paths:
        traced = _trade(traced, untangle(rows, h))
    rows, offset = traced[:2]
    if classes:
        flip, swap = identity_swaps(probs, ink, rows - offset, jumps)
        traced = _trade(_trade(traced, every) if flip else traced, swap)
    elif solidity(ink, rows[1] - offset[1]) > solidity(ink, rows[0] - offset[0]):
        traced = _trade(traced, every)
    rows, offset, conf, bridged = traced
    plain = [k for k, cid in enumerate(class_ids) if not (wrap_px or {}).get(cid)]
    for k in plain:  # a class without a backup period lies on the page
        rows[k] -= offset[k]
        offset[k] = 0.0
    if period and len(plain) == 1:
        # both passes were traced with the backup period (before identity was known), which lets the
        # curve without one step across the page's edge; trace it again on the page, without the
        # period, on the ink less the backup curve's stroke
        k, j = plain[0], 1 - plain[0]
        again = retrace_on_page(ink, rows[j] - offset[j], close, **kwargs)
        rows[k], conf[k], bridged[k] = again.rows[0], again.confidence[0], again.bridged[0]
    order = [class_ids.index(c) for c in asked]
    return TraceResult(rows[order], conf[order], asked, bridged[order], h, offset[order])


def _trade(paths: tuple[np.ndarray, ...], where: np.ndarray) -> tuple[np.ndarray, ...]:
    """(2, W) arrays of two paths (rows, offsets, confidences, bridges) with the paths swapped in the
    columns `where` ((W,) bool); the same arrays when `where` is all False."""
    if not where.any():
        return paths
    return tuple(np.where(where[None, :], a[::-1], a) for a in paths)


def retrace_on_page(ink: np.ndarray, other: np.ndarray, close: int = 0, **kwargs) -> TraceResult:
    """One path through (H, W) uint8 `ink` without a backup period, once the stroke of the other
    curve (its page rows `other`, NaN where absent) is erased as `trace_twice` erases a first path
    (and its gaps closed as there)."""
    return trace_sparse(erase_path(ink, other, ERASE_HALF), None, close, **kwargs)


#: name -> (decoder(probs, class_ids, *, wrap_px, image) -> TraceResult, one-line description)
DECODERS = {
    "per-class": (decode_per_class, "each class traced on its own channel"),
    "ink-identity": (decode_ink_identity, "curve ink traced twice, identity from the classes per stretch"),
    "ink-identity-global": (decode_ink_identity_global, "curve ink traced twice, one identity per scan"),
    "per-class-damped": (decode_per_class_damped, "per-class on probabilities damped on the scan's long lines"),
    "ink-identity-damped": (decode_ink_identity_damped, "ink-identity on probabilities damped on long lines"),
    "ink-stroke": (decode_ink_stroke, "curve ink traced twice, the more solid path is curve 1"),
    "ink-stroke-straight": (partial(decode_ink_stroke, untangle_paths=False),
                            "ink-stroke without `untangle`: each pass keeps its own path"),
    "ink-stroke-closed": (partial(decode_ink_stroke, close=CLOSE_COLUMNS, untangle_paths=False, **INK_TRACER),
                          f"ink-stroke-straight, a sparse pass traced again over gaps closed across {CLOSE_COLUMNS} "
                          f"columns, a stiffer tracer ({INK_TRACER})"),
    "ink-classes-closed": (partial(decode_ink_stroke, close=CLOSE_COLUMNS, untangle_paths=False, classes=True,
                                   **INK_TRACER),
                           "ink-stroke-closed, identity from the pen and the classes per scan, then per stretch "
                           "between meetings from the classes"),
    "ink-classes-jumps": (partial(decode_ink_stroke, close=CLOSE_COLUMNS, untangle_paths=False, classes=True,
                                  jumps=True, **INK_TRACER),
                          f"ink-classes-closed, the stretches ending at jumps of over {JUMP_ROWS} rows too"),
    "ink-classes-second": (partial(decode_ink_stroke, close=CLOSE_COLUMNS, untangle_paths=False, classes=True,
                                   jumps=True, second_class=True, **INK_TRACER),
                           "ink-classes-jumps, the second pass on the erased ink times the share of the class "
                           f"the first path is not (column by column, over {IDENTITY_WINDOW} columns)"),
    **{f"ink-stroke-closed{k}": (partial(decode_ink_stroke, close=k, untangle_paths=False, **INK_TRACER),
                                 f"ink-stroke-closed across {k} columns") for k in (5, 15)},
}
#: what inference, sheets and `veernet evaluate` use: chosen on training styles (bench/decoders.py)
DEFAULT_DECODER = "ink-classes-jumps"


def decode(probs: np.ndarray, class_ids: Sequence[int] = (1, 2), *,
           wrap_px: Mapping[int, float | None] | None = None, image: np.ndarray | None = None) -> TraceResult:
    """The model's (C, H, W) probabilities (uint8 p * 255, or float) -> curves, by `DEFAULT_DECODER`."""
    return DECODERS[DEFAULT_DECODER][0](probs, class_ids, wrap_px=wrap_px, image=image)
