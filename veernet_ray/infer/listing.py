"""List inference inputs from file headers only: no pixel is decoded on the driver.

An input is a folder (searched recursively for .tif/.tiff/.png/.jpg/.jpeg,
training masks `*.mask.*` left out), a glob, or a dataset manifest
(`manifest.parquet`, optionally one split). A sidecar `ID.json` next to a scan
is picked up (a manifest names its own in the `calibration` column).

Every problem that can be seen from a header or a sidecar becomes an error
row here, before any Ray task runs: unreadable headers, tiny scans, scans too
tall to digitise, malformed sidecars, names that would escape the output
folder. What is left is sorted by (padded height, width), so consecutive
dataset rows have nearly the same shape (width bucketing, as in training).
"""

from __future__ import annotations

import glob as globlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from veernet_ray.data.collate import round_up
from veernet_ray.io import IMAGE_SUFFIXES, RasterError, read_header
from veernet_ray.las.sidecar import Sidecar, SidecarError

#: smallest canonical side the network can see: one 32-px cell after padding is mostly padding
MIN_SIDE = 32
#: a portrait heuristic for scans WITHOUT a sidecar: height > PORTRAIT_RATIO x width
#: means depth runs down the height (real logs are 5-20x longer along depth than across)
PORTRAIT_RATIO = 2.0
#: where resume state (one QC record per finished scan) and the default MLflow store live
STATE_DIR = ".veernet"
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class Item:
    """One scan to digitise. Shapes are canonical (depth along width) unless named `orig_`."""

    id: str  # output stem (unique in the run)
    path: str  # absolute image path
    las_out: str  # absolute output LAS path
    height: int
    width: int
    orig_height: int
    orig_width: int
    orientation: str  # the scan's own orientation (sidecar, heuristic or forced)
    sidecar_json: str = ""  # validated sidecar as JSON text ("" = none: normalised output)
    truth_las: str = ""  # manifest inputs: the truth LAS, for scoring

    def row(self) -> dict:
        return asdict(self)


@dataclass
class Listing:
    items: list[Item] = field(default_factory=list)  # to digitise now
    complete: list[Item] = field(default_factory=list)  # LAS and QC record already there (resume)
    errors: list[dict] = field(default_factory=list)  # errors.parquet rows (path, id, kind, message, stage)


def error_row(path: str, scan_id: str, kind: str, message: str, stage: str, status: str = "error") -> dict:
    return {"path": str(path), "id": scan_id, "kind": kind, "message": message, "stage": stage, "status": status}


def qc_record_path(output: Path, scan_id: str) -> Path:
    """The per-scan QC record whose presence (beside the LAS) marks a scan complete."""
    return Path(output) / STATE_DIR / "qc" / f"{scan_id}.json"


def unsafe_name(name: str) -> bool:
    """True when a name would escape a folder if used verbatim (path separators, '.', '..')."""
    parts = re.split(r"[\\/]", name)
    return len(parts) > 1 or name in ("", ".", "..") or name.startswith("..")


