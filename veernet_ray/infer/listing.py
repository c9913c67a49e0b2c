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

from veernet_ray.data.collate import DEFAULT_MULTIPLE, round_up
from veernet_ray.io import IMAGE_SUFFIXES, RasterError, read_header
from veernet_ray.las.sidecar import Sidecar, SidecarError

#: smallest canonical side the network can see: one 32-px cell after padding is mostly padding
MIN_SIDE = 32
#: a portrait heuristic for scans WITHOUT a sidecar: height > PORTRAIT_RATIO x width
#: means depth runs down the height (real logs are 5-20x longer along depth than across)
PORTRAIT_RATIO = 2.0
#: default pixel budget per scan (canonical H x W): 4,096 x 16,384. The write stage holds float32
#: probabilities for three classes plus the scan and its trace, ~24 bytes a pixel: ~1.5 GB at the
#: budget. Larger scans are refused from their header, before a byte is decoded.
MAX_PIXELS = 64 * 2**20
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
    fingerprint: str = ""  # what made (or will make) its LAS: model, calibration, options (see `item_fingerprint`)

    def row(self) -> dict:
        return asdict(self)


@dataclass
class Listing:
    items: list[Item] = field(default_factory=list)  # to digitise now
    complete: list[Item] = field(default_factory=list)  # LAS and QC record already there (resume)
    errors: list[dict] = field(default_factory=list)  # errors.parquet rows (path, id, kind, message, stage)
    other_model: int = 0  # outputs there, but made by another checkpoint: redone
    other_options: int = 0  # outputs there, same checkpoint, other calibration or options: redone


def error_row(path: str, scan_id: str, kind: str, message: str, stage: str, status: str = "error") -> dict:
    return {"path": str(path), "id": scan_id, "kind": kind, "message": message, "stage": stage, "status": status}


def qc_record_path(output: Path, scan_id: str) -> Path:
    """The per-scan QC record whose presence (beside the LAS) marks a scan complete."""
    return Path(output) / STATE_DIR / "qc" / f"{scan_id}.json"


