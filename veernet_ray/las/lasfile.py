"""LAS 2.0 reading and writing through lasio, holding to the LAS writer rules (docs/contracts.md section 4).

lasio does the formatting; this module adds what lasio does not check:
- STEP is the grid step only when the depth grid is exactly uniform, else 0
  (lasio sets STEP from the first two depths without looking at the rest);
- STRT/STOP are written with the same number format as the ~A depth column,
  so they equal the first and last depth character for character;
- mnemonics are sanitised and made unique, DEPT is always the first column;
- the file appears atomically (temporary file, then rename), and the same
  input always gives the same bytes (no dates, fixed formats).
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from veernet_ray.io import atomic_path

#: Depth units the writer accepts. M/F/FT are the LAS 2.0 depth units; PX is the
#: contract's pixel index for uncalibrated output (docs/contracts.md section 4). lasio
#: reads and writes any unit string, but strict LAS readers only know M/F/FT.
DEPTH_UNITS = ("M", "F", "FT", "PX")
DEFAULT_NULL = -999.25
#: Relative tolerance for "the depth grid is exactly uniform": float grids built
#: as start + i * step differ from the ideal by ~1e-13 relative, real irregular
#: grids by far more than 1e-9.
UNIFORM_RTOL = 1e-9
VALUE_FMT = "%.6f"

_MNEMONIC_BAD = re.compile(r"[^A-Za-z0-9_\-]")
#: anything a reader may take as a line break or that is not printable: control characters,
#: NEL and the Unicode line and paragraph separators (str.splitlines splits on all of them)
_HEADER_BAD = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: a unit sits between the mnemonic's "." and the first space, and the value ends at ":":
#: it can hold no space, ".", ":" or control character
_UNIT_BAD = re.compile("[\\s.:\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class LasCurve:
    """One ~C / ~A column. `values` are floats, NaN = missing (written as NULL)."""

    mnemonic: str
    unit: str
    values: np.ndarray
    descr: str = ""


def write_las(
    path: str | os.PathLike,
    depth: np.ndarray,
    curves: Sequence[LasCurve],
    *,
    depth_unit: str,
    null: float = DEFAULT_NULL,
    well: Mapping[str, str] | None = None,
    params: Mapping[str, tuple] | None = None,
) -> None:
    """Write a LAS 2.0 file (~V, ~W, ~C, ~P, ~O, ~A) atomically.

    depth: (N,) strictly increasing or strictly decreasing, finite.
    curves: each with N values; NaN becomes `null`.
    well: extra ~W entries, e.g. {"WELL": "A-1", "COMP": "..."}; STRT/STOP/STEP/NULL
        are computed here and cannot be overridden.
    params: ~P entries, mnemonic -> (value, unit, description) (unit and
        description optional).
    Raises ValueError naming the problem for an empty, non-finite or non-monotone
    depth, a length mismatch, a non-finite null or an unknown depth unit.
    """
    import lasio
    from lasio.las_items import HeaderItem

    depth = np.asarray(depth, dtype=np.float64)
    unit = _check_depth_unit(depth_unit)
    _check_depth(depth)
    if not math.isfinite(null):
        raise ValueError(f"write_las: null must be a finite number, got {null!r}")
    columns = []
    for i, c in enumerate(curves):
        values = np.asarray(c.values, dtype=np.float64)
        if values.shape != depth.shape:
            raise ValueError(
                f"write_las: curve {i} ({c.mnemonic!r}) has {values.shape} values, depth has {depth.shape}"
            )
        if np.isinf(values).any():
            raise ValueError(f"write_las: curve {i} ({c.mnemonic!r}) has infinite values; use NaN for missing")
        columns.append(values)
    mnemonics = unique_mnemonics([c.mnemonic for c in curves], reserved=("DEPT",))

    depth_fmt = _depth_format(depth)
    step = uniform_step(depth)

    las = lasio.LASFile()
    # DLM is a LAS 3.0 item lasio adds by default; a 2.0 ~V holds VERS and WRAP only
    if "DLM" in las.version:
        del las.version["DLM"]
    las.well["NULL"].value = float(null)
    for key, value in (well or {}).items():
        mnem = _sanitise_mnemonic(key)
        if mnem in ("STRT", "STOP", "STEP", "NULL"):
            raise ValueError(f"write_las: well entry {key!r} is computed from the depth array; do not pass it")
        if mnem in las.well:
            las.well[mnem].value = _header_value(value)
        else:
            las.well[mnem] = HeaderItem(mnem, "", _header_value(value), "")
    for key, entry in (params or {}).items():
        mnem = _sanitise_mnemonic(key)
        if not isinstance(entry, tuple):
            entry = (entry,)
        value, p_unit, descr = (tuple(entry) + ("", ""))[:3]
        las.params[mnem] = HeaderItem(mnem, _unit_text(p_unit), _header_value(value), _descr_text(descr))

    # lasio writes the headers; the ~A block is formatted here in one pass, because
    # lasio formats it value by value in Python (0.15-0.3 s for a 12,800-row log, the
    # generator's largest cost). lasio gets one row so it can lay out ~C and ~A.
    las.append_curve("DEPT", depth[:1], unit=unit, descr="Depth")
    for c, mnem, values in zip(curves, mnemonics, columns):
        las.append_curve(mnem, values[:1], unit=_unit_text(c.unit), descr=_descr_text(c.descr))
    header = io.StringIO()
    las.write(
        header,
        version=2.0,
        wrap=False,
        STRT=depth_fmt % depth[0],
        STOP=depth_fmt % depth[-1],
        STEP="0" if step == 0.0 else depth_fmt % step,
        fmt=VALUE_FMT,
        column_fmt={0: depth_fmt},
    )
    text = header.getvalue()
    cut = text.index("\n", text.index("\n~A")+1) + 1  # keep everything up to the ~A line
    data = np.column_stack([depth] + [np.where(np.isnan(v), null, v) for v in columns])
    depth_w = max(len(depth_fmt % depth[0]), len(depth_fmt % depth[-1])) + 4
    row_fmt = " ".join([f"%{depth_w}{depth_fmt[1:]}"] + [f"%12{VALUE_FMT[1:]}"] * len(columns))
    body = "\n".join(row_fmt % tuple(r) for r in data.tolist()) + "\n"

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii", errors="replace", newline="\n") as fh:
            fh.write(text[:cut])
            fh.write(body)


def read_las_curves(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """Read a LAS file: (depth, {mnemonic: values with NaN for NULL}, depth unit).

    The first ~C column is the depth index; the dict holds every other column.
    """
    import lasio

    las = lasio.read(str(path))
    if not las.curves:
        raise ValueError(f"{os.fspath(path)}: the LAS file has no curves")
    depth = np.asarray(las.curves[0].data, dtype=np.float64)
    out = {c.mnemonic: np.asarray(c.data, dtype=np.float64) for c in las.curves[1:]}
    unit = las.curves[0].unit or str(las.well["STRT"].unit or "")
    return depth, out, unit.upper()


# ----------------------------------------------------------------- helpers
def uniform_step(depth: np.ndarray) -> float:
    """The grid step if `depth` is exactly uniform (within UNIFORM_RTOL), else 0.0."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.size < 2:
        return 0.0
    step = (depth[-1] - depth[0]) / (depth.size - 1)
    diffs = np.diff(depth)
    if np.max(np.abs(diffs - step)) <= UNIFORM_RTOL * abs(step):
        return float(step)
    return 0.0