def discover(source: str, *, output: Path | None = None, split: str | None = None) -> list[tuple[str, str, str, str]]:
    """(image path, raw name, sidecar path or "", truth LAS or "") for every input named by `source`."""
    p = Path(source).expanduser()
    if p.is_file() and p.suffix.lower() == ".parquet":
        return _from_manifest(p, split)
    if p.is_dir():
        if split is not None and (p / "manifest.parquet").is_file():
            return _from_manifest(p / "manifest.parquet", split)
        out = output.resolve() if output is not None else None
        files = []
        for f in sorted(p.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES or _skip_name(f.name):
                continue
            if out is not None and (f.resolve() == out or out in f.resolve().parents):
                continue  # never digitise the overlays we wrote
            files.append(f)
        return [_with_sidecar(f) for f in files]
    if _GLOB_CHARS.search(source):
        matched = sorted(Path(m) for m in globlib.glob(os.path.expanduser(source), recursive=True))
        return [_with_sidecar(f) for f in matched if f.is_file() and f.suffix.lower() != ".json" and not _skip_name(f.name)]
    if p.is_file():
        return [_with_sidecar(p)]
    raise FileNotFoundError(f"--input {source!r}: no such folder, file or manifest, and no glob characters")


def list_inputs(
    source: str,
    output: str | os.PathLike,
    *,
    split: str | None = None,
    orientation: str = "auto",
    max_height: int = 4096,
    max_pixels: int = 200_000_000,
) -> Listing:
    """Read headers and sidecars, drop what cannot be digitised, mark what is already done.

    orientation: "auto" (sidecar, else the portrait heuristic), "landscape"
    (depth along width) or "portrait" (depth along height) for scans without a sidecar.
    max_height: canonical heights above this are refused (tiles run along depth only).
    max_pixels: canonical scans larger than this are refused with a message.
    """
    output = Path(output).resolve()
    found = discover(source, output=output, split=split)
    listing = Listing()
    names = _unique_names(found)
    for (path, raw, sidecar_path, truth), name in zip(found, names):
        if unsafe_name(raw):
            listing.errors.append(error_row(path, raw, "unsafe_output_name",
                                            f"the name {raw!r} would place the LAS outside the output folder; "
                                            "rename the scan or fix the manifest id", "listing"))
            continue
        try:
            item = _item(path, name, sidecar_path, truth, output, orientation, max_height, max_pixels)
        except RasterError as exc:
            listing.errors.append(error_row(path, name, exc.kind, str(exc), "listing"))
            continue
        except SidecarError as exc:
            listing.errors.append(error_row(path, name, "bad_sidecar", f"{exc}; fix the sidecar or remove it "
                                            "for normalised output", "listing"))
            continue
        except ValueError as exc:  # output_path: escaping the output folder
            listing.errors.append(error_row(path, name, "unsafe_output_name", str(exc), "listing"))
            continue
        if Path(item.las_out).is_file() and qc_record_path(output, item.id).is_file():
            listing.complete.append(item)
        else:
            listing.items.append(item)
    listing.items.sort(key=lambda it: (round_up(it.height, 32), it.width, it.id))
    return listing


# ----------------------------------------------------------------- helpers
def _skip_name(name: str) -> bool:
    # training masks (ID.mask.tif) and hidden/temporary files are not scans
    return name.startswith(".") or ".mask." in name.lower()


def _with_sidecar(f: Path) -> tuple[str, str, str, str]:
    side = f.with_suffix(".json")
    return str(f.resolve()), f.stem, str(side.resolve()) if side.is_file() else "", ""


def _from_manifest(path: Path, split: str | None) -> list[tuple[str, str, str, str]]:
    from veernet_ray.data.manifest import read_manifest

    df = read_manifest(path)
    if split is not None:
        if split not in set(df["split"]):
            raise ValueError(f"{path}: no rows in split {split!r}; splits: {sorted(set(df['split']))}")
        df = df[df["split"] == split]

    def s(v) -> str:
        return "" if v is None or (isinstance(v, float) and v != v) else str(v)

    return [(s(r.image), str(r.id), s(r.calibration), s(r.las)) for r in df.itertuples(index=False)]


def _unique_names(found: list[tuple[str, str, str, str]]) -> list[str]:
    """Output stems: the scan's own name, or its parent folders joined in when two names clash."""
    counts: dict[str, int] = {}
    for _, raw, _, _ in found:
        counts[raw] = counts.get(raw, 0) + 1
    out = []
    for path, raw, _, _ in found:
        if counts[raw] > 1 and not unsafe_name(raw):
            parents = Path(path).parent.parts[-2:]
            out.append("__".join([*parents, raw]))
        else:
            out.append(raw)
    return out


def _item(path: str, name: str, sidecar_path: str, truth: str, output: Path, orientation: str,
          max_height: int, max_pixels: int) -> Item:
    from veernet_ray.las.export import output_path

    header = read_header(path)
    sidecar = Sidecar.load(sidecar_path) if sidecar_path else None
    h, w = header.height, header.width
    if sidecar is not None:
        orient = sidecar.orientation
    elif orientation == "portrait":
        orient = "depth_along_height"
    elif orientation == "landscape":
        orient = "depth_along_width"
    else:
        orient = "depth_along_height" if h > PORTRAIT_RATIO * w else "depth_along_width"
    ch, cw = (w, h) if orient == "depth_along_height" else (h, w)
    if min(ch, cw) < MIN_SIDE:
        raise RasterError("too_small", f"{Path(path).name}: {h} x {w} px; both sides must be at least {MIN_SIDE} px")
    if ch > max_height:
        raise RasterError("too_large", f"{Path(path).name}: {ch} px across the value axis (> --max-height "
                          f"{max_height}); tiles run along depth only, so split or downsample the scan's track")
    if ch * cw > max_pixels:
        raise RasterError("too_large", f"{Path(path).name}: {ch} x {cw} = {ch * cw:,} px (> --max-pixels "
                          f"{max_pixels:,}); split the scan along depth")
    las_out = output_path(output, f"{name}.tif")
    return Item(las_out.stem, path, str(las_out), ch, cw, h, w, orient,
                json.dumps(sidecar.to_dict()) if sidecar is not None else "", truth)
