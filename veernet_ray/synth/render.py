"""Render one synthetic raster log: image, pixel-exact mask, truth values and sidecar.

`render_sample(seed, index, config)` is a pure function of its arguments: the
RNG is derived from (seed, index), so an image is the same whichever worker
draws it. Drawing order, back to front: paper, grid, text, the lower curve,
the upper curve, then scanner effects.

Value <-> row and depth <-> column go through the sidecar's own classes
(`CurveAxis.row_at`, `DepthAxis.depth_at`): the mapping exists once, and the
mask, the truth LAS and the sidecar agree by construction.

Canonical geometry: the track spans rows t0 (top, the value axis's right edge)
to t1 (bottom, its left edge); track_px = t1 - t0 is one wrap period.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from veernet_ray.las.sidecar import MAX_VALUE, CurveAxis, DepthAxis, Sidecar, Wrap
from veernet_ray.synth import scan
from veernet_ray.synth.las_source import LasPool, RealCurve, pick_window, sample_at
from veernet_ray.synth.signals import CURVE_KINDS, CurveKind, pick_kinds, stochastic_signal, to_band
from veernet_ray.synth.styles import ScanStyle, SynthConfig, uniform

SHIFT = 4  # cv2 fixed-point bits: sub-pixel vertex positions (1/16 px)
MASK_COVERAGE = 128  # anti-aliased coverage (of 255) above which a pixel is ink in the mask
#: a wrapped real curve spans at most this many scale widths: the printed scale and one backup cycle
WRAP_MAX_SPAN = 2.0
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)
ANNOTATIONS = (
    "CASING SHOE", "TD", "REPEAT SECTION", "MAIN PASS", "FLUID LEVEL", "LOG TD", "9 5/8 CSG", "13 3/8 CSG",
    "TIE IN", "RUN 1", "RUN 2", "BIT 8 1/2", "CORE #1", "DST 2", "WASHOUT", "FM TOP", "PERFS", "SHOE @",
    "SCALE CHANGE", "1:200", "1:500", "5 IN = 100 FT", "OH", "LOST CIRC", "UNCORRECTED", "X5", "BACKUP",
)
COMPANIES = ("ANY OIL CO LTD", "PETRO LOG INC", "WIRELINE SERVICES", "NORTHERN LOGGING", "GEO LOG CO", "SURVEY 7")


@dataclass
class Sample:
    """One rendered raster log (canonical orientation).

    image: (H, W) uint8, dark ink on light paper. mask: (H, W) uint8 class ids.
    depth: (W,) depth of each column. values: per curve (class 1, 2) its true
    value at each column, NaN where the curve is absent (not drawn).
    """

    index: int
    image: np.ndarray
    mask: np.ndarray
    sidecar: Sidecar
    depth: np.ndarray
    values: tuple[np.ndarray, np.ndarray]
    units: tuple[str, str]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class _Curve:
    class_id: int
    axis: CurveAxis
    values: np.ndarray  # (W,) truth, NaN = not drawn
    source: str
    u: np.ndarray | None = None


def make_rng(seed: int | np.random.Generator, index: int) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng([int(seed), int(index)])


def render_sample(
    seed: int | np.random.Generator, index: int, config: SynthConfig | None = None, pool: LasPool | None = None
) -> Sample:
    """Draw sample `index` of the dataset with base seed `seed` (or an explicit Generator)."""
    config = config or SynthConfig()
    style = config.style
    rng = make_rng(seed, index)
    h = int(rng.integers(config.height[0], config.height[1] + 1))
    w = int(rng.integers(config.width[0], config.width[1] + 1))
    size = h / 560.0  # 1.0 at the whitepaper's typical height; scales text and grid

    # ---- track layout: optional bands above/below the track (neighbour tracks, depth column)
    m_top = int(h * rng.uniform(0.04, 0.16)) if rng.random() < 0.45 else int(rng.integers(0, 3))
    m_bot = int(h * rng.uniform(0.04, 0.16)) if rng.random() < 0.45 else int(rng.integers(0, 3))
    t0, t1 = m_top, h - 1 - m_bot
    period = float(t1 - t0)

    # ---- plan: crossing, wrap, top curve
    cross = rng.random() < style.p_cross
    wrap_plan = rng.random() < style.p_wrap
    wrap_cid = int(rng.integers(1, 3)) if wrap_plan else 0
    wrap_up = rng.random() < 0.75  # backups usually catch high readings (resistivity, GR)
    on_top = 1 if rng.random() < style.p_curve1_on_top else 2
    bands = _bands(rng, cross)
    if wrap_cid:
        b0, b1 = bands[wrap_cid - 1]
        bands[wrap_cid - 1] = (b0, rng.uniform(1.15, 1.7)) if wrap_up else (rng.uniform(-0.7, -0.15), b1)

    # ---- curve source and depth axis
    use_real = pool is not None and len(pool) > 0 and (
        config.source == "las" or (config.source == "mixed" and rng.random() < config.p_real)
    )
    picked = pick_window(rng, pool, w) if use_real else None
    if picked is not None:
        fname, reals, d0, pitch = picked
        dunit = reals[0].depth_unit
    else:
        fname, reals = "synthetic", []
        dunit = "M" if rng.random() < 0.65 else "FT"
        pitch = rng.uniform(0.01, 0.12) if dunit == "M" else rng.uniform(0.03, 0.4)
        d0 = float(np.round(rng.uniform(30, 3000) / 5) * 5)
        pitch = float(np.round(pitch, 5))
    depth_axis = DepthAxis(dunit, ((0.0, float(d0)), (float(w - 1), float(d0 + (w - 1) * pitch))), step=float(pitch))
    cols = np.arange(w, dtype=np.float64)
    depth = depth_axis.depth_at(cols)

    curves: list[_Curve] = []
    kinds = pick_kinds(rng, 2)
    for i, cid in enumerate((1, 2)):
        real = _real_curve(rng, cid, reals[i], depth, bands[i], (t0, t1), wrap_cid == cid, wrap_up) if i < len(reals) else None
        if real is not None and _printable(real.axis):
            curves.append(real)
        else:  # no real curve, or one whose printed scale no sidecar may hold: a stochastic one instead
            avoid = {c.axis.mnemonic for c in curves}
            kind = kinds[i] if kinds[i].mnemonic not in avoid else kinds[1 - i]
            curves.append(_stochastic_curve(rng, cid, kind, w, bands[i], (t0, t1), size))

    # heavy rules are planned here, from their own stream, so a held reading can sit on one's row
    frng = _side_rng(seed, index, rng, FLAT_STREAM) if style.p_flat > 0 else None
    rules = _plan_heavy_rules(_side_rng(seed, index, rng), t0, t1, style, size) if style.p_heavy_rule > 0 else None
    if frng is not None:
        for c in curves:
            on_rules = (c.axis, rules[0], style.p_flat_on_rule) if rules and style.p_flat_on_rule > 0 else None
            _hold_readings(frng, c.values, style.p_flat, on_rules=on_rules)

    # ---- curve layers
    layers, cores, fades, inks, wraps, rows_wrapped = [], [], [], [], [], []
    styles_meta = _curve_styles(rng, style)
    bitonal = rng.random() < style.p_bitonal
    splice = _splice(rng, w, h, style)  # (x0, x1) of a spliced header block, where no curve is drawn
    for c in curves:
        rows = c.axis.row_at(c.values)
        k = np.where((rows >= t0) & (rows <= t1), 0.0, np.floor((rows - t0) / period))
        if not (wrap_cid == c.class_id):
            # a curve without a backup scale is not drawn off the track (real data only; truth NaN)
            off = np.isfinite(k) & (k != 0)
            c.values[off] = np.nan
            rows[off] = np.nan
            k[off] = 0
        wrapped = rows - k * period
        pattern, width = styles_meta[c.class_id - 1]
        drawn = np.isfinite(rows) & _gap_mask(rng, w, style, size)
        if splice is not None:
            drawn[splice[0] : splice[1]] = False
        on = drawn & _dash_mask(rng, wrapped, pattern, width, size)
        layer, core = _draw_curve(h, w, wrapped, k, on, width, period)
        has_wrap = bool(np.any(k[on] != 0))
        if has_wrap:  # ink of a backup segment stops at the track edges
            layer[: max(t0, 0)] = 0
            layer[t1 + 1 :] = 0
            core[: max(t0, 0)] = 0
            core[t1 + 1 :] = 0
        wraps.append(has_wrap)
        layers.append(layer)
        cores.append(core)
        fades.append(_fade(rng, w, style, size))
        # a 1-bit scan keeps only ink dark enough to survive the threshold
        inks.append(max(uniform(rng, style.curve_ink), 0.85) if bitonal else uniform(rng, style.curve_ink))
        rows_wrapped.append(np.where(on, wrapped, np.nan))

    # ---- mask: the top curve owns the pixels where both have ink
    bottom = 2 if on_top == 1 else 1
    mask = np.zeros((h, w), np.uint8)
    for cid in (bottom, on_top):
        cov = (layers[cid - 1] >= MASK_COVERAGE) | (cores[cid - 1] > 0)
        mask[cov] = cid

    # ---- paper, grid, text, composite
    img = scan.paper(rng, h, w, style)
    grid = _grid_layer(rng, h, w, t0, t1, depth, pitch, curves, style, size)
    text = _text_layer(rng, h, w, t0, t1, depth, pitch, curves, style, size, dunit, splice)
    if grid is not None:
        img *= 1.0 - grid.astype(np.float32) * np.float32(uniform(rng, style.grid_ink) / 255.0)
    if rules:
        _paint_heavy_rules(img, *rules)
    if text is not None:
        img *= 1.0 - text.astype(np.float32) * np.float32(uniform(rng, style.text_ink) / 255.0)
    for cid in (bottom, on_top):
        a = layers[cid - 1].astype(np.float32) * np.float32(inks[cid - 1] / 255.0)
        if fades[cid - 1] is not None:
            a *= fades[cid - 1][None, :]
        img *= 1.0 - a
    img *= 255.0
    image, photo = scan.photometric(rng, img, style, size, bitonal=bitonal)
    image, mask, skew_deg = scan.skew(rng, image, mask, style)
    border = scan.scan_border(rng, image, mask, style)

    crossing = _crosses(rows_wrapped[0], rows_wrapped[1])
    axes = tuple(
        dataclasses.replace(c.axis, wrap=Wrap("backup", 1.0) if wraps[i] else None) for i, c in enumerate(curves)
    )
    sidecar = Sidecar(
        "depth_along_width",
        depth_axis,
        axes,
        extra={"skew_deg": skew_deg, "curve_on_top": on_top, "source": fname},
    )
    meta = {
        "seed": None if isinstance(seed, np.random.Generator) else int(seed),
        "index": int(index),
        "curve1": f"{curves[0].axis.mnemonic}:{curves[0].source}",
        "curve2": f"{curves[1].axis.mnemonic}:{curves[1].source}",
        "curve1_style": "solid:%d" % styles_meta[0][1],
        "curve2_style": "%s:%d" % styles_meta[1],
        "curve_on_top": on_top,
        "wrap": bool(any(wraps)),
        "crossing": bool(crossing),
        "skew_deg": skew_deg,
        "scan_border": bool(border),
        "header_splice": splice is not None,
        **{k: v for k, v in photo.items()},
    }
    return Sample(
        index=int(index),
        image=np.ascontiguousarray(image),
        mask=np.ascontiguousarray(mask),
        sidecar=sidecar,
        depth=depth,
        values=(curves[0].values, curves[1].values),
        units=(curves[0].axis.unit, curves[1].axis.unit),
        source=fname,
        meta=meta,
    )


# ---------------------------------------------------------------- curves
def _bands(rng: np.random.Generator, cross: bool) -> list[tuple[float, float]]:
    """Track fractions each curve's range is mapped to: overlapping (they cross) or split."""
    if cross:
        return [(rng.uniform(0.02, 0.3), rng.uniform(0.7, 0.98)) for _ in range(2)]
    upper = (rng.uniform(0.53, 0.62), rng.uniform(0.85, 0.98))
    lower = (rng.uniform(0.02, 0.15), rng.uniform(0.38, 0.47))
    return [upper, lower] if rng.random() < 0.5 else [lower, upper]


