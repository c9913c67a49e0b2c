"""Typed generator configuration: geometry presets, scan-realism knobs, curve style pools.

Every knob is a probability (0..1: how often an effect happens) or a
(min, max) strength range sampled per image. The model is later judged on
real scans drawn in styles this generator never produced, so the defaults
vary everything widely; tests turn single knobs to 0 or 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Geometry presets: (width range, height range) in pixels. `seed` is the
#: whitepaper's scan size; `demo` is the same shapes ~5x smaller (heights stay
#: >= 64 so the 32x-downsampling model still sees two cells of track).
PRESETS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "seed": ((3200, 12800), (480, 640)),
    "demo": ((640, 2560), (96, 128)),
}
MIN_HEIGHT = 64
MIN_WIDTH = 64
MAX_SIDE = 100_000

SOURCES = ("stochastic", "las", "mixed")

#: Curve-2 dash patterns in pixels of arc length: (on, off, on, off...) cycles.
#: Curve 1 is always solid (docs/contracts.md section 1: identity is visible).
CURVE2_PATTERNS = ("solid_thin", "dashed", "long_dashed", "dotted", "dash_dot", "short_stroke", "dash_dot_dot",
                   "paired_dots")
#: What training data draws by default: every pattern except `dash_dot_dot`, which only the
#: held-out style families use (leave-style-out evaluation), and `paired_dots`, which only the
#: validation families use (choices about unseen styles are made there, never on the held-out set).
TRAIN_CURVE2_PATTERNS = ("solid_thin", "dashed", "long_dashed", "dotted", "dash_dot", "short_stroke")


class SynthConfigError(ValueError):
    """A generator setting that cannot work; the message says which and why."""


@dataclass(frozen=True)
class ScanStyle:
    """Scan-realism knobs. p_* are per-image probabilities; (lo, hi) tuples are ranges."""

    # curves
    curve1_width: tuple[int, int] = (1, 6)  # very bold pens included
    curve2_width: tuple[int, int] = (1, 4)  # drawn <= curve 1 when the pattern is solid_thin
    curve2_patterns: tuple[str, ...] = TRAIN_CURVE2_PATTERNS
    curve_ink: tuple[float, float] = (0.55, 0.97)  # darkness of curve ink (1 = black)
    p_curve1_on_top: float = 0.5
    p_wrap: float = 0.25  # backup (wrap-around) segments drawn
    p_cross: float = 0.5  # the two curves share the track and cross
    p_fade: float = 0.35  # slowly varying faded ink along depth
    fade_strength: tuple[float, float] = (0.2, 0.6)
    p_gaps: float = 0.25  # ink skips: short stretches where the pen did not draw
    # a curve holding one reading over stretches of the depth (a tool pegged or in casing, a pen at rest,
    # a flat baseline): a straight line along the depth, as a grid line is. The training wells almost never
    # hold a reading (bench/RESULTS.md, "Flat stretches"); drawn from its own random stream, so 0 leaves
    # every scan as it was
    p_flat: float = 0.25
    # on a scan with heavy rules (below), a held stretch sits on a rule's row this often: the curve runs
    # on the rule for a while and leaves it, where a rule alone is background (bench/RESULTS.md, "Held
    # readings on a rule"). 0 by default, so the evaluation sets stay as they were drawn; stage 13's
    # data set it with --style
    p_flat_on_rule: float = 0.0
    # grid and annotation
    p_grid: float = 0.85
    p_minor_grid: float = 0.7
    p_log_grid: float = 0.3  # log-decade value grid even when the curves are linear
    grid_ink: tuple[float, float] = (0.12, 0.9)  # up to darker than the faintest curve ink
    grid_spacing_px: tuple[float, float] = (8.0, 60.0)  # minor depth-line spacing at seed size
    p_dashed_grid: float = 0.12
    p_track_border: float = 0.8
    # a rule along the depth as heavy and dark as a pen (2-6 px at seed size, 0.6-1.0 ink): a mid-track
    # rule, or borders drawn as heavily, as on real sheets (bench/RESULTS.md, "The shipped model's
    # curves on a real sheet"); drawn from its own random stream, so 0 leaves every scan as it was
    p_heavy_rule: float = 0.2
    p_depth_numbers: float = 0.8
    p_text: float = 0.6  # header block, scale labels, annotations
    p_formation_tops: float = 0.3  # lines across the track with a (handwritten) formation name
    p_header_splice: float = 0.1  # a header block spliced into the strip: curves stop, text instead
    text_ink: tuple[float, float] = (0.4, 0.95)
    # paper and scanner
    paper_tone: tuple[float, float] = (0.72, 0.99)  # 1 = white
    p_paper_texture: float = 0.7
    texture_strength: tuple[float, float] = (0.005, 0.045)
    p_stain: float = 0.2
    p_banding: float = 0.3  # scanner gain stripes along rows/columns
    noise_sigma: tuple[float, float] = (0.0, 12.0)  # grey levels
    p_dust: float = 0.3
    p_blur: float = 0.4
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    p_jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (25, 90)
    p_skew: float = 0.2
    max_skew_deg: float = 0.1
    p_scan_border: float = 0.2
    p_blotch: float = 0.15  # ink blots and scan blotches (dark, irregular)
    p_fold: float = 0.15  # fold lines across the strip (a dark or light band along the value axis)
    p_speckle: float = 0.25  # salt-and-pepper speckle
    p_halftone: float = 0.1  # a halftone dot screen over the paper
    p_low_contrast: float = 0.15  # faded scan: the whole range compressed
    low_contrast: tuple[float, float] = (0.35, 0.7)  # remaining share of the grey range
    p_bitonal: float = 0.25  # 1-bit scan: thresholded after the noise
    bitonal_threshold: tuple[float, float] = (0.35, 0.7)  # threshold as a share between ink and paper

    def validate(self) -> "ScanStyle":
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("p_") and not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise SynthConfigError(f"style.{f.name} must be a probability in [0, 1], got {v!r}")
            if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and v[0] > v[1]:
                raise SynthConfigError(f"style.{f.name} range must be (min, max) with min <= max, got {v!r}")
        for name in ("curve1_width", "curve2_width"):
            lo, hi = getattr(self, name)
            if lo < 1 or hi > 8:
                raise SynthConfigError(f"style.{name} must lie in 1..8 px, got {(lo, hi)}")
        if not (0.0 < self.low_contrast[0] and self.low_contrast[1] <= 1.0):
            raise SynthConfigError(f"style.low_contrast must lie in (0, 1], got {self.low_contrast}")
        bad = [p for p in self.curve2_patterns if p not in CURVE2_PATTERNS]
        if bad or not self.curve2_patterns:
            raise SynthConfigError(f"style.curve2_patterns: unknown {bad}; valid: {CURVE2_PATTERNS}")
        if not 0.0 <= self.max_skew_deg <= 5.0:
            raise SynthConfigError(f"style.max_skew_deg must be in [0, 5], got {self.max_skew_deg}")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScanStyle":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SynthConfigError(f"unknown style keys {unknown}; valid: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}).validate()

    def replace(self, **changes: Any) -> "ScanStyle":
        return dataclasses.replace(self, **changes).validate()


@dataclass(frozen=True)
class SynthConfig:
    """What one image is drawn from: geometry ranges, curve source mix and scan style."""

    width: tuple[int, int] = PRESETS["demo"][0]
    height: tuple[int, int] = PRESETS["demo"][1]
    source: str = "stochastic"
    p_real: float = 0.5  # share of LAS-sourced samples when source == "mixed"
    style: ScanStyle = field(default_factory=ScanStyle)

    def validate(self) -> "SynthConfig":
        check_range("width", self.width, MIN_WIDTH)
        check_range("height", self.height, MIN_HEIGHT)
        if self.source not in SOURCES:
            raise SynthConfigError(f"source must be one of {SOURCES}, got {self.source!r}")
        if not 0.0 <= self.p_real <= 1.0:
            raise SynthConfigError(f"p_real must be in [0, 1], got {self.p_real}")
        self.style.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_preset(
        cls,
        preset: str = "demo",
        *,
        width: tuple[int, int] | None = None,
        height: tuple[int, int] | None = None,
        source: str = "stochastic",
        style: ScanStyle | None = None,
    ) -> "SynthConfig":
        if preset not in PRESETS:
            raise SynthConfigError(f"unknown preset {preset!r}; valid presets: {sorted(PRESETS)}")
        w, h = PRESETS[preset]
        return cls(
            width=tuple(width) if width is not None else w,
            height=tuple(height) if height is not None else h,
            source=source,
            style=style or ScanStyle(),
        ).validate()


def check_range(name: str, rng: Any, minimum: int) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in rng)
        if [lo, hi] != [float(x) for x in rng]:
            raise ValueError
    except (TypeError, ValueError):
        raise SynthConfigError(f"{name} must be two integers MIN,MAX, got {rng!r}") from None
    if lo > hi:
        raise SynthConfigError(f"{name} range {lo},{hi}: MIN must not exceed MAX")
    if lo < minimum or hi > MAX_SIDE:
        raise SynthConfigError(f"{name} range {lo},{hi} must lie within {minimum}..{MAX_SIDE} px")
    return lo, hi


def parse_range(text: str, name: str) -> tuple[int, int]:
    """'MIN,MAX' or a single 'N' (fixed size) -> (min, max)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise SynthConfigError(f"--{name} must be MIN,MAX in whole pixels, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2:
        raise SynthConfigError(f"--{name} must be MIN,MAX, got {text!r}")
    return vals[0], vals[1]


def uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


#: LAS files whose curves only the held-out families draw: training never reads them
#: (`veernet synth --las-dir` skips them unless a held-out family asks for them).
HELDOUT_LAS = ("scorpio_E1_6038187.las",)

#: Style families (one registry, STYLE practice 2). `train` is what training sets are drawn in.
#: The `heldout-*` families are for leave-style-out evaluation only: each pairs the curve-2
#: pattern no training style uses (`dash_dot_dot`) with a grid, ink and noise combination the
#: training mix draws rarely or never, and their real curves come from `HELDOUT_LAS`.
STYLE_FAMILIES: dict[str, ScanStyle] = {
    "train": ScanStyle(),
    # dense dashed log-decade grid, medium-dark, yellowed paper, JPEG blocking
    "heldout-dashgrid": ScanStyle(
        p_heavy_rule=0.0, p_flat=0.0,  # drawn after these families were fixed: they stay as they were
        curve1_width=(2, 3), curve2_width=(1, 2), curve2_patterns=("dash_dot_dot",), curve_ink=(0.75, 0.95),
        p_grid=1.0, p_minor_grid=1.0, p_log_grid=1.0, p_dashed_grid=1.0, grid_ink=(0.45, 0.7),
        grid_spacing_px=(8.0, 14.0), paper_tone=(0.8, 0.9), p_jpeg=1.0, jpeg_quality=(30, 50),
        p_bitonal=0.0, p_low_contrast=0.0, p_halftone=0.0, noise_sigma=(3.0, 6.0),
    ),
    # 1-bit photocopy: bold pens, speckle, halftone, thresholded after noise
    "heldout-bitonal": ScanStyle(
        p_heavy_rule=0.0, p_flat=0.0,  # drawn after these families were fixed: they stay as they were
        curve1_width=(3, 5), curve2_width=(2, 3), curve2_patterns=("dash_dot_dot",), curve_ink=(0.85, 1.0),
        p_grid=1.0, grid_ink=(0.3, 0.6), p_bitonal=1.0, bitonal_threshold=(0.4, 0.6), p_speckle=1.0,
        p_halftone=0.5, p_jpeg=0.0, noise_sigma=(6.0, 12.0), p_low_contrast=0.0,
    ),
    # faded: low contrast, faded thin ink under a grid darker than the curves, blur
    "heldout-faded": ScanStyle(
        p_heavy_rule=0.0, p_flat=0.0,  # drawn after these families were fixed: they stay as they were
        curve1_width=(1, 2), curve2_width=(1, 2), curve2_patterns=("dash_dot_dot",), curve_ink=(0.55, 0.75),
        p_fade=1.0, fade_strength=(0.2, 0.4), p_grid=1.0, grid_ink=(0.75, 0.9), p_low_contrast=1.0,
        low_contrast=(0.5, 0.7), p_blur=1.0, blur_sigma=(0.5, 0.9), p_bitonal=0.0, p_jpeg=0.0,
        noise_sigma=(2.0, 5.0),
    ),
    # plain: what issue 11's first measurement used, where the classical tracers do well: a solid
    # curve 1, a broken curve 2, a light regular depth grid, JPEG; no wraps, fades, gaps or clutter
    "heldout-plain": ScanStyle(
        p_heavy_rule=0.0, p_flat=0.0,  # drawn after these families were fixed: they stay as they were
        curve1_width=(2, 3), curve2_width=(1, 2), curve2_patterns=("dash_dot_dot",), curve_ink=(0.8, 0.95),
        p_wrap=0.0, p_fade=0.0, p_gaps=0.0, p_grid=1.0, p_minor_grid=0.0, p_log_grid=0.0, grid_ink=(0.2, 0.4),
        grid_spacing_px=(20.0, 40.0), p_dashed_grid=0.0, p_text=0.3, p_formation_tops=0.0, p_header_splice=0.0,
        p_stain=0.0, p_banding=0.0, noise_sigma=(2.0, 5.0), p_blur=0.0, p_jpeg=1.0, jpeg_quality=(60, 85),
        p_skew=0.0, p_scan_border=0.0, p_blotch=0.0, p_fold=0.0, p_speckle=0.0, p_halftone=0.0,
        p_low_contrast=0.0, p_bitonal=0.0,
    ),
}


#: Validation families: styles training never draws either, for the choices the held-out set must
#: not see (which stage ships, QC thresholds that have to hold on unseen styles). Their curve-2
#: pattern (`paired_dots`) is unseen too; their real curves come from the training wells, so they
#: test styles, not wells. Their scans come from `veernet evaluate --set val-style`.
VAL_FAMILIES: dict[str, ScanStyle] = {
    # smudged carbon copy: blur beyond the training range, dark dense grid, grey thin pens, speckle
    "val-smudge": ScanStyle(
        p_heavy_rule=0.0, curve1_width=(1, 3), curve2_width=(1, 2), curve2_patterns=("paired_dots",),
        curve_ink=(0.6, 0.85), p_grid=1.0, p_minor_grid=1.0, grid_ink=(0.5, 0.8), grid_spacing_px=(10.0, 20.0),
        paper_tone=(0.75, 0.9), p_blur=1.0, blur_sigma=(1.1, 1.5), p_speckle=1.0, noise_sigma=(3.0, 8.0),
        p_jpeg=0.0, p_bitonal=0.0, p_low_contrast=0.0, p_halftone=0.0,
    ),
    # coarse copy: bold pens, JPEG below the training range, halftone screen, washed out
    "val-coarse": ScanStyle(
        p_heavy_rule=0.0, curve1_width=(3, 6), curve2_width=(2, 4), curve2_patterns=("paired_dots",),
        curve_ink=(0.7, 0.95), p_grid=1.0, grid_ink=(0.3, 0.6), grid_spacing_px=(15.0, 40.0),
        p_jpeg=1.0, jpeg_quality=(12, 22), p_halftone=1.0, p_low_contrast=1.0, low_contrast=(0.4, 0.6),
        p_bitonal=0.0, p_blur=0.0, noise_sigma=(2.0, 6.0),
    ),
    # broken dense grid: a fine dashed grid with every line broken, clean white paper, slight blur. Added
    # after the held-out dense dashed grid was seen to fail (bench/RESULTS.md, "Flat stretches"), so
    # choices can see a broken grid without the held-out set: its grid is linear or log as the curves
    # ask (the held-out one is always log), lighter and on white paper, with no JPEG
    "val-brokengrid": ScanStyle(
        p_heavy_rule=0.0, curve1_width=(1, 3), curve2_width=(1, 2), curve2_patterns=("paired_dots",),
        curve_ink=(0.7, 0.95), p_grid=1.0, p_minor_grid=1.0, p_log_grid=0.0, p_dashed_grid=1.0,
        grid_ink=(0.35, 0.6), grid_spacing_px=(10.0, 18.0), paper_tone=(0.9, 0.99), p_blur=1.0,
        blur_sigma=(0.3, 0.6), noise_sigma=(2.0, 5.0), p_jpeg=0.0, p_bitonal=0.0, p_low_contrast=0.0,
        p_halftone=0.0,
    ),
}
STYLE_FAMILIES.update(VAL_FAMILIES)


def style_family(name: str) -> ScanStyle:
    """The registered style family `name`; KeyError naming the valid ones otherwise."""
    try:
        return STYLE_FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown style family {name!r}; valid: {sorted(STYLE_FAMILIES)}") from None
