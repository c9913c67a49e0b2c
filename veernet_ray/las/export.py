"""Digitised output (docs/contracts.md section 4): traced rows -> calibrated (or normalised) LAS + QC rows.

With a sidecar: depth per column from the depth axis, values from each curve
axis (unwrapped rows extrapolate: that is how backup segments get their value),
resampled onto a uniform ascending depth grid, NULL where absent or not
confident, a `<MNEMONIC>_CONF` column per curve.
Without: DEPT is the column index (unit PX), values are positions normalised
to the image height (unit NORM), and ~P says the file is uncalibrated.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from veernet_ray.las.lasfile import LasCurve, write_las
from veernet_ray.las.sidecar import Sidecar
from veernet_ray.trace.thresholds import QC_DEFAULTS
from veernet_ray.trace.tracer import MIN_CONFIDENCE, TraceResult

UNCALIBRATED_UNIT = "PX"
NORM_UNIT = "NORM"
CALIB_PARAM = ("NONE", "", "uncalibrated: DEPT is pixel index, values normalised to track")
#: most LAS rows per scan column: a step finer than a quarter of the pixel pitch adds rows, not
#: information (a sidecar step of 1e-4 once turned a 164 KB scan into a 1.7 M-row, 116 MB LAS)
MAX_ROWS_PER_COLUMN = 4


def depth_grid(axis, width: int) -> tuple[float, float, int]:
    """(first depth, step, rows) of the uniform output grid for a canonical scan `width` columns wide.

    axis: a canonical `sidecar.DepthAxis`. Raises ValueError (with what to change) when the grid
    would exceed MAX_ROWS_PER_COLUMN rows per column or leave the sidecar depth bounds: callers
    check this from headers, before any pixel is decoded.
    """
    from veernet_ray.las.sidecar import MAX_DEPTH

    ends = axis.depth_at(np.array([0.0, width - 1.0]))
    lo, hi = float(ends.min()), float(ends.max())
    if not (np.isfinite(ends).all() and max(abs(lo), abs(hi)) <= MAX_DEPTH):
        raise ValueError(f"the depth axis puts the scan's ends at {lo:.6g} .. {hi:.6g} {axis.unit}, beyond "
                         f"+-{MAX_DEPTH:g}; check depth.ref in the sidecar")
    step = axis.step if axis.step is not None else axis.pixel_pitch()
    rows = (hi - lo) / step + 1 if step > 0 else math.inf
    if not rows <= MAX_ROWS_PER_COLUMN * width + 1:
        raise ValueError(f"depth.step {step:.6g} {axis.unit} gives {rows:,.0f} LAS rows for {width} columns "
                         f"(at most {MAX_ROWS_PER_COLUMN} per column); use a step of at least "
                         f"{(hi - lo) / (MAX_ROWS_PER_COLUMN * width):.6g}, or omit it for the pixel pitch")
    return lo, float(step), int(math.floor((hi - lo) / step + 1e-9)) + 1


@dataclass(frozen=True)
class CurveOutput:
    """One digitised curve on the log's depth grid. values: NaN = NULL; confidence in [0, 1]."""

    class_id: int
    mnemonic: str
    unit: str
    values: np.ndarray
    confidence: np.ndarray
    descr: str = ""


@dataclass(frozen=True)
class DigitisedLog:
    depth: np.ndarray  # (N,) ascending; uniform when calibrated, column index otherwise
    depth_unit: str
    curves: tuple[CurveOutput, ...]
    calibrated: bool
    params: dict[str, tuple] = field(default_factory=dict)  # extra ~P entries


def normalised_position(rows: np.ndarray, height: int) -> np.ndarray:
    """Row -> position on the value axis: 0 = bottom edge (row H-1), 1 = top (row 0)."""
    if height < 2:
        raise ValueError(f"height must be >= 2 to normalise rows, got {height}")
    return (height - 1 - np.asarray(rows, dtype=np.float64)) / (height - 1)


