"""Render whole archive sheets with exact layout and depth truth.

A sheet is what an archive scan usually is (docs/sheets.md):
portrait, depth running down the page, a header block on top, then a log
section of 2-4 curve tracks and one narrow depth column with a printed depth
label every 50 or 100 ft (10 or 20 m), upright or rotated 90 degrees. Some
sheets splice a repeat header further down and continue with a second section
at another depth scale (a detail section), so one sheet needs two depth fits.

Each track's content is a canonical strip from the single-track renderer
(`render.render_sample`), rotated to portrait with `numpy.rot90(strip, -1)`:
the inverse of the contract's portrait->canonical turn, so canonical column 0
(shallowest) is the track's top row and canonical row 0 (the value axis's
right edge) is the track's right-most column.

`render_sheet(seed, index, config)` is a pure function of its arguments.
Truth (`SheetTruth`) holds, in the sheet's own pixels: where the header ends,
each section's rows and depth axis (depth = d0 + pitch x (row - row0)), each
track's interior columns, the depth column, and every printed label (centre
row, text, value). `write_sheet` saves `ID.tif` and `ID.truth.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veernet_ray.synth.render import FONTS
from veernet_ray.synth.styles import ScanStyle, SynthConfig

#: fonts for printed depth labels (the script font is for handwriting, never for printed depths)
LABEL_FONTS = tuple(f for f in FONTS if f != cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
HEADER_WORDS = ("COMPANY", "WELL", "FIELD", "COUNTY", "STATE", "DATE", "RUN NO", "DEPTH DRILLER", "BTM LOG INTERVAL",
                "TOP LOG INTERVAL", "CASING", "BIT SIZE", "TYPE FLUID", "RM @ MEAS TEMP", "RECORDED BY", "WITNESSED BY")
NOTES = ("TOP LANSING", "DST #1", "CORE", "BASE KC", "ARBUCKLE", "PERFS", "SHOW OIL", "CHECK", "REPEAT", "TD")
#: track contents: no skew (it would shear the track against the sheet's borders), no scan border,
#: no own 1-bit threshold (the whole sheet is thresholded) and no splice (the sheet splices)
TRACK_STYLE = ScanStyle(p_skew=0.0, p_scan_border=0.0, p_bitonal=0.0, p_header_splice=0.0, p_fold=0.0, p_heavy_rule=0.0,
                        p_low_contrast=0.0, p_jpeg=0.0)


@dataclass(frozen=True)
class SheetConfig:
    """Geometry and style ranges of generated sheets (pixels of the sheet's own orientation)."""

    width: tuple[int, int] = (1000, 1400)
    height: tuple[int, int] = (3200, 4800)
    n_tracks: tuple[int, int] = (2, 4)  # curve tracks; the depth column comes on top
    label_spacing_px: tuple[int, int] = (260, 520)  # rows between two printed labels
    label_px: tuple[float, float] = (13.0, 24.0)  # digit height
    p_bitonal: float = 0.5  # 1-bit sheet (thresholded), else grey
    p_rotated: float = 0.3  # labels rotated 90 degrees (older logs)
    p_metres: float = 0.3
    p_second_section: float = 0.3  # a spliced repeat header, then a section at another depth scale
    p_notes: float = 0.5  # handwritten notes over the tracks
    speckle: tuple[float, float] = (0.0, 0.0015)  # share of pixels flipped to ink

    def validate(self) -> "SheetConfig":
        for name in ("width", "height", "n_tracks", "label_spacing_px", "label_px", "speckle"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"SheetConfig.{name} must be (min, max) with min <= max, got {(lo, hi)}")
        if self.width[0] < 600 or self.height[0] < 1500:
            raise ValueError("SheetConfig: sheets need at least 600 x 1500 px (width x height) to hold a layout")
        if not (1 <= self.n_tracks[0] and self.n_tracks[1] <= 4):
            raise ValueError(f"SheetConfig.n_tracks must lie in 1..4, got {self.n_tracks}")
        return self


@dataclass(frozen=True)
class SectionTruth:
    row0: int  # first log row of the section (inside the top border)
    row1: int  # last log row (inclusive)
    unit: str  # "FT" | "M"
    d0: float  # depth at row0
    pitch: float  # depth units per row
    interval: float  # label spacing in depth units

    def depth_at(self, row: np.ndarray | float) -> np.ndarray:
        return self.d0 + self.pitch * (np.asarray(row, dtype=np.float64) - self.row0)


@dataclass(frozen=True)
class LabelTruth:
    row: float  # centre row of the printed label = the row of its depth
    text: str
    value: float
    section: int
    rotated: bool
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the printed text


@dataclass
class SheetTruth:
    """Exact layout and depth of a generated sheet, in the sheet's own pixels."""

    height: int
    width: int
    header_end: int  # first row below the header block
    sections: list[SectionTruth]
    tracks: list[tuple[int, int]]  # interior columns [x0, x1) of each curve track, left to right
    depth_column: tuple[int, int]  # interior columns [x0, x1) of the depth column
    depth_track_index: int  # the depth column sits between tracks[i-1] and tracks[i]
    labels: list[LabelTruth]
    bitonal: bool
    scales: list[dict[str, Any]] = field(default_factory=list)  # per track: its curves' scales at the track edges

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SheetTruth":
        return cls(
            d["height"], d["width"], d["header_end"], [SectionTruth(**s) for s in d["sections"]],
            [tuple(t) for t in d["tracks"]], tuple(d["depth_column"]), d["depth_track_index"],
            [LabelTruth(**{**lab, "box": tuple(lab["box"])}) for lab in d["labels"]], d["bitonal"], d.get("scales", []),
        )

    def section_at(self, row: float) -> SectionTruth | None:
        for s in self.sections:
            if s.row0 <= row <= s.row1:
                return s
        return None


@dataclass
class Sheet:
    image: np.ndarray  # (H, W) uint8, portrait
    truth: SheetTruth


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def text_patch(text: str, px: float, font: int, thick: int) -> np.ndarray:
    """White-on-black uint8 patch of `text` whose digit height is about `px` (anti-aliased)."""
    base = cv2.getTextSize("0", font, 1.0, 1)[0][1]
    scale = max(px / max(base, 1), 0.25)
    (tw, th), bl = cv2.getTextSize(text, font, scale, thick)
    patch = np.zeros((th + bl + 4, tw + 4), np.uint8)
    cv2.putText(patch, text, (2, th + 2), font, scale, 255, thick, cv2.LINE_AA)
    ys, xs = np.nonzero(patch > 64)
    return patch[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(ys) else patch


def _paste(layer: np.ndarray, patch: np.ndarray, y: int, x: int) -> tuple[int, int, int, int]:
    h, w = layer.shape
    ph, pw = patch.shape
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + ph, h), min(x + pw, w)
    if y1 > y0 and x1 > x0:
        sub = patch[y0 - y : y1 - y, x0 - x : x1 - x]
        np.maximum(layer[y0:y1, x0:x1], sub, out=layer[y0:y1, x0:x1])
    return x0, y0, x1, y1


def _header_block(rng, ink: np.ndarray, y0: int, y1: int, x0: int, x1: int, unit: str, scale_txt: str) -> None:
    """Boxes and lines of header text between rows y0..y1 (a title block or a spliced repeat header)."""
    cv2.rectangle(ink, (x0, y0 + 4), (x1 - 1, y1 - 6), 255, 2)
    font = LABEL_FONTS[int(rng.integers(len(LABEL_FONTS)))]
    px = rng.uniform(12, 20)
    lines = [f"{rng.choice(['SCHLUMBERGER', 'WELEX', 'LANE-WELLS', 'DRESSER ATLAS'])}  "
             f"{rng.choice(['INDUCTION ELECTRICAL LOG', 'GAMMA RAY NEUTRON', 'SONIC LOG', 'ELECTRIC LOG'])}",
             f"DEPTHS IN {'FEET' if unit == 'FT' else 'METRES'}   SCALE {scale_txt}"]
    lines += [f"{w}: {rng.integers(1, 9999)}" for w in rng.choice(HEADER_WORDS, size=int(rng.integers(3, 8)))]
    y = y0 + 14
    for line in lines:
        patch = text_patch(line, px, font, 1)
        if y + patch.shape[0] >= y1 - 10:
            break
        _paste(ink, patch[:, : max(1, x1 - x0 - 30)], y, x0 + 12)
        y += patch.shape[0] + int(px * 0.8)
        if rng.random() < 0.3:
            cv2.line(ink, (x0, y - int(px * 0.4)), (x1 - 1, y - int(px * 0.4)), 255, 1)


def render_sheet(seed: int, index: int, config: SheetConfig | None = None) -> Sheet:
    """Draw sheet `index` of the set with base seed `seed`; see the module docstring for the truth."""
    from veernet_ray.synth.render import render_sample

    cfg = (config or SheetConfig()).validate()
    rng = np.random.default_rng([int(seed), int(index), 7])  # 7: a stream apart from render_sample's
    W = int(rng.integers(cfg.width[0], cfg.width[1] + 1))
    H = int(rng.integers(cfg.height[0], cfg.height[1] + 1))
    bitonal = bool(rng.random() < cfg.p_bitonal)
    unit = "M" if rng.random() < cfg.p_metres else "FT"
    intervals = (10.0, 20.0) if unit == "M" else (50.0, 100.0)

    # ---- columns: margin | track 1 | depth column | track 2 .. n | margin, borders between
    n_tracks = int(rng.integers(cfg.n_tracks[0], cfg.n_tracks[1] + 1))
    border = int(rng.integers(4, 7))  # heavier than the heaviest grid line (3 px): real borders are
    margin = int(rng.integers(8, 40))
    dcol_w = int(max(64, W * rng.uniform(0.07, 0.10)))
    usable = W - 2 * margin - dcol_w - border * (n_tracks + 2)
    shares = rng.uniform(0.8, 1.2, n_tracks)
    widths = np.floor(usable * shares / shares.sum()).astype(int)
    spans: list[tuple[int, int]] = []  # interior column spans, left to right, depth column second
    x = margin + border
    kinds = ["track", "depth"] + ["track"] * (n_tracks - 1)
    track_iter = iter(widths)
    for k in kinds:
        wdt = dcol_w if k == "depth" else int(next(track_iter))
        spans.append((x, x + wdt))
        x += wdt + border
    border_xs = [spans[0][0] - border] + [s[1] for s in spans]  # left edge of each border line
    tracks = [s for s, k in zip(spans, kinds) if k == "track"]
    dcol = spans[1]

    # ---- rows: header | section 1 [| spliced header | section 2] | margin
    header_end = int(H * rng.uniform(0.06, 0.12)) + 150
    bottom = H - int(rng.integers(10, 40))
    two = rng.random() < cfg.p_second_section and bottom - header_end > 2600
    if two:
        split = int(rng.uniform(0.55, 0.7) * (bottom - header_end)) + header_end
        splice_h = int(rng.integers(180, 320))
        row_spans = [(header_end + border, split - 1), (split + splice_h + border, bottom - border)]
    else:
        row_spans = [(header_end + border, bottom - border)]

    ink = np.zeros((H, W), np.uint8)  # everything printed in black: text, borders, labels
    img = np.full((H, W), 255.0, np.float32)
    sections: list[SectionTruth] = []
    labels: list[LabelTruth] = []
    scales: list[dict[str, Any]] = [{"track": i + 1, "curves": []} for i in range(len(tracks))]
    font = LABEL_FONTS[int(rng.integers(len(LABEL_FONTS)))]
    label_px = _u(rng, cfg.label_px)
    thick = 1 if label_px < 17 or rng.random() < 0.5 else 2
    rotated = bool(rng.random() < cfg.p_rotated)
    first_scale = None
    for si, (r0, r1) in enumerate(row_spans):
        interval = float(rng.choice(intervals))
        # whole pixels between labels, and the first label on a whole row: every printed label
        # then sits exactly on the row of its depth (truth needs no rounding)
        spacing = int(round(_u(rng, cfg.label_spacing_px) * (0.45 if si == 1 else 1.0)))  # detail: other scale
        pitch = interval / spacing
        offset = int(rng.integers(int(0.15 * spacing), int(0.85 * spacing)))
        first = float(rng.integers(2, 60)) * interval if unit == "FT" else float(rng.integers(10, 150)) * interval
        if si == 1:  # detail section: repeats a stretch of the main one
            s0 = sections[0]
            mid = s0.d0 + (s0.row1 - s0.row0) * s0.pitch * rng.uniform(0.2, 0.6)
            first = float(np.ceil(mid / interval) * interval)
        d0 = first - offset * pitch
        sec = SectionTruth(int(r0), int(r1), unit, d0, float(pitch), interval)
        sections.append(sec)
        first_scale = first_scale or f"1:{int(round(interval / spacing * 12 * 150)) if unit == 'FT' else 200}"
        L = r1 - r0 + 1
        # track content: a canonical strip L long, the track wide, rotated to portrait
        for ti, (x0, x1) in enumerate(tracks):
            sc = SynthConfig(width=(L, L), height=(x1 - x0, x1 - x0), style=TRACK_STYLE)
            sample = render_sample(seed, index * 16 + si * 4 + ti, sc)
            img[r0 : r1 + 1, x0:x1] = np.rot90(sample.image, -1).astype(np.float32)
            if si == 0:
                scales[ti]["curves"] = _edge_scales(sample, x1 - x0)
        # depth column: ticks every interval / 5, a longer tick and a printed label every interval
        k0, k1 = int(np.ceil(sec.d0 / (interval / 5))), int(np.floor(sec.depth_at(r1) / (interval / 5)))
        tick_len = max(4, (dcol[1] - dcol[0]) // 10)
        for k in range(k0, k1 + 1):
            d = k * interval / 5
            y = int(round((d - sec.d0) / pitch + r0))
            major = k % 5 == 0
            ln = tick_len
            ink[y, dcol[0] : dcol[0] + ln] = 255
            ink[y, dcol[1] - ln : dcol[1]] = 255
            if not major:
                continue
            text = f"{d:.0f}"
            patch = text_patch(text, label_px, font, thick)
            if rotated:
                patch = np.ascontiguousarray(np.rot90(patch, 1))  # reads bottom to top
            ph, pw = patch.shape
            room = dcol[1] - dcol[0] - 2 * ln - 4
            if pw > room:  # shrink to fit between the ticks
                f = room / pw
                patch = cv2.resize(patch, (max(1, int(pw * f)), max(1, int(ph * f))), interpolation=cv2.INTER_AREA)
                ph, pw = patch.shape
            yy, xx = int(round(y - ph / 2)), (dcol[0] + dcol[1] - pw) // 2
            if yy < r0 + 2 or yy + ph > r1 - 2:
                continue  # a label cut by the section border is not printed
            box = _paste(ink, patch, yy, xx)
            labels.append(LabelTruth(float(y), text, float(d), si, rotated, box))
        # borders: verticals the section's height, a rule at its top and bottom
        for bx in border_xs:
            ink[r0 - border : r1 + border + 1, bx : bx + border] = 255
        ink[r0 - border : r0, border_xs[0] : border_xs[-1] + border] = 255
        ink[r1 + 1 : r1 + border + 1, border_xs[0] : border_xs[-1] + border] = 255

    # ---- headers (title block, and the spliced repeat) and handwritten notes
    _header_block(rng, ink, 0, header_end - 10, margin, W - margin, unit, first_scale or "1:240")
    if two:
        _header_block(rng, ink, row_spans[0][1] + border + 8, row_spans[1][0] - border - 6, margin, W - margin,
                      unit, "1:240 DETAIL")
    if rng.random() < cfg.p_notes:
        for _ in range(int(rng.integers(1, 5))):
            x0, x1 = tracks[int(rng.integers(len(tracks)))]
            note = text_patch(str(rng.choice(NOTES)), rng.uniform(14, 26), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 1)
            note = note[:, : max(1, x1 - x0 - 6)]
            _paste(ink, note, int(rng.integers(row_spans[0][0], row_spans[-1][1] - note.shape[0])), x0 + 3)

    img *= 1.0 - ink.astype(np.float32) / 255.0 * np.float32(0.92)
    speck = rng.random((H, W)) < _u(rng, cfg.speckle)
    img[speck] = np.minimum(img[speck], rng.uniform(0, 120))
    if bitonal:
        out = np.where(img < rng.uniform(120, 170), 0, 255).astype(np.uint8)
    else:
        out = np.clip(img + rng.normal(0, 3, img.shape).astype(np.float32), 0, 255).astype(np.uint8)
    truth = SheetTruth(H, W, int(header_end), sections, [tuple(map(int, t)) for t in tracks], tuple(map(int, dcol)),
                       1, labels, bitonal, scales)
    return Sheet(out, truth)


def _edge_scales(sample, track_w: int) -> list[dict[str, Any]]:
    """Each curve's scale as values at the track's left (column 0) and right (column w-1) edges.

    The strip's value axis (`CurveAxis.ref`, rows t0..t1) extends linearly (log10 for
    log scales) to the strip's edges: canonical row w-1 is the track's left edge.
    """
    out = []
    for ax in sample.sidecar.curves:
        left, right = (float(v) for v in ax.value_at(np.array([track_w - 1.0, 0.0])))
        out.append({"class_id": ax.class_id, "mnemonic": ax.mnemonic, "unit": ax.unit, "scale": ax.scale,
                    "left": left, "right": right})
    return out


def write_sheet(sheet: Sheet, root: str | os.PathLike, sid: str) -> Path:
    """Save `ID.tif` (1-bit sheets as 0/255 uint8) and `ID.truth.json`; returns the image path."""
    from veernet_ray.io import atomic_path, write_tiff

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{sid}.tif"
    write_tiff(path, sheet.image)
    with atomic_path(root / f"{sid}.truth.json") as tmp:
        tmp.write_text(json.dumps(sheet.truth.to_dict()) + "\n", encoding="utf-8")
    return path


def generate_sheets(root: str | os.PathLike, n: int, seed: int = 0, config: SheetConfig | None = None) -> list[Path]:
    """Render and save `n` sheets `sheet-<seed>-<i>` under `root` (no sidecars: layout makes them)."""
    return [write_sheet(render_sheet(seed, i, config), root, f"sheet-{seed}-{i:04d}") for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m veernet_ray.synth.sheet",
                                description="Render whole generated sheets (ID.tif + ID.truth.json) for layout work.")
    p.add_argument("output")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = generate_sheets(args.output, args.n, args.seed)
    print(f"[veernet] {len(paths)} sheets in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
