"""Depth from printed labels: a robust straight-line fit per section, and its honest verdict.

    depth = a + b x row        (rows of the sheet's own pixels, b > 0: depth grows down the page)

Printed labels on one section are monotonic and evenly spaced (every 50 or
100 ft, 10 or 20 m), so a misread ("2850" for "2650", a note read as a
number) is an outlier against the line through the others. The fit is a
consensus over every pair of labels (there are at most a few hundred labels
on a sheet, so all pairs are cheap): the pair whose line the most labels
agree with (within a fraction of the label spacing) wins, then least squares
on the agreeing labels. What is not on the line is rejected, with a reason.

The verdict never invents a depth: fewer than two readable labels, or a
consensus that most readable labels contradict, gives no fit (`ok` False,
`a`/`b` None) and a reason. A fit that is usable but not verified (only two
labels agree, labels not on a common interval, residuals larger than
RESIDUAL_FRAC of the spacing) keeps its numbers and is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: a label agrees with a line when its row is within this share of the median label spacing
AGREE_FRAC = 0.04
#: flag a fit whose worst residual exceeds this share of the label interval (in depth)
RESIDUAL_FRAC = 0.02
#: labels a fit needs before it counts as verified (two points always make a line)
MIN_VERIFIED = 3


@dataclass(frozen=True)
class LabelRead:
    """One label as read: where (centre row), what (text), and the number it parses to."""

    row: float
    text: str
    value: float | None  # None: not a number
    confidence: float = 1.0
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    rotated: bool = False


@dataclass(frozen=True)
class DepthFit:
    """Result of fitting one section. `used[i]` / `reason[i]` describe the i-th label given."""

    ok: bool  # a usable depth mapping (possibly flagged)
    flagged: bool
    reason: str  # "" when fine
    a: float | None
    b: float | None
    interval: float | None  # the label spacing in depth units
    residuals: tuple[float, ...] = ()  # depth residual of each used label (value - fit)
    used: tuple[bool, ...] = ()
    label_reasons: tuple[str, ...] = ()

    @property
    def rms(self) -> float | None:
        return float(np.sqrt(np.mean(np.square(self.residuals)))) if self.residuals else None

    @property
    def max_abs(self) -> float | None:
        return float(np.max(np.abs(self.residuals))) if self.residuals else None

    def depth_at(self, row: np.ndarray | float) -> np.ndarray:
        if self.a is None or self.b is None:
            raise ValueError(f"no depth fit: {self.reason}")
        return self.a + self.b * np.asarray(row, dtype=np.float64)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "flagged": self.flagged, "reason": self.reason, "a": self.a, "b": self.b,
                "interval": self.interval, "n_used": int(sum(self.used)), "rms": self.rms, "max_abs": self.max_abs,
                "residuals": list(self.residuals)}


def parse_value(text: str) -> float | None:
    """A printed depth label's number: digits only (a stray non-digit makes it unreadable)."""
    t = text.strip()
    if not t or not t.isdigit() or len(t) > 6:
        return None
    return float(t)