def build_output(
    trace: TraceResult,
    *,
    image_shape: tuple[int, int],
    sidecar: Sidecar | None,
    min_confidence: float = MIN_CONFIDENCE,
) -> DigitisedLog:
    """Turn a trace of a canonical (H, W) image into a DigitisedLog.

    sidecar: already canonical (`Sidecar.canonical`), or None for normalised output.
    A column keeps its value if its confidence >= min_confidence or it was bridged.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    if trace.rows.shape[1] != width:
        raise ValueError(f"trace has {trace.rows.shape[1]} columns but the image is {width} wide")
    valid = np.isfinite(trace.rows) & ((trace.confidence >= min_confidence) | trace.bridged)
    rows = np.where(valid, trace.rows, np.nan)
    conf = np.clip(np.nan_to_num(trace.confidence), 0.0, 1.0)

    if sidecar is None:
        depth = np.arange(width, dtype=np.float64)
        curves = tuple(
            CurveOutput(cid, f"CURVE{cid}", NORM_UNIT, normalised_position(rows[i], height), conf[i],
                        "position normalised to the track, 0 = bottom, 1 = top")
            for i, cid in enumerate(trace.class_ids)
        )
        return DigitisedLog(depth, UNCALIBRATED_UNIT, curves, False, {"CALIB": CALIB_PARAM})

    if sidecar.orientation != "depth_along_width":
        raise ValueError("build_output needs a canonical sidecar: call Sidecar.canonical(scan_shape) first")
    axis = sidecar.depth
    lo, step, n = depth_grid(axis, width)  # bounded rows and depths (ValueError otherwise)
    grid = lo + step * np.arange(n)
    # fractional column of each grid depth; round off float noise so on-column points are exact
    pos = np.clip(np.round(axis.px_at(grid), 9), 0, width - 1)

    curves = []
    for ca in sidecar.curves:
        i = trace.index(ca.class_id)  # KeyError if the sidecar names a class the trace lacks
        # interpolating rows is interpolating values on a linear scale and log10(values)
        # on a log scale, because value_at is linear in the row in those coordinates
        grid_rows = _resample(rows[i], pos)
        values = ca.value_at(grid_rows)
        curves.append(
            CurveOutput(ca.class_id, ca.mnemonic, ca.unit, values, np.clip(_resample(conf[i], pos), 0, 1),
                        f"class {ca.class_id}, {ca.scale} scale")
        )
    return DigitisedLog(grid, axis.unit, tuple(curves), True, {})


def write_digitised_las(path: str | os.PathLike, log: DigitisedLog, provenance: Mapping[str, object]) -> None:
    """Write the log as LAS 2.0 (atomic): DEPT, then per curve its values and `<MNEMONIC>_CONF`.

    provenance: ~P entries (MODEL, CKPT, ...); a value may be a str or a
    (value, unit, description) tuple. VERSION defaults to the platform version.
    """
    from veernet_ray import __version__

    params: dict[str, tuple] = {"VERSION": (__version__, "", "veernet-ray version")}
    for key, value in provenance.items():
        params[str(key)] = value if isinstance(value, tuple) else (value, "", str(key).lower())
    params.update(log.params)
    las_curves = []
    for c in log.curves:
        las_curves.append(LasCurve(c.mnemonic, c.unit, c.values, c.descr))
        las_curves.append(LasCurve(f"{c.mnemonic}_CONF", "", c.confidence, f"confidence 0-1 of {c.mnemonic}"))
    write_las(path, log.depth, las_curves, depth_unit=log.depth_unit, params=params)


def qc_rows(scan_id: str, log: DigitisedLog, *, min_coverage: float = QC_DEFAULTS.min_coverage, min_mean_conf: float = QC_DEFAULTS.min_confidence,
            signals: list[dict[str, float]] | None = None, thresholds=None) -> list[dict]:
    """One QC row per curve: coverage, mean confidence over covered points, the other QC signals, flagged, reason.

    signals: per curve (in `log.curves` order) from `trace.qc.curve_signals`; coverage and
    confidence are measured here on the written depth grid. thresholds: a `trace.qc.QCThresholds`
    (default: its defaults with the given min_coverage and min_mean_conf).
    """
    from veernet_ray.trace.qc import QCThresholds, judge

    t = thresholds or QCThresholds(min_coverage=min_coverage, min_confidence=min_mean_conf)
    out = []
    for i, c in enumerate(log.curves):
        have = np.isfinite(c.values)
        coverage = float(have.mean()) if have.size else 0.0
        mean_conf = float(np.mean(c.confidence[have])) if have.any() else 0.0
        sig = dict(signals[i]) if signals is not None else {}
        sig.update(coverage=coverage, confidence=mean_conf)
        flagged, reason = judge(sig, t, c.class_id)
        reasons = [reason] if reason else []
        if not log.calibrated:
            reasons.append("uncalibrated")
        extra = {f"qc_{k}": float(v) for k, v in sig.items() if k not in ("coverage", "confidence")}
        out.append(
            {
                "scan_id": scan_id,
                "curve": c.mnemonic,
                "class_id": c.class_id,
                "coverage": coverage,
                "mean_confidence": mean_conf,
                **extra,
                "flagged": bool(reasons),
                "reason": "; ".join(reasons),
            }
        )
    return out


#: characters an output stem keeps: Unicode letters and digits (`str.isalnum`), "_", "." and "-";
#: everything else (spaces, separators, control characters, punctuation) becomes "_"
_UNSAFE = re.compile(r"[^\w.\-]")
#: longest output stem in UTF-8 bytes. A file name may hold 255 bytes; the LAS name adds ".las",
#: atomic_path's temporary adds ~15 more, and a collision adds a 9-byte "-<hash>": 200 leaves room.
MAX_STEM_BYTES = 200
#: hex digits of sha256(relative input path) that tell colliding names apart (2**32 per clean name)
NAME_HASH_CHARS = 8


def clean_stem(input_name: str | os.PathLike) -> str:
    """The output stem for one input name, before collisions are resolved.

    Last path component only, extension dropped, Unicode NFC; letters and digits of any
    script survive where the file system encoding can hold them (else ASCII only);
    anything else becomes "_"; no "..", no leading dot; at most MAX_STEM_BYTES bytes
    (a truncated stem ends in a hash of the full one, so two long names stay apart).
    """
    import unicodedata

    name = re.split(r"[\\/]", os.fspath(input_name))[-1]
    stem = unicodedata.normalize("NFC", PurePath(name).stem if name else "")
    stem = _UNSAFE.sub("_", stem)
    if not _fs_encodable(stem):
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem)
    stem = re.sub(r"\.{2,}", "_", stem).strip(".")  # no "..", no hidden files
    if not stem.strip("_"):
        stem = "scan"
    if len(stem.encode("utf-8")) > MAX_STEM_BYTES:
        tag = "-" + _short_hash(stem)
        cut = stem.encode("utf-8")[: MAX_STEM_BYTES - len(tag)].decode("utf-8", errors="ignore")
        stem = cut.rstrip(".") + tag
    return stem


def safe_output_name(input_name: str | os.PathLike) -> str:
    """`<stem>.las` from an input file name (see `clean_stem`); never a path, never hidden."""
    return f"{clean_stem(input_name)}.las"


def assign_output_stems(names: list[str], keys: list[str]) -> list[str]:
    """Unique, stable output stems for a run's inputs: `clean_stem(name)`, plus `-<hash of key>` on a clash.

    names: the inputs' file names (or manifest ids); keys: what tells them apart and does
    not change between runs (the input path relative to the input folder, or the manifest
    id). Stems that are equal after cleaning, compared case-insensitively (a case-insensitive
    file system would merge them), ALL get the hash, so no input silently owns the plain name
    and the result does not depend on listing order. Raises ValueError if two inputs share a key.
    """
    if len(names) != len(keys):
        raise ValueError(f"assign_output_stems: {len(names)} names but {len(keys)} keys")
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"two inputs share the key(s) {dup[:3]}; input keys must be unique")
    stems = [clean_stem(n) for n in names]
    groups: dict[str, int] = {}
    for s in stems:
        groups[s.casefold()] = groups.get(s.casefold(), 0) + 1
    out = [f"{s}-{_short_hash(k)}" if groups[s.casefold()] > 1 else s for s, k in zip(stems, keys)]
    folded = [o.casefold() for o in out]
    if len(set(folded)) != len(folded):  # 2**-32 per pair: say so rather than overwrite
        clash = sorted({o for o in out if folded.count(o.casefold()) > 1})
        raise ValueError(f"output names still collide after hashing: {clash[:3]}; rename those inputs")
    return out


def output_path(out_dir: str | os.PathLike, input_name: str | os.PathLike, stem: str | None = None) -> Path:
    """Where the LAS for `input_name` (or for an already assigned `stem`) goes; ValueError outside out_dir."""
    root = Path(out_dir).resolve()
    name = f"{stem}.las" if stem is not None else safe_output_name(input_name)
    target = (root / name).resolve()
    clean = stem is None or (not _UNSAFE.search(stem) and ".." not in stem and not stem.startswith("."))
    if target.parent != root or not clean:
        raise ValueError(f"output for {os.fspath(input_name)!r} would escape the output folder {root}")
    return target


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:NAME_HASH_CHARS]


def _fs_encodable(text: str) -> bool:
    import sys

    try:
        text.encode(sys.getfilesystemencoding(), errors="strict")
        return True
    except UnicodeEncodeError:
        return False


def _resample(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation at fractional indices; a point between a value and a NaN is NaN."""
    from veernet_ray.metrics.curves import resample_linear  # NumPy only: no torch import

    return resample_linear(values, pos)
