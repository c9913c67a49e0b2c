"""QC: decide which traced curves a person must look at.

Low probability alone cannot catch a model that is confidently wrong (a trace
that follows the other curve's ink, a grid line or a swapped identity scores
a high confidence). So each traced curve gets several independent signals,
computed from the trace, the probabilities and the scan's own pixels:

- coverage: share of depth columns with a value;
- confidence: mean trace confidence (contrast against its column);
- margin: how much more probability the curve's own class has than the other
  curve class on the traced pixels (identity: a low margin means the model
  could not tell the two curves apart there);
- pen: how much more solid curve 1's trace is than curve 2's (`trace.decode.solidity`
  on the model's curve ink), for both curves of a pair: curve 1 is drawn solid and
  curve 2 broken (docs/contracts.md section 1), and the default decoder takes
  identity from that and from the classes; near zero, both pens look alike, and
  identity is a guess unless the class margin is decisive (`pen_margin`);
- shared: share of traced columns where the other curve's trace lies within
  a couple of rows (two traces on one ink, beyond a crossing);
- ink: share of traced columns where the scan has ink under the trace (a trace
  across blank paper is invented);
- ink_contrast: that share less the mean share of the same trace shifted INK_OFFSETS
  rows off itself. A broken pen's own gaps lower the ink support of a right trace,
  but not its contrast: a few rows off it there is paper. A trace across blank
  paper, text or a grid has no more ink under it than beside it;
- grid: share of traced columns that ride a grid line while the model sees
  the curve elsewhere: runs of at least RIDE_COLUMNS consecutive columns where
  the trace stays on rows that are dark across the whole window (a horizontal
  grid line or track border), and where the curve's own class is strong
  (ELSEWHERE_LEVEL) on rows away from every trace. A good curve crosses grid
  rows all the time, so the share of its columns that merely touch one grows
  with grid density (a fifth of all rows on a dense grid); staying on one for
  a long run is what a trace riding a line does, and also what a flat
  stretch of curve drawn on a grid line does. The second test tells them
  apart: a trace that left its curve for a line leaves that curve's ink
  unexplained, and the model still marks it;
- jumps: large row jumps per 1,000 columns (physically implausible, unless a
  backup scale wraps the curve);
- cycles: for a curve with a backup scale, the wrap cycles its unwrapped trace spans
  (rows less page, in periods: 0 on scale, 1 with backups beyond one end). A backup
  scale lies beyond one end of the scale, so a trace that backs up beyond both (2)
  misread a crossing and is off by a whole track width somewhere;
- backup: for a curve with a backup scale, the share of its trace on the backup
  (off the main scale). The unwrap takes the cycle the trace spends most of the
  depth on as the main scale, so a curve drawn on its backup for more than half
  the depth comes out a whole period off everywhere with nothing in the pixels
  to show it; a share near a half says the main scale is in doubt;
- spread: the trace's spread in track fractions (a nearly flat trace is most
  often a grid line, and its figures are fragile).

`judge` turns the signals into `flagged` and a readable `reason`. Thresholds
live in `QCThresholds`; the defaults were chosen on training-style
validation scans, never on the held-out evaluation set (bench/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from veernet_ray.trace.thresholds import QCThresholds, reason_rules
from veernet_ray.trace.tracer import long_runs

__all__ = ["QCThresholds", "curve_signals", "judge", "reason_rules"]

#: rows either side of a trace that count as "the same ink" for the shared signal
SHARED_ROWS = 2
#: a trace point has ink under it when the ink map within +-1 row exceeds this
INK_LEVEL = 0.2
#: rows the trace is shifted by for the ink it would have off its curve (ink_contrast): beyond a
#: 6 px pen's half width and the +-1 row window, inside a track's smallest curve swing
INK_OFFSETS = (-12, -8, 8, 12)
#: a row is a grid row when its median ink over the window exceeds this
GRID_LEVEL = 0.25
#: consecutive columns on grid rows that count as riding the line, not crossing it
RIDE_COLUMNS = 40
#: a riding run is a line only if its row is dark where no trace is on it: columns this far
#: either side of the run are looked at (the whole scan when too few are free there)
BEYOND_COLUMNS = 512
#: rows either side of the run's row read for the line (a skewed line drifts a row or two)
BEYOND_ROWS = 2
#: a trace within this many rows of the run's row hides it (its own ink)
BEYOND_AWAY = 6
#: free columns needed to judge a run; fewer and the run counts as riding
BEYOND_MIN = 32
#: a riding run stays suspect only where the model's own class for the curve, on rows more than
#: BEYOND_AWAY rows from every trace, reaches this (the run's median of each column's maximum)
ELSEWHERE_LEVEL = 0.5


def curve_signals(
    rows: np.ndarray,
    confidence: np.ndarray,
    class_ids: tuple[int, ...],
    probs: np.ndarray,
    image: np.ndarray | None,
    wrap_px: dict[int, float] | None = None,
    page: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Signals per traced curve (see the module docstring).

    rows, confidence: (K, W) from `trace_curves` (rows unwrapped, NaN = no value).
    page: (K, W) the rows on the page (`TraceResult.page`), where pixels are read; default `rows`
    (right for traces that do not wrap).
    probs: (C, H, W) float probabilities, or uint8 ones (p * 255). image: the canonical uint8 scan (H, W),
    or None (ink and grid signals are then NaN and never flag).
    """
    from veernet_ray.trace.decode import curve_ink, solidity
    from veernet_ray.trace.ink import InkMap
    from veernet_ray.trace.tracer import as_probability

    c, h, w = probs.shape
    page = rows if page is None else page
    ink = InkMap(image) if image is not None else None
    pen = {}
    if len(class_ids) == 2:
        model_ink = curve_ink(probs, class_ids)
        solid = {cid: solidity(model_ink, page[k]) for k, cid in enumerate(class_ids)}
        lo, hi = sorted(class_ids)
        pen = {lo: solid[lo] - solid[hi], hi: solid[lo] - solid[hi]}
    out = []
    for k, cid in enumerate(class_ids):
        r = rows[k]
        have = np.isfinite(r)
        sig: dict[str, float] = {
            "coverage": float(have.mean()) if have.size else 0.0,
            "confidence": float(np.mean(confidence[k][have])) if have.any() else 0.0,
            "pen": pen.get(cid, np.nan),
        }
        if have.sum() < 2:
            sig.update(margin=np.nan, shared=np.nan, ink=np.nan, ink_contrast=np.nan, grid=np.nan, jumps=np.nan,
                       cycles=np.nan, backup=np.nan, spread=np.nan)
            out.append(sig)
            continue
        cols = np.flatnonzero(have)
        pr = page[k]
        rr = np.clip(np.round(pr[cols]).astype(np.int64), 0, h - 1)
        win = np.clip(rr[:, None] + np.arange(-1, 2)[None, :], 0, h - 1)
        own = as_probability(probs[cid][win, cols[:, None]]).max(axis=1)
        others = [o for o in class_ids if o != cid]
        if others:
            other = np.max([as_probability(probs[o][win, cols[:, None]]).max(axis=1) for o in others], axis=0)
            sig["margin"] = float(np.mean(own - other))
            near = np.zeros(cols.size, bool)
            for j, o in enumerate(class_ids):
                if o != cid:
                    ro = page[j][cols]
                    near |= np.isfinite(ro) & (np.abs(ro - pr[cols]) <= SHARED_ROWS)
            sig["shared"] = float(near.mean())
        else:
            sig["margin"], sig["shared"] = float(np.mean(own)), 0.0
        if ink is not None:
            sig["ink"] = float(np.mean(_ink_under(ink, rr, cols)))
            sig["ink_contrast"] = _ink_contrast(ink, rr, cols, sig["ink"])
            on_grid = np.zeros(w, bool)
            on_grid[cols] = ink.row_median_at(rr, cols) > GRID_LEVEL
            riding = _line_beyond(long_runs(on_grid, RIDE_COLUMNS), pr, page, ink)
            riding = _seen_elsewhere(riding, probs[cid], page)
            sig["grid"] = float(riding[cols].mean())
        else:
            sig["ink"], sig["ink_contrast"], sig["grid"] = np.nan, np.nan, np.nan
        d = np.abs(np.diff(r[cols])) * (np.diff(cols) == 1)
        sig["jumps"] = float(np.sum(d > 0.25 * h) * 1000.0 / max(w, 1))
        period = (wrap_px or {}).get(cid)
        if period and np.isfinite(period) and period > 0:
            cycles = np.round((r[cols] - pr[cols]) / period)
            sig["cycles"] = float(cycles.max() - cycles.min())
            sig["backup"] = float(np.mean(cycles != 0))
        else:
            sig["cycles"], sig["backup"] = 0.0, 0.0
        sig["spread"] = float(np.std(r[cols]) / max(h - 1, 1))
        out.append(sig)
    return out