def fit_depth(rows: np.ndarray, values: np.ndarray, confidence: np.ndarray | None = None, *,
              agree_frac: float = AGREE_FRAC) -> DepthFit:
    """Fit depth = a + b x row to labels (rows, values; NaN value = unreadable). See the module doc.

    Shape: rows (N,), values (N,), confidence (N,) in [0, 1] (None: all 1). Pure; O(N^2) pairs.
    A rejected label read at least as surely as the median used label contradicts the fit:
    the fit is flagged (a reader that misreads one digit the same way on every label, "4" as
    "21", makes a self-consistent wrong line; the one label it read right exposes it).
    """
    rows = np.asarray(rows, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    conf = np.ones_like(rows) if confidence is None else np.asarray(confidence, dtype=np.float64)
    n = rows.size
    readable = np.isfinite(values)
    reasons = ["" if r else "unreadable" for r in readable]
    idx = np.nonzero(readable)[0]
    if idx.size < 2:
        return DepthFit(False, True, f"fewer than two readable depth labels ({idx.size} of {n})", None, None, None,
                        (), tuple([False] * n), tuple(reasons))
    r, v = rows[idx], values[idx]
    order = np.argsort(r)
    spacing = float(np.median(np.diff(r[order]))) if idx.size > 2 else float(abs(r[order][-1] - r[order][0]))
    tol = max(2.0, agree_frac * spacing)
    # every pair (i < j) with distinct rows and a positive slope is a candidate line
    i, j = np.triu_indices(idx.size, 1)
    dr = r[j] - r[i]
    good = np.abs(dr) > tol
    i, j, dr = i[good], j[good], dr[good]
    slope = (v[j] - v[i]) / dr
    pos = slope > 0
    i, j, slope = i[pos], j[pos], slope[pos]
    if slope.size == 0:
        return DepthFit(False, True, "labels contradict each other: no two increase down the page", None, None,
                        None, (), tuple([False] * n), tuple(r_ or "off the fit" for r_ in reasons))
    inter = v[i] - slope * r[i]
    # row residual of every label against every candidate: (n_pairs, n_labels)
    pred_rows = (v[None, :] - inter[:, None]) / slope[:, None]
    agree = np.abs(pred_rows - r[None, :]) <= tol
    support = agree.sum(axis=1)
    best = int(np.argmax(support - 1e-6 * np.abs(pred_rows - r[None, :]).mean(axis=1)))
    inl = agree[best]
    b_, a_ = np.polyfit(r[inl], v[inl], 1) if inl.sum() >= 2 else (slope[best], inter[best])
    res = v[inl] - (a_ + b_ * r[inl])
    used = np.zeros(n, bool)
    used[idx[inl]] = True
    for k in idx[~inl]:
        reasons[k] = "off the fit (misread or not a depth label)"
    n_in, n_read = int(inl.sum()), int(idx.size)
    vin = np.sort(v[inl])
    steps = np.diff(vin)
    interval = float(np.min(steps[steps > 0])) if (steps > 0).any() else None
    flags = []
    if n_in * 2 <= n_read and n_read >= 3:
        return DepthFit(False, True, f"labels contradict each other: the best line holds {n_in} of {n_read} "
                        "readable labels", None, None, interval, (), tuple(used), tuple(reasons))
    if n_in < MIN_VERIFIED:
        flags.append(f"only {n_in} labels agree: fit unverified")
    if interval is not None and steps.size and not np.allclose(steps / interval, np.round(steps / interval), atol=0.02):
        flags.append("labels are not on a common interval")
    if len(set(vin.tolist())) != len(vin):
        flags.append("a depth is printed twice in one section")
    if interval is not None and res.size and np.max(np.abs(res)) > RESIDUAL_FRAC * interval:
        flags.append(f"residual {np.max(np.abs(res)):.3g} > {RESIDUAL_FRAC:g} of the {interval:g} label interval")
    rejected = n_read - n_in
    sure = conf[idx[~inl]] >= np.median(conf[idx[inl]]) - 1e-9
    if sure.any():
        flags.append(f"{int(sure.sum())} label(s) read as surely as the fitted ones disagree with the fit")
    elif rejected:
        flags.append(f"{rejected} readable label(s) rejected")
    # rejected labels alone are not a reason to send a sheet to a person; the others are
    serious = [f for f in flags if "rejected" not in f]
    return DepthFit(True, bool(serious), "; ".join(flags), float(a_), float(b_), interval,
                    tuple(float(x) for x in res), tuple(used), tuple(reasons))


def guess_unit(values: list[float], header_unit: str | None = None, default: str | None = None) -> tuple[str, str]:
    """(unit, where it came from): the header's word, else the user's choice, else FT for labels >= 100."""
    if header_unit:
        return header_unit, "header"
    if default:
        return default, "user"
    if values and np.nanmedian(values) >= 100:
        return "FT", "assumed: labels in the hundreds or thousands"
    return "M", "assumed: small label values"