def item_fingerprint(run_key: str, item: Item) -> str:
    """Short hash of what makes a scan's LAS: the run key (checkpoint hash, options), its sidecar, orientation."""
    import hashlib

    text = json.dumps([run_key, item.sidecar_json, item.orientation, item.height, item.width])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_qc_record(path: Path) -> dict | None:
    """{"ckpt", "fingerprint", "rows"} from a scan's QC record; None if absent or unreadable.

    A record of an older version (a bare list of rows) has no fingerprint: its scan is redone.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, list):
        return {"ckpt": "", "fingerprint": "", "rows": data}
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        return {"ckpt": str(data.get("ckpt", "")), "fingerprint": str(data.get("fingerprint", "")),
                "rows": data["rows"]}
    return None


def unsafe_name(name: str) -> bool:
    """True when a name would escape a folder if used verbatim (path separators, '.', '..')."""
    parts = re.split(r"[\\/]", name)
    return len(parts) > 1 or name in ("", ".", "..") or name.startswith("..")


@dataclass(frozen=True)
class Found:
    """One input named by `--input`, before its header is read."""

    path: str  # absolute image path
    name: str  # file name, or the manifest id: what the output is named after
    key: str  # stable and unique within the run: path relative to the input root, or the manifest id
    sidecar: str = ""
    truth: str = ""


def discover(source: str, *, output: Path | None = None, split: str | None = None,
             follow_symlinks: bool = False) -> tuple[list[Found], list[dict]]:
    """(inputs named by `source`, error rows for entries refused on sight).

    A symlink (file or sidecar) that resolves outside the input folder, or the glob's
    fixed prefix, is refused unless follow_symlinks; manifests name their files explicitly.
    """
    p = Path(source).expanduser()
    if p.is_file() and p.suffix.lower() == ".parquet":
        return _from_manifest(p, split), []
    if p.is_dir():
        if split is not None and (p / "manifest.parquet").is_file():
            return _from_manifest(p / "manifest.parquet", split), []
        out = output.resolve() if output is not None else None
        files = []
        for f in sorted(p.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES or _skip_name(f.name):
                continue
            if out is not None and (f.resolve() == out or out in f.resolve().parents):
                continue  # never digitise the overlays we wrote
            files.append(f)
        return _found(files, p, follow_symlinks)
    if _GLOB_CHARS.search(source):
        matched = sorted(Path(m) for m in globlib.glob(os.path.expanduser(source), recursive=True))
        files = [f for f in matched if f.is_file() and f.suffix.lower() != ".json" and not _skip_name(f.name)]
        return _found(files, _glob_root(os.path.expanduser(source)), follow_symlinks)
    if p.is_file():
        return _found([p], p.parent, follow_symlinks=True)  # one file named outright: the user chose it
    raise FileNotFoundError(f"--input {source!r}: no such folder, file or manifest, and no glob characters")


def list_inputs(
    source: str,
    output: str | os.PathLike,
    *,
    split: str | None = None,
    orientation: str = "auto",
    max_height: int = 4096,
    max_pixels: int = MAX_PIXELS,
    follow_symlinks: bool = False,
    run_key: str = "",
    checkpoint_hash: str = "",
    overwrite: bool = False,
    multiple: int = DEFAULT_MULTIPLE,
) -> Listing:
    """Read headers and sidecars, drop what cannot be digitised, mark what is already done.

    orientation: "auto" (sidecar, else the portrait heuristic), "landscape"
    (depth along width) or "portrait" (depth along height) for scans without a sidecar.
    max_height: canonical heights above this are refused (tiles run along depth only).
    max_pixels: canonical scans larger than this are refused with a message.
    Output names are assigned over the whole listing (`las.export.assign_output_stems`),
    before any work, so two inputs never share a LAS.
    run_key / checkpoint_hash: what this run would make a LAS with. A scan is complete (skipped)
    only when its LAS is there and its QC record carries the same fingerprint; a record made by
    another checkpoint or other options is counted (`other_model`, `other_options`) and redone.
    overwrite: redo every scan.
    multiple: the model's padding multiple; scans are sorted by height rounded to it.
    """
    from veernet_ray.las.export import assign_output_stems

    output = Path(output).resolve()
    found, refused = discover(source, output=output, split=split, follow_symlinks=follow_symlinks)
    listing = Listing(errors=refused)
    safe = [f for f in found if not unsafe_name(f.name)]
    for f in found:
        if unsafe_name(f.name):
            listing.errors.append(error_row(f.path, f.name, "unsafe_output_name",
                                            f"the name {f.name!r} would place the LAS outside the output folder; "
                                            "rename the scan or fix the manifest id", "listing"))
    try:
        stems = assign_output_stems([f.name for f in safe], [f.key for f in safe])
    except ValueError as exc:
        raise ValueError(f"--input {source!r}: {exc}") from exc
    for f, stem in zip(safe, stems):
        try:
            item = _item(f, stem, output, orientation, max_height, max_pixels)
        except RasterError as exc:
            listing.errors.append(error_row(f.path, stem, exc.kind, str(exc), "listing"))
            continue
        except SidecarError as exc:
            listing.errors.append(error_row(f.path, stem, "bad_sidecar", f"{exc}; fix the sidecar or remove it "
                                            "for normalised output", "listing"))
            continue
        except ValueError as exc:  # output_path: escaping the output folder
            listing.errors.append(error_row(f.path, stem, "unsafe_output_name", str(exc), "listing"))
            continue
        item.fingerprint = item_fingerprint(run_key, item)
        record = read_qc_record(qc_record_path(output, item.id)) if Path(item.las_out).is_file() else None
        if record is not None and record["fingerprint"] == item.fingerprint and not overwrite:
            listing.complete.append(item)
            continue
        if record is not None and record["fingerprint"] != item.fingerprint:
            if record["ckpt"] != checkpoint_hash:
                listing.other_model += 1
            else:
                listing.other_options += 1
        listing.items.append(item)
    listing.items.sort(key=lambda it: (round_up(it.height, multiple), it.width, it.id))
    return listing


# ----------------------------------------------------------------- helpers
def _skip_name(name: str) -> bool:
    # training masks (ID.mask.tif) and hidden/temporary files are not scans
    return name.startswith(".") or ".mask." in name.lower()


def _sidecar_of(f: Path) -> str:
    side = f.with_suffix(".json")
    return str(side.resolve()) if side.is_file() else ""


def _inside(path: Path, root: Path) -> bool:
    real, base = path.resolve(), root.resolve()
    return real == base or base in real.parents


def _found(files: list[Path], root: Path, follow_symlinks: bool) -> tuple[list[Found], list[dict]]:
    out, refused = [], []
    for f in files:
        side = f.with_suffix(".json")
        outside = [x for x in (f, side) if x.exists() and not _inside(x, root)]
        if outside and not follow_symlinks:
            refused.append(error_row(str(f.absolute()), f.stem, "symlink_outside_input",
                                     f"{outside[0].name} is a link to {outside[0].resolve()}, outside the input "
                                     f"folder {root.resolve()}; copy the file in or pass --follow-symlinks",
                                     "listing"))
            continue
        key = os.path.relpath(f.absolute(), root.absolute())
        out.append(Found(str(f.resolve()), f.stem, key, _sidecar_of(f)))
    return out, refused


def _glob_root(pattern: str) -> Path:
    """The folder a glob cannot leave: its longest leading part without glob characters."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _from_manifest(path: Path, split: str | None) -> list[Found]:
    from veernet_ray.data.manifest import read_manifest

    df = read_manifest(path)
    if split is not None:
        if split not in set(df["split"]):
            raise ValueError(f"{path}: no rows in split {split!r}; splits: {sorted(set(df['split']))}")
        df = df[df["split"] == split]

    def s(v) -> str:
        return "" if v is None or (isinstance(v, float) and v != v) else str(v)

    return [Found(s(r.image), str(r.id), str(r.id), s(r.calibration), s(r.las)) for r in df.itertuples(index=False)]


def _item(f: Found, stem: str, output: Path, orientation: str, max_height: int, max_pixels: int) -> Item:
    """One Item from a header and a sidecar; RasterError / SidecarError / ValueError say why not."""
    from veernet_ray.las.export import output_path

    path = f.path
    header = read_header(path)
    sidecar = Sidecar.load(f.sidecar) if f.sidecar else None
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
    if sidecar is not None:
        from veernet_ray.las.export import depth_grid

        try:  # the LAS row count and depths, from the header and sidecar alone
            depth_grid(sidecar.canonical((h, w)).depth, cw)
        except ValueError as exc:
            raise RasterError("out_of_bounds", f"{Path(path).name}: {exc}") from exc
    las_out = output_path(output, f.name, stem=stem)
    return Item(stem, path, str(las_out), ch, cw, h, w, orient,
                json.dumps(sidecar.to_dict()) if sidecar is not None else "", f.truth)