def _ink_under(ink, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(n,) bool: the scan has ink (above INK_LEVEL) within +-1 row of each (row, column) point, rows
    clipped to the scan."""
    win = np.clip(rows[:, None] + np.arange(-1, 2)[None, :], 0, ink.image.shape[0] - 1)
    return ink.at(win, cols[:, None]).max(axis=1) > INK_LEVEL


def _ink_contrast(ink, rr: np.ndarray, cols: np.ndarray, support: float) -> float:
    """`support` (the ink share under the trace at rows rr of columns cols) less the mean ink share
    of the trace shifted by each of INK_OFFSETS rows, over the shifted points that stay inside the scan."""
    h = ink.image.shape[0]
    shares = []
    for off in INK_OFFSETS:
        q = rr + off
        inside = (q >= 1) & (q <= h - 2)
        if inside.any():
            shares.append(float(np.mean(_ink_under(ink, q[inside], cols[inside]))))
    return support - float(np.mean(shares)) if shares else np.nan


def _line_beyond(runs: np.ndarray, pr: np.ndarray, page: np.ndarray, ink) -> np.ndarray:
    """`runs` (W,) bool, the long runs on dark rows, less those whose row is dark only under a trace.

    For each run: its row r0 (the median of `pr` there) and the columns within BEYOND_COLUMNS
    either side of it where every trace of `page` is more than BEYOND_AWAY rows from r0 (or
    absent); the whole scan's such columns when fewer than BEYOND_MIN. The run stays when the
    median over those columns of the ink at r0 +- BEYOND_ROWS (the darkest of those rows) is
    above GRID_LEVEL, or when too few columns are free to tell.
    """
    out = runs.copy()
    if not runs.any():
        return out
    h, w = ink.image.shape
    edges = np.diff(np.concatenate([[0], runs.astype(np.int8), [0]]))
    for s0, e0 in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        r0 = int(round(float(np.nanmedian(pr[s0:e0]))))
        with np.errstate(invalid="ignore"):
            free = ~np.any(np.abs(page - r0) <= BEYOND_AWAY, axis=0)  # NaN: no trace there, free
        free[s0:e0] = False
        near = np.zeros(w, bool)
        near[max(0, s0 - BEYOND_COLUMNS):min(w, e0 + BEYOND_COLUMNS)] = True
        cols = np.flatnonzero(free & near)
        if cols.size < BEYOND_MIN:
            cols = np.flatnonzero(free)
        if cols.size < BEYOND_MIN:
            continue  # the trace never leaves this row: a line or not, it cannot be told
        rows = np.clip(r0 + np.arange(-BEYOND_ROWS, BEYOND_ROWS + 1), 0, h - 1)
        if np.median(ink.at(rows[None, :], cols[:, None]).max(axis=1)) <= GRID_LEVEL:
            out[s0:e0] = False
    return out


def _seen_elsewhere(runs: np.ndarray, own: np.ndarray, page: np.ndarray) -> np.ndarray:
    """`runs` (W,) bool, the riding runs, less those where the model does not see the curve elsewhere.

    own: (H, W) the curve's own class probabilities (float, or uint8 p * 255). For each run, each
    column's maximum of `own` over the rows more than BEYOND_AWAY rows from every trace of `page`
    (absent traces hide nothing); the run stays when the median of those maxima reaches
    ELSEWHERE_LEVEL. On training styles, of the 32 bad and 41 good curves with a riding run, 16 and
    4 kept one (bench/RESULTS.md, "QC: riding a grid line, or drawn on one").
    """
    from veernet_ray.trace.tracer import as_probability

    out = runs.copy()
    if not runs.any():
        return out
    h = own.shape[0]
    edges = np.diff(np.concatenate([[0], runs.astype(np.int8), [0]]))
    rows = np.arange(h, dtype=np.float64)[:, None]
    for s0, e0 in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        near = np.zeros((h, e0 - s0), bool)
        for tr in page[:, s0:e0]:
            with np.errstate(invalid="ignore"):
                near |= np.abs(rows - tr[None, :]) <= BEYOND_AWAY  # NaN: no trace, hides nothing
        seen = np.where(near, 0.0, as_probability(own[:, s0:e0])).max(axis=0)
        if np.median(seen) < ELSEWHERE_LEVEL:
            out[s0:e0] = False
    return out


def judge(sig: dict[str, float], t: QCThresholds = QCThresholds(), class_id: int | None = None) -> tuple[bool, str]:
    """(flagged, reason) for one curve's signals; the reason lists every check that failed.

    class_id: the curve's class (curve 2 has its own margin threshold); None judges as curve 1.
    """
    reasons = []
    cov = sig.get("coverage", 0.0)
    if cov <= 0:
        return True, "no curve found"
    if cov < t.min_coverage:
        reasons.append(f"low coverage {cov:.2f} < {t.min_coverage:.2f}")

    def below(key: str, lim: float, text: str) -> None:
        v = sig.get(key, np.nan)
        if np.isfinite(v) and v < lim:
            reasons.append(f"{text} {v:.2f} < {lim:.2f}")

    def above(key: str, lim: float, text: str) -> None:
        v = sig.get(key, np.nan)
        if np.isfinite(v) and v > lim:
            reasons.append(f"{text} {v:.2f} > {lim:.2f}")

    below("confidence", t.min_confidence, "low confidence")
    below("margin", t.min_margin_2 if class_id == 2 else t.min_margin, "curves hard to tell apart: class margin")
    margin = sig.get("margin", np.nan)
    if not (np.isfinite(margin) and margin >= t.pen_margin):  # a decisive class margin settles identity
        below("pen", t.min_pen, "curves hard to tell apart: pen contrast")
    above("shared", t.max_shared, "shares ink with the other trace")
    contrast = sig.get("ink_contrast", np.nan)
    if not (np.isfinite(contrast) and contrast >= t.ink_contrast):  # clearly more ink on it than beside it
        below("ink", t.min_ink, "trace off the ink: ink support")
    above("grid", t.max_grid, "rides a grid line, its curve seen elsewhere: share")
    above("jumps", t.max_jumps, "implausible jumps per 1000 columns")
    above("cycles", t.max_cycles, "backs up beyond both ends of its scale: wrap cycles")
    above("backup", t.max_backup, "main scale in doubt: share on the backup scale")
    below("spread", t.min_spread, "nearly flat trace (grid line?): spread")
    return bool(reasons), "; ".join(reasons)
