"""One sheet, end to end on a CPU: layout -> read labels -> fit depth per section -> track sidecars.

`analyse_sheet(image)` is pure (an image in, a `SheetAnalysis` out); the Ray
stage (`veernet_ray.layout.stages`) and the benchmark call it. Everything it
reports is in the sheet's own pixels, portrait (a landscape sheet is turned
with `numpy.rot90(img, -1)` first, and the record says so).

Track sidecars follow the contract (docs/contracts.md section 2, portrait):
`orientation` `depth_along_height`, `depth.ref` at the crop's first and last
rows, and per curve a value axis across the crop's columns (column 0 = the
track's left edge). Without user scales the curves are `CURVE1`/`CURVE2` in
unit NORM from 0 (left edge) to 1 (right edge), which is the contract's
normalised output, now on a calibrated depth. See docs/sheets.md.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veernet_ray.layout.calibrate import DepthFit, LabelRead, fit_depth, guess_unit, parse_value
from veernet_ray.layout.detect import Layout, find_layout, ink_level
from veernet_ray.layout.digits import get_reader

#: a landscape sheet (depth along the width) is wider than this share of its height
LANDSCAPE_RATIO = 1.5
#: label crops get this margin (px) so the reader sees the whole glyph
PAD = 2
_UNIT_WORDS = (
    (re.compile(r"\b(FEET|FOOT|FT)\b"), "FT"),
    (re.compile(r"\b(METRES|METERS|METRE|METER)\b"), "M"),
)


class ScalesError(ValueError):
    """A track-scales JSON that does not follow docs/sheets.md; the message names the field."""


@dataclass
class SheetAnalysis:
    """What layout found on one sheet, and whether its depth can be trusted."""

    layout: Layout
    labels: list[LabelRead]
    label_section: list[int]  # section index of each label
    fits: list[DepthFit]  # one per layout section
    unit: str
    unit_source: str
    turned: bool  # the input was landscape and was turned to portrait
    reasons: list[str] = field(default_factory=list)  # why the sheet is flagged ([] = not flagged)
    t_layout: float = 0.0
    t_ocr: float = 0.0

    @property
    def is_sheet(self) -> bool:
        """The `--layout auto` rule: more than one track, or a depth column."""
        return len(self.layout.tracks) > 1 or self.layout.depth_column is not None

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    def calibrated(self, section: int) -> bool:
        return self.fits[section].ok

    def track_crops(self) -> list[tuple[int, int, tuple[int, int, int, int]]]:
        """(section, track, (row0, row1 inclusive, col0, col1 exclusive)) for every track of every section."""
        out = []
        for si, (r0, r1) in enumerate(self.layout.sections):
            for ti, (c0, c1) in enumerate(self.layout.tracks):
                out.append((si, ti, (int(r0), int(r1), int(c0), int(c1))))
        return out

    def track_sidecar(self, section: int, track: int, scales: dict | None = None) -> dict | None:
        """The contract sidecar (dict) of one track crop, or None when the section has no depth fit."""
        fit = self.fits[section]
        if not fit.ok:
            return None
        r0, r1 = self.layout.sections[section]
        c0, c1 = self.layout.tracks[track]
        w = c1 - c0
        curves = []
        given = track_scales(scales, track) if scales else None
        for cid in (1, 2):
            s = (given or {}).get(cid)
            if s is None:
                curves.append({"class_id": cid, "mnemonic": f"CURVE{cid}", "unit": "NORM", "scale": "linear",
                               "ref": [{"px": 0, "value": 0.0}, {"px": w - 1, "value": 1.0}], "wrap": None})
            else:
                curves.append({"class_id": cid, "mnemonic": s["mnemonic"], "unit": s.get("unit", ""),
                               "scale": s.get("scale", "linear"),
                               "ref": [{"px": 0, "value": s["left"]}, {"px": w - 1, "value": s["right"]}],
                               "wrap": None})
        d0, d1 = (float(x) for x in fit.depth_at(np.array([r0, r1], dtype=np.float64)))
        return {"orientation": "depth_along_height",
                "depth": {"unit": self.unit, "ref": [{"px": 0, "depth": d0}, {"px": r1 - r0, "depth": d1}],
                          "step": float(fit.b)},
                "curves": curves,
                "layout": {"section": section + 1, "track": track + 1, "rows": [int(r0), int(r1)],
                           "columns": [int(c0), int(c1)]}}

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        """The OUT/layout/<ID>.json record (docs/sheets.md)."""
        labels = []
        for k, lab in enumerate(self.labels):
            si = self.label_section[k]
            fit = self.fits[si]
            j = [m for m, s in enumerate(self.label_section) if s == si].index(k)
            labels.append({"row": lab.row, "text": lab.text, "value": lab.value, "confidence": round(lab.confidence, 4),
                           "rotated": lab.rotated, "box": list(lab.box), "section": si + 1,
                           "used": bool(fit.used[j]) if fit.used else False,
                           "reason": fit.label_reasons[j] if fit.label_reasons else ""})
        sections = []
        for si, (r0, r1) in enumerate(self.layout.sections):
            sections.append({"section": si + 1, "rows": [int(r0), int(r1)],
                             "unit": self.unit if self.fits[si].ok else None,
                             "fit": self.fits[si].to_dict()})
        return {**extra, "turned": self.turned, "is_sheet": self.is_sheet, "layout": self.layout.to_dict(),
                "unit": self.unit, "unit_source": self.unit_source, "sections": sections, "labels": labels,
                "flagged": self.flagged, "reasons": self.reasons,
                "timings_s": {"layout": round(self.t_layout, 4), "ocr": round(self.t_ocr, 4)}}


def to_portrait(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """A landscape sheet (depth along the width) turned clockwise to portrait; (image, turned)."""
    h, w = image.shape
    if w > LANDSCAPE_RATIO * h:
        return np.ascontiguousarray(np.rot90(image, -1)), True
    return image, False


def read_label(image: np.ndarray, box, rotated: bool, reader, turn: int = -1,
               ink: float | None = None) -> tuple[str, float]:
    """Read one label box. A rotated label is turned by `numpy.rot90(crop, turn)`: -1 undoes text
    printed bottom-to-top (the usual way), +1 text printed top-to-bottom.

    ink: the sheet's ink level (`detect.ink_level`). The box holds all of the label's ink, so
    ink in the PAD margin around it is another blob's: a depth tick ending a pixel or two from the
    label, a border, the next label. It is painted paper before reading (a tick's tip read as a
    trailing "1" turns "3850" into "38501" on every label of a sheet: a self-consistent line ten
    times too steep). None: the margin is read as it is."""
    x0, y0, x1, y1 = box
    h, w = image.shape
    cy0, cx0 = max(0, y0 - PAD), max(0, x0 - PAD)
    crop = image[cy0 : min(h, y1 + PAD), cx0 : min(w, x1 + PAD)]
    if ink is not None and crop.size:
        margin = np.ones(crop.shape, bool)
        margin[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = False
        stray = margin & (crop <= ink)
        if stray.any():
            crop = crop.copy()
            crop[stray] = crop.max()
    if rotated:
        crop = np.ascontiguousarray(np.rot90(crop, turn))
    r = reader(crop)
    return r.text, r.confidence


def trailing_zeros(text: str) -> int:
    """How many "0"s end a reading: depth labels are printed every 10, 50 or 100 units, so they end
    in zeros, and turned upside down those zeros lead ("1000" reads "0001", "0900" reads "0060")."""
    return len(text) - len(text.rstrip("0")) if parse_value(text) is not None else 0


def read_labels(image: np.ndarray, boxes: list, reader) -> list[tuple[str, float]]:
    """Read every label box of a sheet. Rotated labels are read turned both ways, and one way wins
    for ALL of them (one sheet prints its labels one way): the way whose readings end in more zeros
    (trailing_zeros), then the way that reads surer. Confidence alone cannot decide, least of all
    for a sheet with one or two labels: the wrong way can read as surely ("6000" upside down is a
    confident "0009")."""
    level = ink_level(image) if boxes else None
    upright = [read_label(image, b[:4], False, reader, ink=level) if not b[4] else None for b in boxes]
    if not any(b[4] for b in boxes):
        return upright
    ways = {t: [read_label(image, b[:4], True, reader, t, ink=level) if b[4] else None for b in boxes]
            for t in (-1, 1)}
    score = {t: (sum(trailing_zeros(r[0]) for r in rs if r is not None),
                 sum(r[1] for r in rs if r is not None and parse_value(r[0]) is not None)) for t, rs in ways.items()}
    best = ways[-1] if score[-1] >= score[1] else ways[1]
    return [u if u is not None else best[k] for k, u in enumerate(upright)]


def header_unit(header: np.ndarray) -> str | None:
    """FT or M from the header's words ("DEPTHS IN FEET"), read with Tesseract when it is installed."""
    if header.size == 0 or shutil.which("tesseract") is None:
        return None
    try:
        import pytesseract
    except ImportError:
        return None
    scale = min(1.0, 1600 / max(header.shape))  # a 3,400-px header reads as well at half size, twice as fast
    small = cv2.resize(header, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else header
    try:
        text = pytesseract.image_to_string(small, config="--psm 6").upper()
    except Exception:  # a Tesseract failure costs the unit, never the sheet
        return None
    for pattern, unit in _UNIT_WORDS:
        if pattern.search(text):
            return unit
    return None


def analyse_sheet(image: np.ndarray, *, reader: str = "digits+tesseract", depth_unit: str | None = None,
                  read_header: bool = True, min_confidence: float = 0.5) -> SheetAnalysis:
    """Layout, labels, per-section depth fits and the flag reasons of one uint8 sheet (any orientation).

    reader: a READERS name, or "first+second": the second re-reads sections the first left in doubt
    (not ok, flagged, or a label rejected) and the better fit per section wins. The header's depth
    unit is read only when Tesseract is one of the readers.
    depth_unit: the user's unit, used when the header does not say (None: FT for labels >= 100).
    min_confidence: label readings less sure than this count as unreadable.
    """
    import time

    t0 = time.perf_counter()
    image, turned = to_portrait(image)
    layout = find_layout(image)
    t1 = time.perf_counter()
    boxes = [b for b in layout.labels if any(r0 <= b.row <= r1 for r0, r1 in layout.sections)]
    sec_of = [next(k for k, (r0, r1) in enumerate(layout.sections) if r0 <= b.row <= r1) for b in boxes]
    first, second = (reader, None) if "+" not in reader else tuple(reader.split("+", 1))
    labels, fits = _read_and_fit(image, boxes, sec_of, len(layout.sections), get_reader(first), min_confidence)
    if second and any(not f.ok or f.flagged or not all(f.used) for f in fits) and _has_tesseract(second):
        # the second reader only where the first left doubt; per section, the better fit wins
        labels2, fits2 = _read_and_fit(image, boxes, sec_of, len(layout.sections), get_reader(second),
                                       min_confidence)
        for si in range(len(fits)):
            if _fit_rank(fits2[si]) > _fit_rank(fits[si]):
                fits[si] = fits2[si]
                for k, s_ in enumerate(sec_of):
                    if s_ == si:
                        labels[k] = labels2[k]
    # the header is words, which only Tesseract reads: no Tesseract in the readers, no header reading
    read_header = read_header and "tesseract" in reader.split("+")
    hunit = header_unit(image[: max(0, layout.header_end)]) if read_header and layout.header_end > 0 else None
    unit, source = guess_unit([lab.value for lab in labels if lab.value is not None], hunit, depth_unit)
    t2 = time.perf_counter()
    reasons = list(layout.notes)
    if not layout.tracks:
        reasons.append("no track found")
    for si, f in enumerate(fits):
        if f.flagged:
            reasons.append(f"section {si + 1}: {f.reason}" + ("" if f.ok else "; depth left in pixels"))
    return SheetAnalysis(layout, labels, sec_of, fits, unit, source, turned, reasons, t1 - t0, t2 - t1)


def _read_and_fit(image, boxes, sec_of, n_sections, read, min_confidence) -> tuple[list[LabelRead], list[DepthFit]]:
    readings = read_labels(image, [(b.x0, b.y0, b.x1, b.y1, b.rotated) for b in boxes], read)
    labels = []
    for b, (text, conf) in zip(boxes, readings):
        value = parse_value(text) if conf >= min_confidence else None
        labels.append(LabelRead(b.row, text, value, conf, (b.x0, b.y0, b.x1, b.y1), b.rotated))
    fits = []
    for si in range(n_sections):
        mine = [lab for lab, s in zip(labels, sec_of) if s == si]
        fits.append(fit_depth(np.array([lab.row for lab in mine]),
                              np.array([np.nan if lab.value is None else lab.value for lab in mine]),
                              np.array([lab.confidence for lab in mine])))
    return labels, fits


def _fit_rank(f: DepthFit) -> tuple:
    """Order fits: usable, then unflagged, then more labels used, then smaller residual."""
    return (f.ok, not f.flagged, sum(f.used), -(f.max_abs or 0.0))


def _has_tesseract(name: str) -> bool:
    if name != "tesseract":
        return True
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return shutil.which("tesseract") is not None


# ------------------------------------------------------------------ scales
def load_scales(path: str | Path) -> dict:
    """Read and check a track-scales JSON (docs/sheets.md); raises ScalesError with what to fix."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScalesError(f"{Path(path).name}: cannot read the track scales ({exc})") from exc
    check_scales(data, Path(path).name)
    return data


def check_scales(data: Any, source: str = "scales") -> None:
    if not isinstance(data, dict) or not isinstance(data.get("tracks"), list):
        raise ScalesError(f'{source}: expected {{"tracks": [{{"track": 1, "curves": [...]}}, ...]}}')
    for k, t in enumerate(data["tracks"]):
        where = f"{source}: tracks[{k}]"
        if not isinstance(t, dict) or not isinstance(t.get("track"), int) or t["track"] < 1:
            raise ScalesError(f"{where}.track must be the track number (1 = leftmost curve track)")
        for j, c in enumerate(t.get("curves") or []):
            cw = f"{where}.curves[{j}]"
            if not isinstance(c, dict) or c.get("class_id") not in (1, 2):
                raise ScalesError(f"{cw}.class_id must be 1 or 2")
            if not isinstance(c.get("mnemonic"), str) or not c["mnemonic"].strip():
                raise ScalesError(f"{cw}.mnemonic must be a non-empty string such as GR")
            if c.get("scale", "linear") not in ("linear", "log"):
                raise ScalesError(f"{cw}.scale must be linear or log")
            for side in ("left", "right"):
                v = c.get(side)
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    raise ScalesError(f"{cw}.{side} must be the value at the track's {side} edge")
                if c.get("scale") == "log" and v <= 0:
                    raise ScalesError(f"{cw}.{side} must be > 0 on a log scale")
            if c["left"] == c["right"]:
                raise ScalesError(f"{cw}: left and right values are equal")


def track_scales(scales: dict, track: int) -> dict[int, dict] | None:
    """{class_id: curve scale} for the 0-based `track`, or None when the file does not name it."""
    for t in scales.get("tracks", []):
        if t["track"] == track + 1:
            return {c["class_id"]: c for c in t.get("curves") or []}
    return None


# ------------------------------------------------------------------ overlay
def draw_overlay(image: np.ndarray, a: SheetAnalysis, max_side: int = 2400) -> np.ndarray:
    """An RGB picture of what layout found: sections, tracks (green), depth column (blue),
    labels used (green box) or rejected (red box) with their reading, and each fit."""
    img, _ = to_portrait(image)
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    L = a.layout
    for si, (r0, r1) in enumerate(L.sections):
        for c0, c1 in L.tracks:
            cv2.rectangle(rgb, (c0, r0), (c1 - 1, r1), (0, 170, 0), 3)
        if L.depth_column:
            c0, c1 = L.depth_column
            cv2.rectangle(rgb, (c0, r0), (c1 - 1, r1), (30, 90, 255), 3)
        f = a.fits[si]
        txt = (f"S{si + 1}: depth = {f.a:.2f} + {f.b:.5f} x row {a.unit}, rms {f.rms or 0:.2f}" if f.ok
               else f"S{si + 1}: NO DEPTH FIT")
        cv2.putText(rgb, txt, (10, max(20, r0 - 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (200, 0, 200), 2, cv2.LINE_AA)
    if L.header_end > 0:
        cv2.line(rgb, (0, L.header_end), (rgb.shape[1] - 1, L.header_end), (200, 0, 200), 2)
    for k, lab in enumerate(a.labels):
        si = a.label_section[k]
        j = [m for m, s in enumerate(a.label_section) if s == si].index(k)
        used = bool(a.fits[si].used[j]) if a.fits[si].used else False
        colour = (0, 170, 0) if used else (230, 0, 0)
        x0, y0, x1, y1 = lab.box
        cv2.rectangle(rgb, (x0 - 2, y0 - 2), (x1 + 1, y1 + 1), colour, 2)
        cv2.putText(rgb, lab.text or "?", (x1 + 4, int(lab.row) + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2,
                    cv2.LINE_AA)
    for k, reason in enumerate(a.reasons[:4]):
        cv2.putText(rgb, reason[:90], (10, 30 + 28 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (230, 0, 0), 2, cv2.LINE_AA)
    s = min(1.0, max_side / max(rgb.shape[:2]))
    return cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb


def write_overlay(path: str | Path, image: np.ndarray, a: SheetAnalysis) -> Path:
    return write_rgb_png(path, draw_overlay(image, a))


def write_rgb_png(path: str | Path, rgb: np.ndarray, compression: int = 9) -> Path:
    """An (H, W, 3) RGB uint8 picture as a PNG at `path`, written atomically (its folder made)."""
    from veernet_ray.io import atomic_path

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OSError(f"cannot encode the overlay {path}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)
