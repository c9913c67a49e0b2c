"""Real curves from LAS files: the generator's `las` curve source.

`load_las_pool(folder)` reads every *.las file once (in the driver), keeps the
curves worth drawing as compact float arrays on an ascending depth index, and
skips unreadable files with a warning naming them. `pick_window` then chooses
two curves of one file and a depth window for one image.

What real archives throw at a reader, and what happens here:
- NULLs: the header's NULL and the common sentinels (-999.25, -9999, ...)
  become NaN; a NaN stretch is a gap: not drawn, truth NaN.
- Descending depth or STEP 0 (irregular grids): samples are sorted by depth,
  duplicates dropped, and values interpolated by depth, never by index.
- Odd headers: read with lasio's lenient options; a curve that copies the
  depth column, is constant, or has almost no finite samples is not used.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Values archives use for "no data" besides the header's NULL.
SENTINELS = (-999.25, -999.0, -9999.0, -9999.25, -99999.0, 999.25, 9999.0, -999.2500)
MIN_SAMPLES = 50
SKIP_MNEMONICS = {"DEPT", "DEPTH", "MD", "TVD", "TVDSS", "TIME", "ETIM", "INDEX", "FRAME"}
LOG_UNITS = {"OHMM", "OHM.M", "OHM-M", "OHM/M", "OHMS", "OHM"}


class LasSourceError(ValueError):
    """No usable real curve: the message names the folder and why each file failed."""


@dataclass(frozen=True)
class RealCurve:
    file: str  # file name, the manifest's `source`
    mnemonic: str
    unit: str
    depth_unit: str  # M | F | FT
    depth: np.ndarray  # (N,) float64, strictly ascending
    values: np.ndarray  # (N,) float64, NaN = missing
    log_scale: bool  # printed on a log scale (resistivity-like and positive)


@dataclass(frozen=True)
class LasPool:
    """Usable curves grouped by file (a sample's two curves come from one well)."""

    files: tuple[tuple[str, tuple[RealCurve, ...]], ...]

    def __len__(self) -> int:
        return len(self.files)


def load_las_pool(
    folder: str | os.PathLike, *, include: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()
) -> LasPool:
    """Usable curves of the *.las files in `folder` (only `include` when given; never `exclude`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LasSourceError(f"--las-dir {folder}: not a folder")
    paths = sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() == ".las" and p.is_file() and p.name not in exclude and (include is None or p.name in include)
    )
    if not paths:
        raise LasSourceError(f"--las-dir {folder}: no *.las files there")
    files, reasons = [], []
    for p in paths:
        try:
            curves = read_curves(p)
        except Exception as exc:  # any parser failure: skip the file, name it
            reasons.append(f"{p.name} ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})")
            warnings.warn(f"skipping unreadable LAS file {p.name}: {exc}", stacklevel=2)
            continue
        if curves:
            files.append((p.name, tuple(curves)))
        else:
            reasons.append(f"{p.name} (no drawable curve)")
            warnings.warn(f"skipping LAS file {p.name}: no curve with enough usable samples", stacklevel=2)
    if not files:
        raise LasSourceError(f"--las-dir {folder}: no usable LAS curves in {len(paths)} file(s): " + "; ".join(reasons))
    return LasPool(tuple(files))


def read_curves(path: Path) -> list[RealCurve]:
    import lasio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        las = lasio.read(str(path), ignore_header_errors=True, ignore_data_comments="#", engine="normal")
    if las.curves is None or len(las.curves) < 2:
        raise ValueError("fewer than two columns (depth plus a curve)")
    depth = np.asarray(las.index, dtype=np.float64)
    if depth.size < MIN_SAMPLES:
        raise ValueError(f"only {depth.size} depth samples")
    dunit = _depth_unit(las.curves[0].unit, las)
    null = _null_value(las)
    ok = np.isfinite(depth) & ~_is_null(depth, null)
    order = np.argsort(depth[ok], kind="stable")
    depth_sorted = depth[ok][order]
    depth_u, first = np.unique(depth_sorted, return_index=True)  # duplicates: keep the first
    if depth_u.size < MIN_SAMPLES or depth_u[-1] - depth_u[0] <= 0:
        raise ValueError("depth index has no usable range")
    out = []
    seen = set()
    for c in las.curves[1:]:
        mnem = str(c.mnemonic or "").strip().upper().split(":")[0]
        if not mnem or mnem in SKIP_MNEMONICS or mnem in seen:
            continue
        try:
            v = np.asarray(c.data, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if v.shape != depth.shape:
            continue
        v = v[ok][order][first].copy()
        v[_is_null(v, null) | ~np.isfinite(v) | (np.abs(v) > 1e9)] = np.nan
        fin = np.isfinite(v)
        if fin.sum() < MIN_SAMPLES:
            continue
        vf = v[fin]
        if np.unique(np.round(vf, 6)).size < 5 or np.nanstd(vf) <= 1e-9 * max(1.0, abs(np.nanmean(vf))):
            continue  # constant or nearly so
        if abs(np.corrcoef(vf, depth_u[fin])[0, 1]) > 0.999:
            continue  # a copy of the depth column under a wrong mnemonic
        unit = str(c.unit or "").strip()
        logs = unit.upper().replace(" ", "") in LOG_UNITS or mnem.startswith(("IL", "LL", "RES", "RLA", "RT", "SFL", "MSFL", "RXO", "SN", "LN"))
        q_lo = np.nanpercentile(vf, 2)
        logs = bool(logs and q_lo > 0)
        seen.add(mnem)
        out.append(RealCurve(path.name, mnem, unit, dunit, depth_u, v, logs))
    return out


def sample_at(curve: RealCurve, depths: np.ndarray) -> np.ndarray:
    """Linear interpolation by depth; NaN wherever either neighbouring sample is NaN or outside."""
    d, v = curve.depth, curve.values
    i = np.clip(np.searchsorted(d, depths, side="right") - 1, 0, d.size - 2)
    d0, d1 = d[i], d[i + 1]
    t = (depths - d0) / (d1 - d0)
    out = v[i] * (1 - t) + v[i + 1] * t
    out[(depths < d[0]) | (depths > d[-1])] = np.nan
    # an exact hit on a sample uses it alone (a NaN neighbour does not matter there)
    exact = t <= 1e-12
    out[exact] = v[i[exact]]
    return out


def pick_window(
    rng: np.random.Generator, pool: LasPool, width: int, tries: int = 20
) -> tuple[str, list[RealCurve], float, float] | None:
    """(file, curves (1 or 2), start depth, pitch) for an image `width` columns wide, or None.

    The pitch (depth per column) follows the file's sampling step (0.3-1.5 samples
    per column) but shrinks so the window fits the logged interval.
    """
    for _ in range(tries):
        fname, curves = pool.files[int(rng.integers(len(pool.files)))]
        pick = [curves[i] for i in rng.choice(len(curves), size=min(2, len(curves)), replace=False)]
        d = pick[0].depth
        span = d[-1] - d[0]
        step = float(np.median(np.diff(d)))
        pitch = step * rng.uniform(0.3, 1.5)
        pitch = min(pitch, span / (width - 1))
        window = pitch * (width - 1)
        start = float(rng.uniform(d[0], d[-1] - window)) if d[-1] - window > d[0] else float(d[0])
        cols = start + pitch * np.arange(width)
        good = [np.isfinite(sample_at(c, cols)).mean() for c in pick]
        if min(good) >= 0.6:
            return fname, pick, start, pitch
    return None


def _depth_unit(unit: str | None, las) -> str:
    u = str(unit or "").strip().upper()
    if not u:
        try:
            u = str(las.well["STRT"].unit or "").strip().upper()
        except Exception:
            u = ""
    if u in ("F", "FT", "FEET", "FOOT"):
        return "FT" if u != "F" else "F"
    return "M"


def _null_value(las) -> float | None:
    try:
        return float(las.well["NULL"].value)
    except Exception:
        return None


def _is_null(v: np.ndarray, null: float | None) -> np.ndarray:
    bad = np.zeros(v.shape, bool)
    for s in SENTINELS + ((null,) if null is not None else ()):
        bad |= np.isclose(v, s, rtol=0, atol=1e-6)
    return bad
