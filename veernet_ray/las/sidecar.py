"""Calibration sidecar `ID.json`: pixels <-> depth and value (docs/contracts.md section 2).

The generator writes sidecars with these classes and inference reads them
with the same classes, so the mapping from a pixel to a depth or a value is
written once. All mappings are pure NumPy and vectorised.

Coordinates: `px` along the depth axis is a column of the canonical raster
(depth along width); `px` along the value axis is a row (row 0 = top).
A portrait scan's sidecar gives pixels in the scan's own orientation;
`Sidecar.canonical(scan_shape)` turns them into canonical ones.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ORIENTATIONS = ("depth_along_width", "depth_along_height")
SCALES = ("linear", "log")
WRAP_MODES = ("backup",)
DEPTH_UNITS = ("M", "F", "FT")
#: largest depth magnitude a sidecar may give (m or ft): the deepest boreholes are ~12 km (~40,000 ft)
MAX_DEPTH = 1e5
#: largest pixel coordinate a reference may name: far beyond any scan (66,000 px sheets)
MAX_PX = 1e7
#: largest curve value magnitude (resistivity reaches ~1e5 ohm-m); larger values overflow downstream
MAX_VALUE = 1e12


class SidecarError(ValueError):
    """A sidecar that does not follow the contract; the message names the field."""


@dataclass(frozen=True)
class Wrap:
    """How a curve that leaves the track re-enters from the other edge.

    mode "backup": the value continues on the next scale cycle; `period` is
    the size of one cycle in track widths (usually 1).
    """

    mode: str = "backup"
    period: float = 1.0


@dataclass(frozen=True)
class DepthAxis:
    unit: str
    ref: tuple[tuple[float, float], ...]  # (px, depth) pairs, sorted by px
    step: float | None = None

    def depth_at(self, px: np.ndarray | float) -> np.ndarray:
        """Depth at column(s) `px`: piecewise linear through the refs, extrapolated at the ends."""
        return _piecewise_linear(np.asarray(px, dtype=np.float64), self.ref)

    def px_at(self, depth: np.ndarray | float) -> np.ndarray:
        """Column(s) at `depth` (inverse of `depth_at`; refs must be strictly monotone in depth)."""
        inverse = tuple(sorted((d, p) for p, d in self.ref))
        return _piecewise_linear(np.asarray(depth, dtype=np.float64), inverse)

    @property
    def increasing(self) -> bool:
        return self.ref[-1][1] > self.ref[0][1]

    def pixel_pitch(self) -> float:
        """Depth units per column, from the outermost refs."""
        (p0, d0), (p1, d1) = self.ref[0], self.ref[-1]
        return abs(d1 - d0) / abs(p1 - p0)


@dataclass(frozen=True)
class CurveAxis:
    class_id: int
    mnemonic: str
    scale: str
    ref: tuple[tuple[float, float], tuple[float, float]]  # two (row px, value) pairs
    unit: str = ""
    wrap: Wrap | None = None

    def _coord(self, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self.scale == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(value > 0, np.log10(np.where(value > 0, value, 1.0)), np.nan)
        return value

    def _uncoord(self, coord: np.ndarray) -> np.ndarray:
        return np.power(10.0, coord) if self.scale == "log" else coord

    def value_at(self, row: np.ndarray | float) -> np.ndarray:
        """Value at (sub-pixel) row(s); linear, or linear in log10 for log scales; extrapolates.

        Rows beyond the track are how unwrapped backup segments are expressed:
        one period further is `period * track_px` rows beyond the edge.
        """
        (r0, v0), (r1, v1) = self.ref
        c0, c1 = self._coord(np.array(v0)), self._coord(np.array(v1))
        t = (np.asarray(row, dtype=np.float64) - r0) / (r1 - r0)
        return self._uncoord(c0 + t * (c1 - c0))

    def row_at(self, value: np.ndarray | float) -> np.ndarray:
        """Row(s) at value(s); inverse of `value_at`. Non-positive values on a log scale give NaN."""
        (r0, v0), (r1, v1) = self.ref
        c0, c1 = self._coord(np.array(v0)), self._coord(np.array(v1))
        t = (self._coord(value) - c0) / (c1 - c0)
        return r0 + t * (r1 - r0)

    @property
    def track_px(self) -> float:
        """Track width in pixels along the value axis: the distance between the two refs."""
        return abs(self.ref[1][0] - self.ref[0][0])


@dataclass(frozen=True)
class Sidecar:
    orientation: str
    depth: DepthAxis
    curves: tuple[CurveAxis, ...]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, data: Any, source: str = "sidecar") -> "Sidecar":
        """Validate and parse; every problem raises SidecarError naming the field."""
        if not isinstance(data, dict):
            raise SidecarError(f"{source}: expected a JSON object, got {type(data).__name__}")
        orientation = _require(data, "orientation", source)
        if orientation not in ORIENTATIONS:
            raise SidecarError(f"{source}: orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        depth = _require(data, "depth", source)
        if not isinstance(depth, dict):
            raise SidecarError(f"{source}: depth must be an object")
        unit = _require(depth, "unit", f"{source}: depth")
        if not isinstance(unit, str) or unit.upper() not in DEPTH_UNITS:
            raise SidecarError(f"{source}: depth.unit must be one of {DEPTH_UNITS}, got {unit!r}")
        dref = _pairs(_require(depth, "ref", f"{source}: depth"), "depth", f"{source}: depth.ref", min_len=2)
        _bounded(dref, MAX_DEPTH, "depth", f"{source}: depth.ref")
        dref = tuple(sorted(dref))
        if len({p for p, _ in dref}) != len(dref):
            raise SidecarError(f"{source}: depth.ref has two references at the same pixel")
        ds = np.diff([d for _, d in dref])
        if not (np.all(ds > 0) or np.all(ds < 0)):
            raise SidecarError(f"{source}: depth.ref depths must be strictly increasing or decreasing along the pixels")
        step = depth.get("step")
        if step is not None and (not _is_number(step) or not float(step) > 0):
            raise SidecarError(f"{source}: depth.step must be a positive number, got {step!r}")
        curves_raw = _require(data, "curves", source)
        if not isinstance(curves_raw, list) or not curves_raw:
            raise SidecarError(f"{source}: curves must be a non-empty list")
        curves = []
        for i, c in enumerate(curves_raw):
            where = f"{source}: curves[{i}]"
            if not isinstance(c, dict):
                raise SidecarError(f"{where} must be an object")
            cid = _require(c, "class_id", where)
            if not isinstance(cid, int) or isinstance(cid, bool) or cid < 1:
                raise SidecarError(f"{where}.class_id must be a positive integer, got {cid!r}")
            mnem = _require(c, "mnemonic", where)
            if not isinstance(mnem, str) or not mnem.strip():
                raise SidecarError(f"{where}.mnemonic must be a non-empty string")
            scale = _require(c, "scale", where)
            if scale not in SCALES:
                raise SidecarError(f"{where}.scale must be one of {SCALES}, got {scale!r}")
            cref = _pairs(_require(c, "ref", where), "value", f"{where}.ref", min_len=2)
            _bounded(cref, MAX_VALUE, "value", f"{where}.ref")
            if len(cref) != 2:
                raise SidecarError(f"{where}.ref needs exactly two (px, value) points, got {len(cref)}")
            if cref[0][0] == cref[1][0] or cref[0][1] == cref[1][1]:
                raise SidecarError(f"{where}.ref points must differ in both px and value")
            if scale == "log" and min(v for _, v in cref) <= 0:
                raise SidecarError(f"{where}.ref values must be positive on a log scale")
            wrap_raw = c.get("wrap")
            wrap = None
            if wrap_raw is not None:
                if not isinstance(wrap_raw, dict) or wrap_raw.get("mode") not in WRAP_MODES:
                    raise SidecarError(f"{where}.wrap must be null or {{'mode': 'backup', 'period': 1}}")
                period = wrap_raw.get("period", 1)
                if not _is_number(period) or not float(period) > 0:
                    raise SidecarError(f"{where}.wrap.period must be a positive number")
                wrap = Wrap(wrap_raw["mode"], float(period))
            unit_c = c.get("unit") or ""
            curves.append(CurveAxis(cid, mnem.strip(), scale, (cref[0], cref[1]), str(unit_c), wrap))
        ids = [c.class_id for c in curves]
        if len(set(ids)) != len(ids):
            raise SidecarError(f"{source}: two curves share a class_id ({ids})")
        known = {"orientation", "depth", "curves"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(orientation, DepthAxis(unit.upper(), dref, None if step is None else float(step)), tuple(curves), extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Sidecar":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SidecarError(f"{path.name}: cannot read the sidecar ({exc})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SidecarError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        return cls.from_dict(data, source=path.name)

    def to_dict(self) -> dict[str, Any]:
        depth: dict[str, Any] = {"unit": self.depth.unit, "ref": [{"px": _num(p), "depth": _num(d)} for p, d in self.depth.ref]}
        if self.depth.step is not None:
            depth["step"] = _num(self.depth.step)
        out: dict[str, Any] = {"orientation": self.orientation, "depth": depth, "curves": []}
        for c in self.curves:
            out["curves"].append(
                {
                    "class_id": c.class_id,
                    "mnemonic": c.mnemonic,
                    "unit": c.unit,
                    "scale": c.scale,
                    "ref": [{"px": _num(p), "value": _num(v)} for p, v in c.ref],
                    "wrap": None if c.wrap is None else {"mode": c.wrap.mode, "period": _num(c.wrap.period)},
                }
            )
        out.update(self.extra)
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write the sidecar as JSON, after checking that what is written reads back (a writer that
        rounds a value out of its valid range fails here, naming the file, not in a later reader)."""
        from veernet_ray.io import atomic_path

        d = self.to_dict()
        Sidecar.from_dict(d, source=Path(path).name)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(d, indent=1) + "\n", encoding="utf-8")

    # ---------------------------------------------------------- orientation
    def canonical(self, scan_shape: tuple[int, int]) -> "Sidecar":
        """This sidecar in canonical pixel coordinates for a scan of `scan_shape` (its own orientation).

        Portrait scans are turned by `numpy.rot90(img, 1)`: original (r, c) goes
        to (W - 1 - c, r), so depth pixels (rows) keep their index and a value
        pixel (column c) becomes row W - 1 - c.
        """
        if self.orientation == "depth_along_width":
            return self
        width = scan_shape[1]
        curves = tuple(replace(c, ref=tuple((width - 1 - p, v) for p, v in c.ref)) for c in self.curves)
        return replace(self, orientation="depth_along_width", curves=curves)

    def curve(self, class_id: int) -> CurveAxis:
        for c in self.curves:
            if c.class_id == class_id:
                return c
        raise KeyError(f"no curve with class_id {class_id}; sidecar has {[c.class_id for c in self.curves]}")


