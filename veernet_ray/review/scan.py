"""One digitised scan as the reviewer sees it: its LAS table, the scan pixels and the pixel <-> LAS geometry.

The LAS is read with lasio and written back through `las.lasfile.write_las` (the
writer every LAS of the platform goes through: atomic, same bytes for the same
input), so a file the reviewer did not change comes back byte for byte, and
the ~P provenance of the inference run is kept.

Geometry: with a sidecar (the `ID.json` beside the scan, as `veernet infer` found
it), LAS depths map to scan columns through the sidecar's depth axis and values to
rows through each curve's axis; without one the LAS is normalised (DEPT = column,
value 0 = bottom row, 1 = top row; docs/contracts.md section 4).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from veernet_ray.las.lasfile import DEFAULT_NULL, LasCurve, write_las
from veernet_ray.las.sidecar import CurveAxis, Sidecar, SidecarError, to_canonical_image

#: a scan without a sidecar that is this much taller than wide is portrait (infer.listing.PORTRAIT_RATIO)
PORTRAIT_RATIO = 2.0
CONF_SUFFIX = "_CONF"


class ScanError(ValueError):
    """A scan whose LAS, sidecar or pixels cannot be put together; the message says what to fix."""


# ------------------------------------------------------------------ LAS table
@dataclass
class LasTable:
    """A LAS file as columns: enough to write it back unchanged apart from what an edit touched."""

    depth: np.ndarray
    depth_unit: str
    null: float
    curves: list[LasCurve]  # every column after DEPT, in file order; NaN = NULL
    params: "OrderedDict[str, tuple[str, str, str]]" = field(default_factory=OrderedDict)  # ~P: (value, unit, descr)

    def index(self, mnemonic: str) -> int:
        for i, c in enumerate(self.curves):
            if c.mnemonic == mnemonic:
                return i
        raise KeyError(f"the LAS has no curve {mnemonic!r}; it has {[c.mnemonic for c in self.curves]}")

    def values(self, mnemonic: str) -> np.ndarray:
        return self.curves[self.index(mnemonic)].values

    def conf(self, mnemonic: str) -> np.ndarray:
        """The curve's confidence column, or ones where the LAS has none."""
        try:
            return self.values(mnemonic + CONF_SUFFIX)
        except KeyError:
            return np.ones_like(self.values(mnemonic))

    def set(self, mnemonic: str, values: np.ndarray) -> None:
        i = self.index(mnemonic)
        c = self.curves[i]
        self.curves[i] = LasCurve(c.mnemonic, c.unit, np.asarray(values, dtype=np.float64), c.descr)

    def value_mnemonics(self) -> list[str]:
        """The curve columns (not their `_CONF` companions), in file order."""
        names = [c.mnemonic for c in self.curves]
        return [n for n in names if not (n.endswith(CONF_SUFFIX) and n[: -len(CONF_SUFFIX)] in names)]


def read_las_table(path: str | os.PathLike) -> LasTable:
    """Read a LAS written by `veernet infer` (or any LAS 2.0 with a depth first column)."""
    import lasio

    try:
        las = lasio.read(str(path))
    except Exception as exc:
        raise ScanError(f"{Path(path).name}: cannot read the LAS ({type(exc).__name__}: {exc})") from exc
    if len(las.curves) < 2:
        raise ScanError(f"{Path(path).name}: the LAS has no curve columns")
    null = float(las.well["NULL"].value) if "NULL" in las.well else DEFAULT_NULL
    depth = np.asarray(las.curves[0].data, dtype=np.float64)
    curves = [LasCurve(c.mnemonic, c.unit or "", np.asarray(c.data, dtype=np.float64), c.descr or "")
              for c in las.curves[1:]]
    params = OrderedDict((p.mnemonic, (str(p.value), p.unit or "", p.descr or "")) for p in las.params)
    unit = (las.curves[0].unit or str(las.well["STRT"].unit or "")).upper()
    return LasTable(depth, unit, null, curves, params)


def write_las_table(path: str | os.PathLike, table: LasTable) -> None:
    """Write the table back atomically (temporary file, then rename) through the platform's LAS writer."""
    write_las(path, table.depth, table.curves, depth_unit=table.depth_unit, null=table.null, params=table.params)