def _axis(cid: int, mnemonic: str, unit: str, scale: str, left: float, right: float, t0: int, t1: int) -> CurveAxis:
    # left edge of the value axis = bottom row t1, right edge = top row t0 (portrait turned CCW)
    return CurveAxis(cid, mnemonic, scale, ((float(t1), float(left)), (float(t0), float(right))), unit)


def _stochastic_curve(rng, cid: int, kind: CurveKind, w: int, band, track, size: float) -> _Curve:
    t0, t1 = track
    left, right = kind.scales[int(rng.integers(len(kind.scales)))]
    axis = _axis(cid, kind.mnemonic, kind.unit, kind.scale, left, right, t0, t1)
    u = to_band(stochastic_signal(rng, w, size), *band)
    rows = t1 - u * (t1 - t0)
    values = axis.value_at(rows)
    return _Curve(cid, axis, values, "synthetic", u)


def _printable(axis: CurveAxis) -> bool:
    """Whether a scale chosen for a real curve lies within the sidecar's bounds (`las.sidecar.MAX_VALUE`).
    A well whose curve holds an undeclared sentinel (kennetcook2_P-129.las: RLA2 at 100,000 over a
    stretch, from 0.004) can stretch a narrow band's log scale to 21 decades, 1e-4 to 1e17, which the
    sidecar refuses: seed 13's sample 574 stopped `veernet synth`. Every scale within the bounds is
    kept as it was, so datasets generated before are unchanged."""
    return all(abs(float(v)) <= MAX_VALUE for _, v in axis.ref)


