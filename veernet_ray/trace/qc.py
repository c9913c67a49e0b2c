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
  identity from that; near zero, both pens look alike and identity is a guess;
- shared: share of traced columns where the other curve's trace lies within
  a couple of rows (two traces on one ink, beyond a crossing);
- ink: share of traced columns where the scan has ink under the trace (a trace
  across blank paper is invented);
- grid: share of traced columns that ride a grid line: runs of at least
  RIDE_COLUMNS consecutive columns where the trace stays on rows that are dark
  across the whole window (a horizontal grid line or track border). A good
  curve crosses grid rows all the time, so the share of its columns that
  merely touch one grows with grid density (a fifth of all rows on a dense
  grid); staying on one for a long run is what a trace riding a line does;
- jumps: large row jumps per 1,000 columns (physically implausible, unless a
  backup scale wraps the curve);
- spread: the trace's spread in track fractions (a nearly flat trace is most
  often a grid line, and its figures are fragile).

`judge` turns the signals into `flagged` and a readable `reason`. Thresholds
live in `QCThresholds`; the defaults were chosen on training-style
validation scans, never on the held-out evaluation set (bench/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from veernet_ray.trace.tracer import long_runs

#: rows either side of a trace that count as "the same ink" for the shared signal
SHARED_ROWS = 2
#: a trace point has ink under it when the ink map within +-1 row exceeds this
INK_LEVEL = 0.2
#: a row is a grid row when its median ink over the window exceeds this
GRID_LEVEL = 0.25
#: consecutive columns on grid rows that count as riding the line, not crossing it
RIDE_COLUMNS = 40


@dataclass(frozen=True)
class QCThresholds:
    """A curve is flagged when any signal crosses its threshold."""

    # chosen together on training styles (train-style n=40) for the ink-stroke decoder and the model
    # stage's 16-row margin: bench/qc_thresholds.py --min-bad 0.9 (bench/RESULTS.md, "The bottom-edge line")
    min_coverage: float = 0.7
    min_confidence: float = 0.5
    min_margin: float = 0.25
    min_pen: float = 0.10  # curve 1's trace at least this much more solid than curve 2's (-1: off)
    max_shared: float = 0.25  # 0.15 flagged good curves that overlap the other for a stretch
    min_ink: float = 0.85
    max_grid: float = 0.25  # of the riding signal (RIDE_COLUMNS)
    max_jumps: float = 6.0  # per 1,000 columns
    min_spread: float = 0.015  # std of the trace, track fractions

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


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
            sig.update(margin=np.nan, shared=np.nan, ink=np.nan, grid=np.nan, jumps=np.nan, spread=np.nan)
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
            sig["ink"] = float(np.mean(ink.at(win, cols[:, None]).max(axis=1) > INK_LEVEL))
            on_grid = np.zeros(w, bool)
            on_grid[cols] = ink.row_median_at(rr, cols) > GRID_LEVEL
            sig["grid"] = float(long_runs(on_grid, RIDE_COLUMNS)[cols].mean())
        else:
            sig["ink"], sig["grid"] = np.nan, np.nan
        d = np.abs(np.diff(r[cols])) * (np.diff(cols) == 1)
        sig["jumps"] = float(np.sum(d > 0.25 * h) * 1000.0 / max(w, 1))
        sig["spread"] = float(np.std(r[cols]) / max(h - 1, 1))
        out.append(sig)
    return out


def judge(sig: dict[str, float], t: QCThresholds = QCThresholds()) -> tuple[bool, str]:
    """(flagged, reason) for one curve's signals; the reason lists every check that failed."""
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
    below("margin", t.min_margin, "curves hard to tell apart: class margin")
    below("pen", t.min_pen, "curves hard to tell apart: pen contrast")
    above("shared", t.max_shared, "shares ink with the other trace")
    below("ink", t.min_ink, "trace off the ink: ink support")
    above("grid", t.max_grid, "rides a grid line: share")
    above("jumps", t.max_jumps, "implausible jumps per 1000 columns")
    below("spread", t.min_spread, "nearly flat trace (grid line?): spread")
    return bool(reasons), "; ".join(reasons)