# ------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class Geometry:
    """Pixels <-> LAS for one canonical scan. cols[i]: the scan column of LAS row i."""

    width: int
    height: int
    cols: np.ndarray
    axes: dict[str, CurveAxis | None]  # mnemonic -> the sidecar's curve axis (None: normalised)

    @property
    def calibrated(self) -> bool:
        return any(a is not None for a in self.axes.values())

    def rows_of(self, mnemonic: str, values: np.ndarray) -> np.ndarray:
        """Scan rows of LAS values (NaN stays NaN)."""
        axis = self.axes[mnemonic]
        values = np.asarray(values, dtype=np.float64)
        if axis is None:  # normalised: 0 = bottom row, 1 = top row
            return (self.height - 1) * (1.0 - values)
        return np.asarray(axis.row_at(values), dtype=np.float64)

    def values_of(self, mnemonic: str, rows: np.ndarray) -> np.ndarray:
        """LAS values of scan rows (the inverse of `rows_of`)."""
        axis = self.axes[mnemonic]
        rows = np.asarray(rows, dtype=np.float64)
        if axis is None:
            return (self.height - 1 - rows) / (self.height - 1)
        return np.asarray(axis.value_at(rows), dtype=np.float64)

    def display_rows(self, mnemonic: str, rows: np.ndarray) -> np.ndarray:
        """Rows to draw: a backup-wrapped curve's unwrapped rows folded back into its track."""
        axis = self.axes[mnemonic]
        if axis is None or axis.wrap is None:
            return rows
        top = min(axis.ref[0][0], axis.ref[1][0])
        period = axis.wrap.period * axis.track_px
        return top + np.mod(rows - top, period) if period > 0 else rows

    def axis_json(self, mnemonic: str) -> dict:
        """The value axis for drawing ticks: scale and two (row, value) references."""
        axis = self.axes[mnemonic]
        if axis is None:
            return {"scale": "linear", "ref": [[self.height - 1, 0.0], [0.0, 1.0]]}
        return {"scale": axis.scale, "ref": [[float(r), float(v)] for r, v in axis.ref]}


def find_sidecar(scan_path: Path) -> Path | None:
    """The sidecar `veernet infer` used for a scan: `ID.json` beside it (folders and generated manifests)."""
    side = scan_path.with_suffix(".json")
    return side if side.is_file() else None


def load_geometry(table: LasTable, scan_path: Path, class_ids: dict[str, int],
                  scan_shape: tuple[int, int]) -> tuple[Geometry, str]:
    """(geometry, orientation) for a scan whose own (not canonical) shape is `scan_shape`.

    Raises ScanError when the LAS and the scan do not fit together (another scan, another sidecar).
    """
    mnems = table.value_mnemonics()
    calibrated = table.depth_unit != "PX"
    h0, w0 = scan_shape
    if not calibrated:
        orientation = "depth_along_height" if h0 > PORTRAIT_RATIO * w0 else "depth_along_width"
        height, width = (w0, h0) if orientation == "depth_along_height" else (h0, w0)
        if table.depth.size != width:
            raise ScanError(f"the LAS has {table.depth.size} rows but the scan is {width} columns long; "
                            "was it digitised from another scan?")
        return Geometry(width, height, table.depth.copy(), {m: None for m in mnems}), orientation
    side_path = find_sidecar(scan_path)
    if side_path is None:
        raise ScanError(f"the LAS is calibrated but no sidecar {scan_path.with_suffix('.json').name} is beside "
                        f"{scan_path}; put the sidecar inference used back there")
    try:
        sidecar = Sidecar.load(side_path)
    except SidecarError as exc:
        raise ScanError(str(exc)) from exc
    orientation = sidecar.orientation
    sidecar = sidecar.canonical((h0, w0))
    height, width = (w0, h0) if orientation == "depth_along_height" else (h0, w0)
    axes: dict[str, CurveAxis | None] = {}
    for m in mnems:
        if m not in class_ids:
            raise ScanError(f"qc.parquet has no row for curve {m!r} of this LAS")
        try:
            axes[m] = sidecar.curve(class_ids[m])
        except KeyError as exc:
            raise ScanError(f"{side_path.name}: {exc.args[0]}") from exc
    cols = np.asarray(sidecar.depth.px_at(table.depth), dtype=np.float64)
    if cols.size and (cols.min() < -1 or cols.max() > width):
        raise ScanError(f"the LAS depths map to columns {cols.min():.0f}..{cols.max():.0f}, outside the "
                        f"{width}-column scan; is {side_path.name} the sidecar inference used?")
    return Geometry(width, height, cols, axes), orientation


def load_canonical_image(scan_path: Path, orientation: str) -> np.ndarray:
    from veernet_ray.io import RasterError, read_image

    try:
        return to_canonical_image(read_image(scan_path), orientation)
    except (RasterError, SidecarError) as exc:
        raise ScanError(str(exc)) from exc


__all__ = ["CONF_SUFFIX", "Geometry", "LasTable", "ScanError", "find_sidecar", "load_canonical_image",
           "load_geometry", "read_las_table", "write_las_table"]