def _nice(x: float) -> float:
    e = np.floor(np.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**e >= x:
            return float(m * 10**e)
    return float(10 ** (e + 1))


def _real_curve(rng, cid: int, real: RealCurve, depth, band, track, wrap: bool, wrap_up: bool) -> _Curve:
    """Choose a printed scale for a real curve's window so its values land in `band` of the track."""
    t0, t1 = track
    v = sample_at(real, depth)
    is_log = real.log_scale
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.log10(np.where(v > 0, v, np.nan)) if is_log else v.copy()
    fin = np.isfinite(c)
    q1, q99 = np.percentile(c[fin], [1, 99])
    spread = max(q99 - q1, 1e-6)
    bad = fin & ((c < q1 - 0.3 * spread) | (c > q99 + 0.3 * spread))  # despike garbage readings
    c[bad] = np.nan
    v = np.where(np.isfinite(c), v, np.nan)
    fin = np.isfinite(c)
    lo_d, hi_d = float(np.min(c[fin])), float(np.max(c[fin]))
    if hi_d - lo_d < 1e-9:
        hi_d = lo_d + 1.0
    b0, b1 = band
    if wrap:
        # the printed scale ends inside the data range, so readings beyond it back up; on a
        # heavy-tailed window the percentile can leave the extreme many scale widths beyond it
        # (25 backup cycles were seen), which no printed log does: the scale end moves out until
        # the extreme lies within WRAP_MAX_SPAN scale widths of the scale's other end
        span_d = hi_d - lo_d
        if wrap_up:
            hi_s = float(np.percentile(c[fin], rng.uniform(70, 92)))
            hi_s = max(hi_s, lo_d + span_d * (1 - b0) / (WRAP_MAX_SPAN - b0))
            lo_s = lo_d - b0 * (hi_s - lo_d) / max(1 - b0, 1e-3)
        else:
            lo_s = float(np.percentile(c[fin], rng.uniform(8, 30)))
            lo_s = min(lo_s, hi_d - span_d * b1 / (b1 + WRAP_MAX_SPAN - 1))
            hi_s = hi_d + (1 - b1) * (hi_d - lo_s) / max(b1, 1e-3)
    else:
        span = (hi_d - lo_d) / max(b1 - b0, 0.05)
        lo_s = lo_d - b0 * span
        hi_s = lo_s + span
    if is_log:
        if not wrap:
            lo_s, hi_s = np.floor(lo_s), np.ceil(hi_s)
        else:
            lo_s, hi_s = np.round(lo_s * 2) / 2, np.round(hi_s * 2) / 2
        if hi_s - lo_s < 1:
            hi_s = lo_s + 1
        left, right = 10.0**lo_s, 10.0**hi_s
    else:
        step = _nice((hi_s - lo_s) / 10)
        if not wrap:
            lo_s, hi_s = np.floor(lo_s / step) * step, np.ceil(hi_s / step) * step
        else:
            lo_s, hi_s = np.round(lo_s / step) * step, np.round(hi_s / step) * step
        if hi_s <= lo_s:
            hi_s = lo_s + step
        left, right = float(lo_s), float(hi_s)
        # porosity and sonic are printed increasing to the left
        if real.mnemonic.startswith(("NPHI", "DPHI", "PHI", "DT", "AC")) or rng.random() < 0.1:
            left, right = right, left
    axis = _axis(cid, real.mnemonic, real.unit, "log" if is_log else "linear", left, right, t0, t1)
    return _Curve(cid, axis, v.astype(np.float64), real.file)


def _curve_styles(rng, style: ScanStyle) -> list[tuple[str, int]]:
    """[(pattern, width)] for curve 1 (always solid) and curve 2 (dashed, dotted, dash-dot or thinner)."""
    w1 = int(rng.integers(style.curve1_width[0], style.curve1_width[1] + 1))
    pattern = str(style.curve2_patterns[int(rng.integers(len(style.curve2_patterns)))])
    if pattern == "solid_thin" and w1 <= 1:
        pattern = "dashed"  # "thinner" needs room below curve 1's width
    if pattern == "solid_thin":
        w2 = int(rng.integers(1, w1))
    else:
        w2 = int(rng.integers(style.curve2_width[0], style.curve2_width[1] + 1))
    return [("solid", w1), (pattern, w2)]


def _dash_mask(rng, rows: np.ndarray, pattern: str, width: int, size: float) -> np.ndarray:
    n = rows.size
    if pattern in ("solid", "solid_thin"):
        return np.ones(n, bool)
    s = max(size, 0.35)
    if pattern == "dashed":
        cycle = [rng.uniform(6, 20) * s + width, rng.uniform(3, 10) * s + width]
    elif pattern == "long_dashed":
        cycle = [rng.uniform(20, 60) * s + width, rng.uniform(6, 16) * s + width]
    elif pattern == "dotted":
        cycle = [rng.uniform(0.5, 2.0) + width, rng.uniform(2.0, 6.0) * s + width]
    elif pattern == "short_stroke":  # backup traces drawn as short strokes
        cycle = [rng.uniform(2.0, 5.0) * s + width, rng.uniform(2.0, 5.0) * s + width]
    elif pattern == "dash_dot_dot":  # held-out family only (styles.TRAIN_CURVE2_PATTERNS)
        gap = rng.uniform(3, 7) * s + width
        dot = rng.uniform(0.5, 2.0) + width
        cycle = [rng.uniform(12, 30) * s + width, gap, dot, gap, dot, gap]
    elif pattern == "paired_dots":  # validation families only (styles.VAL_FAMILIES)
        dot = rng.uniform(0.5, 2.0) + width
        cycle = [dot, rng.uniform(1.5, 3.0) * s + width, dot, rng.uniform(8, 16) * s + width]
    else:  # dash_dot
        gap = rng.uniform(3, 8) * s + width
        cycle = [rng.uniform(10, 30) * s + width, gap, rng.uniform(0.5, 2.0) + width, gap]
    dr = np.diff(np.nan_to_num(rows, nan=0.0), prepend=0.0)
    dr[~np.isfinite(rows)] = 0
    arc = np.cumsum(np.sqrt(1.0 + np.minimum(dr * dr, 1e6)))
    bounds = np.cumsum(cycle)
    phase = (arc + rng.uniform(0, bounds[-1])) % bounds[-1]
    seg = np.searchsorted(bounds, phase, side="right")
    return seg % 2 == 0


def _gap_mask(rng, w: int, style: ScanStyle, size: float) -> np.ndarray:
    """True where the pen drew; ink skips are short stretches of False."""
    ok = np.ones(w, bool)
    if rng.random() < style.p_gaps:
        for _ in range(int(rng.integers(1, 2 + w // 1500))):
            a = int(rng.integers(0, w))
            ok[a : a + int(rng.uniform(3, 40) * max(size, 0.4))] = False
    return ok


def _splice(rng, w: int, h: int, style: ScanStyle) -> tuple[int, int] | None:
    """Column range of a header block spliced into the strip (no curve there), or None."""
    if rng.random() >= style.p_header_splice or w < 4 * h:
        return None
    span = int(h * rng.uniform(0.4, 1.2))
    x0 = int(rng.integers(w // 8, max(w // 8 + 1, w - span - w // 8)))
    return x0, x0 + span


def _fade(rng, w: int, style: ScanStyle, size: float) -> np.ndarray | None:
    if rng.random() >= style.p_fade:
        return None
    n = w // 64 + 2
    low = rng.random(n).astype(np.float32)
    f = np.interp(np.arange(w) / 64.0, np.arange(n), low).astype(np.float32)
    return 1.0 - np.float32(uniform(rng, style.fade_strength)) * f


def _draw_curve(h: int, w: int, rows: np.ndarray, k: np.ndarray, on: np.ndarray, width: int, period: float):
    """Anti-aliased ink coverage (uint8) and an 8-connected 1-px core line (for the mask).

    Pieces are runs of drawn points in one wrap cycle; each run is extended by
    its next point (so dashes end where they should and a segment leaving the
    track reaches the edge) and, where it enters from another cycle, by its
    previous point shifted into this cycle (so it comes in from the edge).
    """
    layer = np.zeros((h, w), np.uint8)
    core = np.zeros((h, w), np.uint8)
    if not on.any():
        return layer, core
    period_rows = np.nan_to_num(rows)  # wrapped rows (finite where `on`)
    # unwrapped-per-cycle helper: row of point j seen from cycle kk = wrapped[j] + (k[j] - kk) * P
    key = np.where(on, k, np.nan)
    brk = np.ones(w + 1, bool)
    brk[1:w] = (key[1:] != key[:-1]) | ~on[1:] | ~on[:-1]
    starts = np.flatnonzero(brk[:-1] & on)
    ends = np.flatnonzero(brk[1:] & on)
    finite = np.isfinite(rows)
    pieces = []
    for a, b in zip(starts, ends):
        kk = k[a]
        lo = a - 1 if a > 0 and finite[a - 1] and k[a - 1] != kk else a
        hi = b + 1 if b + 1 < w and finite[b + 1] else b
        idx = np.arange(lo, hi + 1)
        y = period_rows[idx] + (k[idx] - kk) * period
        pts = np.stack([idx * (1 << SHIFT), np.round(y * (1 << SHIFT))], axis=1).astype(np.int32)
        pieces.append(pts.reshape(-1, 1, 2))
    cv2.polylines(layer, pieces, False, 255, thickness=int(width), lineType=cv2.LINE_AA, shift=SHIFT)
    cv2.polylines(core, pieces, False, 255, thickness=1, lineType=cv2.LINE_8, shift=SHIFT)
    return layer, core


def _crosses(r1: np.ndarray, r2: np.ndarray) -> bool:
    both = np.isfinite(r1) & np.isfinite(r2)
    if both.sum() < 2:
        return False
    d = np.sign(r1[both] - r2[both])
    d = d[d != 0]
    return bool(d.size > 1 and np.any(d[1:] != d[:-1]))


# ---------------------------------------------------------------- grid and text
#: the side stream's third seed word: draws added after a dataset's scans were fixed come from
#: their own stream, so a knob at 0 leaves those scans byte for byte as they were
SIDE_STREAM = 7919
FLAT_STREAM = 7927


def _side_rng(seed, index: int, rng: np.random.Generator, stream: int = SIDE_STREAM) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):  # an explicit generator: a child stream (spawning draws nothing)
        return rng.spawn(1)[0]
    return np.random.default_rng([int(seed), int(index), stream])


def _hold_readings(rng: np.random.Generator, values: np.ndarray, p: float, on_rules=None) -> None:
    """With probability p, one to three stretches (4-30% of the depth each) where the curve holds one
    reading, in place: the reading it had on entering the stretch (a pen at rest, a tool pegged) or,
    a third of the time, another of its readings (a step to a casing or baseline level). Columns the
    curve does not cover stay NaN; the truth is the held reading, so mask, truth and sidecar agree.

    `on_rules` = (axis, rule rows, q): the scan has heavy rules along the depth, and each stretch sits,
    with probability q, on one of their rows within the curve's own range of rows: the curve runs on
    the rule there (curve in the mask) and the rule beyond it stays background, the one difference a
    model must learn between the two straight lines. No draw is made for it on a scan without rules
    or with q 0."""
    if rng.random() >= p:
        return
    w = values.size
    fin = np.flatnonzero(np.isfinite(values))
    if fin.size == 0:
        return
    own = np.array([], float)  # rule rows within the curve's own range of rows: a hold there adds no crossing
    if on_rules is not None:
        span = on_rules[0].row_at(values[fin])
        span = span[np.isfinite(span)]
        rows = np.asarray(on_rules[1], float)
        own = rows[(rows >= span.min()) & (rows <= span.max())] if span.size else own
    for _ in range(int(rng.integers(1, 4))):
        length = max(2, int(rng.uniform(0.04, 0.3) * w))
        x0 = int(rng.integers(0, max(1, w - length)))
        seg = values[x0 : x0 + length]
        on = np.isfinite(seg)
        if not on.any():
            continue
        level = seg[on][0] if rng.random() >= 1 / 3 else values[fin[int(rng.integers(fin.size))]]
        if on_rules is not None and own.size and rng.random() < on_rules[2]:
            at = float(on_rules[0].value_at(float(own[int(rng.integers(own.size))])))
            level = at if np.isfinite(at) else level
        seg[on] = level


def _plan_heavy_rules(rng: np.random.Generator, t0: int, t1: int, style: ScanStyle, size: float):
    """Rules along the depth as heavy and dark as a pen: with p_heavy_rule, one or two across the track
    (the middle, a quarter, or anywhere) and, half the time, the track's borders as heavily. Returns
    (rows, width px, ink 0-1), or None for a scan without them."""
    if rng.random() >= style.p_heavy_rule:
        return None
    width = max(2, int(round(rng.uniform(2.0, 6.0) * max(size, 0.4))))
    ink = np.float32(rng.uniform(0.6, 1.0))
    rows = []
    for _ in range(int(rng.integers(1, 3))):
        f = float(rng.choice([0.5, 0.25, 0.75, rng.uniform(0.1, 0.9)]))
        rows.append(int(round(t0 + f * (t1 - t0))))
    if rng.random() < 0.5:
        rows += [t0, t1]
    return rows, width, ink


def _paint_heavy_rules(img: np.ndarray, rows: list[int], width: int, ink: np.float32) -> None:
    """Draw planned rules into `img` (paper 1.0) under the curves; the mask keeps them background."""
    h = img.shape[0]
    for y in rows:
        a, b = max(0, y - width // 2), min(h, y + (width + 1) // 2)
        img[a:b, :] *= 1.0 - ink


def _grid_layer(rng, h, w, t0, t1, depth, pitch, curves, style: ScanStyle, size: float) -> np.ndarray | None:
    layer = np.zeros((h, w), np.uint8)
    drew = False
    full = rng.random() < 0.3  # grid also runs through the margins (neighbour tracks)
    r0, r1 = (0, h) if full else (t0, t1 + 1)
    if rng.random() < style.p_grid:
        drew = True
        spacing = max(4.0, uniform(rng, style.grid_spacing_px) * max(size, 0.3))
        dm = _nice(spacing * pitch)
        n_major = int(rng.choice([2, 5, 5, 10]))
        minor = rng.random() < style.p_minor_grid
        minor_level = int(rng.uniform(90, 220))
        major_w = int(rng.integers(1, 3 + int(size > 0.6)))
        first = np.ceil(depth[0] / dm)
        ticks = np.arange(first, np.floor(depth[-1] / dm) + 1)
        xs = np.round((ticks * dm - depth[0]) / pitch).astype(int)
        is_major = np.mod(ticks, n_major) == 0
        vg = np.zeros((h, w), np.uint8)
        for x, maj in zip(xs, is_major):
            if maj:
                vg[r0:r1, max(0, x - major_w // 2) : x + (major_w + 1) // 2] = 255
            elif minor:
                vg[r0:r1, x] = np.maximum(vg[r0:r1, x], minor_level)
        # value grid: log decades if a curve is log (or by chance), else linear divisions
        hg = np.zeros((h, w), np.uint8)
        logs = [c for c in curves if c.axis.scale == "log"]
        if (logs and rng.random() < 0.8) or rng.random() < style.p_log_grid:
            if logs:
                (_, vl), (_, vr) = logs[0].axis.ref
                n_dec = int(round(abs(np.log10(vr) - np.log10(vl))))
            else:
                n_dec = int(rng.integers(2, 5))
            n_dec = min(max(n_dec, 1), 5)
            fr = [(d + np.log10(m), m == 1) for d in range(n_dec) for m in range(1, 10)] + [(n_dec, True)]
            fr = [(f / n_dec, maj) for f, maj in fr]
        else:
            n_div = int(rng.choice([4, 5, 10, 10, 8]))
            maj_every = 5 if n_div == 10 and rng.random() < 0.5 else 1
            fr = [(i / n_div, i % maj_every == 0) for i in range(n_div + 1)]
        for f, maj in fr:
            y = int(round(t1 - f * (t1 - t0)))
            if maj:
                hg[max(0, y - major_w // 2) : y + (major_w + 1) // 2, :] = 255
            elif minor:
                hg[y, :] = np.maximum(hg[y, :], minor_level)
        if rng.random() < style.p_dashed_grid:
            on, off = rng.uniform(2, 8), rng.uniform(2, 8)
            hg = (hg * ((np.arange(w) % (on + off)) < on)[None, :]).astype(np.uint8)
            vg = (vg * ((np.arange(h) % (on + off)) < on)[:, None]).astype(np.uint8)
        np.maximum(vg, hg, out=layer)
    if rng.random() < style.p_track_border:
        drew = True
        bw = int(rng.integers(1, 3 + int(size > 0.6)))
        for y in (t0, t1):
            layer[max(0, y - bw // 2) : y + (bw + 1) // 2 + (bw == 1), :] = 255 if bw > 1 else 255
        for y in (0, h - 1):  # neighbour track edges at the strip's own edges
            if rng.random() < 0.25 and abs(y - t0) > 4 and abs(y - t1) > 4:
                layer[max(0, y - 1) : y + 1, :] = 255
    return layer if drew else None


def _text_patch(rng, text: str, px: float, font: int, thick: int) -> np.ndarray:
    base = cv2.getTextSize("0", font, 1.0, 1)[0][1]
    scale = max(px / max(base, 1), 0.25)
    (tw, th), bl = cv2.getTextSize(text, font, scale, thick)
    patch = np.zeros((th + bl + 4, tw + 4), np.uint8)
    cv2.putText(patch, text, (2, th + 2), font, scale, 255, thick, cv2.LINE_AA)
    return patch


def _paste(layer: np.ndarray, patch: np.ndarray, y: int, x: int) -> None:
    h, w = layer.shape
    ph, pw = patch.shape
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + ph, h), min(x + pw, w)
    if y1 <= y0 or x1 <= x0:
        return
    sub = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    np.maximum(layer[y0:y1, x0:x1], sub, out=layer[y0:y1, x0:x1])


def _text_layer(rng, h, w, t0, t1, depth, pitch, curves, style: ScanStyle, size: float, dunit: str, splice=None):
    layer = np.zeros((h, w), np.uint8)
    drew = False
    font = int(FONTS[int(rng.integers(len(FONTS)))]) | (cv2.FONT_ITALIC if rng.random() < 0.15 else 0)
    thick = 1 if size < 0.6 or rng.random() < 0.6 else 2
    px = max(6.0, rng.uniform(10, 26) * size * rng.uniform(0.8, 1.6))
    rotated = rng.random() < 0.6  # portrait text turned with the log reads bottom-to-top
    if splice is not None:
        # a repeated header spliced in: lines of text across the whole height, a rule on each side
        drew = True
        x0, x1 = splice
        layer[:, x0 : x0 + 2] = 255
        layer[:, max(x0, x1 - 2) : x1] = 255
        x = x0 + 6
        while x < x1 - px:
            words = [COMPANIES[int(rng.integers(len(COMPANIES)))], ANNOTATIONS[int(rng.integers(len(ANNOTATIONS)))]]
            patch = np.ascontiguousarray(np.rot90(_text_patch(rng, "  ".join(words), px * rng.uniform(0.6, 1.1), font, thick), 1))
            _paste(layer, patch, int(rng.integers(0, max(1, h - patch.shape[0]))), x)
            x += patch.shape[1] + int(px * 0.4)
    if rng.random() < style.p_formation_tops:
        # formation tops: a line across the track at a depth and a (often handwritten) name beside it
        drew = True
        hand = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX if rng.random() < 0.6 else font
        for _ in range(int(rng.integers(1, 3 + w // 4000))):
            x = int(rng.integers(0, w))
            if rng.random() < 0.5:
                on = (np.arange(h) % int(rng.integers(4, 12))) < 3
                layer[on, x] = 255
            else:
                layer[:, x] = 255
            name = str(rng.choice(["TOP", "BASE", "FM", ""])) + " " + str(rng.choice(
                ["MISS LIME", "VIOLA", "ARBUCKLE", "KINDERHOOK", "CHESTER", "WOLFCAMP", "PENN", "SHALE", "SAND A"]))
            patch = _text_patch(rng, name.strip(), px * rng.uniform(0.7, 1.3), hand, thick)
            if rng.random() < 0.7:
                patch = np.ascontiguousarray(np.rot90(patch, 1))
            _paste(layer, patch, int(rng.integers(t0, max(t0 + 1, t1 - patch.shape[0]))), x + 3)
    if rng.random() < style.p_depth_numbers:
        drew = True
        interval = _nice(rng.uniform(150, 600) * max(size, 0.3) * pitch)
        ticks = np.arange(np.ceil(depth[0] / interval), np.floor(depth[-1] / interval) + 1) * interval
        band_top = t0 >= px + 4
        band_bot = (h - 1 - t1) >= px + 4
        place = "top" if band_top and (not band_bot or rng.random() < 0.5) else ("bottom" if band_bot else "inside")
        inside_edge = rng.random() < 0.5
        tick_len = int(rng.uniform(3, 12) * max(size, 0.4))
        for d in ticks:
            x = int(round((d - depth[0]) / pitch))
            label = f"{d:.0f}" if interval >= 1 else f"{d:g}"
            patch = _text_patch(rng, label, px, font, thick)
            if rotated:
                patch = np.ascontiguousarray(np.rot90(patch, 1))
            ph, pw = patch.shape
            if place == "top":
                y = max(0, t0 - ph - 2)
            elif place == "bottom":
                y = min(h - ph, t1 + 3)
            else:
                y = t0 + 3 if inside_edge else t1 - ph - 3
            _paste(layer, patch, y, x - pw // 2 if not rotated else x + 3)
            if rng.random() < 0.7:  # depth tick on the track edge
                layer[t0 : t0 + tick_len, x] = 255
                layer[t1 - tick_len + 1 : t1 + 1, x] = 255
    if rng.random() < style.p_text:
        drew = True
        # scale labels near the top of the log (column 0 side): left value at the bottom, right value at the top
        x = int(rng.integers(2, max(3, int(w * 0.05))))
        for c in curves:
            (_, vl), (_, vr) = c.axis.ref
            for txt, at_top in ((f"{vl:g}", False), (f"{vr:g}", True), (f"{c.axis.mnemonic} {c.axis.unit}".strip(), None)):
                patch = _text_patch(rng, txt, px * rng.uniform(0.7, 1.0), font, thick)
                if rotated:
                    patch = np.ascontiguousarray(np.rot90(patch, 1))
                ph, pw = patch.shape
                y = t0 + 2 if at_top else (t1 - ph - 2 if at_top is False else (t0 + t1 - ph) // 2)
                _paste(layer, patch, y, x)
            x += int(px * 1.6) + 2
        # free annotations and a header line
        for _ in range(int(rng.integers(0, 3 + w // 3000))):
            words = [ANNOTATIONS[int(rng.integers(len(ANNOTATIONS)))]]
            if rng.random() < 0.4:
                words.append(f"{rng.uniform(depth[0], depth[-1]):.0f}{' M' if dunit == 'M' else ' FT'}")
            if rng.random() < 0.2:
                words = [COMPANIES[int(rng.integers(len(COMPANIES)))]]
            patch = _text_patch(rng, " ".join(words), px * rng.uniform(0.6, 1.3), font, thick)
            if rng.random() < 0.5:
                patch = np.ascontiguousarray(np.rot90(patch, 1))
            ph, pw = patch.shape
            _paste(layer, patch, int(rng.integers(0, max(1, h - ph))), int(rng.integers(0, max(1, w - pw))))
    return layer if drew else None