def to_canonical_image(image: np.ndarray, orientation: str) -> np.ndarray:
    """Turn a scan to canonical orientation (depth along width) per the contract."""
    if orientation == "depth_along_width":
        return image
    if orientation == "depth_along_height":
        return np.ascontiguousarray(np.rot90(image, 1))
    raise SidecarError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")


# ---------------------------------------------------------------- helpers
def _piecewise_linear(x: np.ndarray, ref: tuple[tuple[float, float], ...]) -> np.ndarray:
    xs = np.array([p for p, _ in ref], dtype=np.float64)
    ys = np.array([v for _, v in ref], dtype=np.float64)
    # np.interp clamps at the ends; extend the end segments linearly instead
    out = np.interp(x, xs, ys)
    lo_slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
    hi_slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    out = np.where(x < xs[0], ys[0] + (x - xs[0]) * lo_slope, out)
    out = np.where(x > xs[-1], ys[-1] + (x - xs[-1]) * hi_slope, out)
    return out


def _require(d: dict, key: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise SidecarError(f"{where}: missing required field {key!r}")
    return d[key]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _pairs(raw: Any, name: str, where: str, min_len: int) -> list[tuple[float, float]]:
    if not isinstance(raw, list) or len(raw) < min_len:
        n = len(raw) if isinstance(raw, list) else 0
        raise SidecarError(f"{where} needs at least {min_len} reference points, got {n}")
    out = []
    for j, item in enumerate(raw):
        if not isinstance(item, dict) or not _is_number(item.get("px")) or not _is_number(item.get(name)):
            raise SidecarError(f"{where}[{j}] must be {{'px': number, '{name}': number}}, got {item!r}")
        out.append((float(item["px"]), float(item[name])))
    return out


def _bounded(pairs: list[tuple[float, float]], limit: float, name: str, where: str) -> None:
    for px, v in pairs:
        if abs(px) > MAX_PX or abs(v) > limit:
            raise SidecarError(f"{where}: px must lie within +-{MAX_PX:g} and {name} within +-{limit:g}; "
                               f"got px {px:g}, {name} {v:g}")


def _num(x: float) -> float | int:
    """A number as the sidecar writes it: an int where whole, else 9 decimals, or 9 significant digits
    below 1e-3 (9 decimals would write a log scale's edge of 1e-10 as 0, which no log scale can hold)."""
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return int(x)
    return round(x, 9) if abs(x) >= 1e-3 else float(f"{x:.9g}")