def unique_mnemonics(names: Sequence[str], reserved: Sequence[str] = ()) -> list[str]:
    """Sanitised (A-Z a-z 0-9 _ -), non-empty, unique mnemonics; clashes get _1, _2, ..."""
    taken = {r.upper() for r in reserved}
    out = []
    for name in names:
        base = _sanitise_mnemonic(name)
        cand, k = base, 1
        while cand.upper() in taken:
            cand = f"{base}_{k}"
            k += 1
        taken.add(cand.upper())
        out.append(cand)
    return out


def _sanitise_mnemonic(name: object) -> str:
    text = _MNEMONIC_BAD.sub("_", str(name).strip())
    return text or "CURVE"


def _header_text(value: object) -> str:
    # one header line each: no line breaks; non-ASCII becomes '?' at write time
    return _HEADER_BAD.sub(" ", "" if value is None else str(value)).strip()


def _descr_text(value: object) -> str:
    # readers (lasio among them) split a line at a colon in the description too: keep it out
    return _header_text(value).replace(":", ";")


def _unit_text(value: object) -> str:
    # "G/C3", "OHMM", "%" survive; "ohm m", "m.s", "a:b" or a newline would split the header line
    return _UNIT_BAD.sub("_", "" if value is None else str(value).strip())


def _header_value(value: object) -> str:
    # lasio (and many LAS readers) end the value field at the first colon, so a
    # value such as "sha256:ab12" or "C:/ckpt.pt" would be cut; write "_" instead
    return _header_text(value).replace(":", "_")


def _check_depth_unit(unit: str) -> str:
    u = str(unit).strip().upper()
    if u not in DEPTH_UNITS:
        raise ValueError(f"write_las: depth_unit must be one of {DEPTH_UNITS}, got {unit!r}")
    return u


def _check_depth(depth: np.ndarray) -> None:
    if depth.ndim != 1:
        raise ValueError(f"write_las: depth must be 1-D, got shape {depth.shape}")
    if depth.size == 0:
        raise ValueError("write_las: depth is empty; nothing to write")
    if not np.isfinite(depth).all():
        raise ValueError("write_las: depth has NaN or infinite values")
    if depth.size > 1:
        d = np.diff(depth)
        if not (np.all(d > 0) or np.all(d < 0)):
            raise ValueError("write_las: depth must be strictly increasing or strictly decreasing (no repeats)")


def _depth_format(depth: np.ndarray) -> str:
    """Fewest decimals (1..9) that print every depth exactly enough for the grid to round-trip."""
    scale = max(1.0, float(np.max(np.abs(depth))))
    for decimals in range(1, 10):
        if np.max(np.abs(np.round(depth, decimals) - depth)) <= 1e-9 * scale:
            return f"%.{decimals}f"
    return "%.9f"
