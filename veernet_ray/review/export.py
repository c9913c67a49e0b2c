"""`veernet review export OUT --to DATASET`: reviewed curves -> training samples in the dataset contract.

A scan becomes a sample when each of its curves is usable: accepted or corrected
by a person, or never flagged by QC (the platform's contract: flagged curves go to
a person, the rest are trusted). A scan with a rejected curve, or a flagged curve
nobody has reviewed yet, is left out and the summary says which curve to review:
its ink would otherwise be taught as background.

Per sample (docs/contracts.md sections 1-3), id `review-<scan id>`:
- `ID.tif`: the canonical scan (depth along the width);
- `ID.mask.tif`: 1 / 2 on the ink pixels within MASK_HALF rows of each curve's
  reviewed trace (a mask pixel is a pixel of drawn ink); curve 1 owns a pixel both
  claim, as the solid curve usually drawn on top;
- `ID.las`: the reviewed curves (no `_CONF` columns) on the LAS depth grid;
- `ID.json`: the sidecar inference used (none for normalised output);
- a `manifest.parquet` row with `source = review`.

`--mix-with BASE` adds BASE's rows (paths made relative to DATASET), so
`veernet train --manifest DATASET/manifest.parquet` trains on both; a base row of
a scan that was reviewed is dropped, so no scan is both trained and tested on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from veernet_ray.review.edits import INK_LEVEL
from veernet_ray.review.scan import CONF_SUFFIX, Geometry
from veernet_ray.review.store import ReviewError, ReviewStore

#: rows either side of the trace whose ink belongs to the curve: the generator's thickest
#: strokes are ~5 px, so +-4 rows holds a stroke whose centre the trace is 1-2 rows off
MASK_HALF = 4
SOURCE = "review"
ID_PREFIX = "review-"
#: without a base dataset, every VAL_EVERY-th sample (sorted by id) is a validation sample
VAL_EVERY = 5
SAMPLE_SUFFIXES = (".mask.tif", ".tif", ".las", ".json")


@dataclass
class ExportSummary:
    dataset: Path
    manifest: Path
    exported: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # scan id -> why
    base_rows: int = 0
    dropped_base: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"[veernet] review export: {len(self.exported)} sample(s) in {self.dataset} "
               f"(manifest {self.manifest}, source={SOURCE})"]
        if self.base_rows or self.dropped_base:
            out.append(f"[veernet] mixed with {self.base_rows} base row(s)"
                       + (f"; dropped the base rows of reviewed scans (never train and test on one scan): "
                          f"{', '.join(self.dropped_base)}" if self.dropped_base else ""))
        for sid, why in sorted(self.skipped.items()):
            out.append(f"[veernet] skipped {sid}: {why}")
        out.append(f"[veernet] train on it: veernet train --manifest {self.manifest}")
        return out


def curve_mask(ink: np.ndarray, cols: np.ndarray, rows: np.ndarray, half: int = MASK_HALF) -> np.ndarray:
    """(H, W) bool: ink pixels within `half` rows of the trace (rows at LAS columns `cols`, NaN = none).

    The trace is resampled to every scan column (no value where either neighbour has
    none); a steep stretch covers the rows between neighbouring columns' rows too.
    """
    h, w = ink.shape
    order = np.argsort(cols, kind="stable")
    cs, rs = np.asarray(cols, dtype=np.float64)[order], np.asarray(rows, dtype=np.float64)[order]
    grid = np.arange(w, dtype=np.float64)
    r = np.interp(grid, cs, np.nan_to_num(rs, nan=0.0), left=np.nan, right=np.nan)
    gap = np.interp(grid, cs, np.isnan(rs).astype(np.float64), left=1.0, right=1.0) > 0
    r[gap] = np.nan
    lo, hi = r.copy(), r.copy()
    for shift in (-1, 1):  # steep strokes: reach halfway to the neighbouring columns' rows
        nb = np.roll(r, shift)
        nb[0 if shift == 1 else -1] = np.nan
        mid = np.where(np.isfinite(nb), (r + nb) / 2.0, r)
        lo, hi = np.fmin(lo, mid), np.fmax(hi, mid)
    have = np.isfinite(r)
    lo = np.floor(np.where(have, lo, 0) - half)
    hi = np.ceil(np.where(have, hi, -1) + half)
    rr = np.arange(h, dtype=np.float64)[:, None]
    band = (rr >= lo[None, :]) & (rr <= hi[None, :]) & have[None, :]
    return band & (ink > INK_LEVEL)


def export_reviews(out: str | os.PathLike, dataset: str | os.PathLike, *, mix_with: str | None = None,
                   split: str = "auto", strict: bool = False) -> ExportSummary:
    """Write the samples and DATASET/manifest.parquet (see the module docstring). Re-running replaces them."""
    from veernet_ray.data.manifest import ManifestError, read_manifest, write_manifest
    from veernet_ray.io import write_tiff
    from veernet_ray.las.lasfile import LasCurve, write_las
    from veernet_ray.las.sidecar import Sidecar
    from veernet_ray.review.scan import find_sidecar

    if split not in ("auto", "train", "val"):
        raise ReviewError(f"--split must be auto, train or val; got {split!r}")
    store = ReviewStore(out)
    dataset = Path(dataset).expanduser().resolve()
    if dataset == store.out or store.out in dataset.parents:
        raise ReviewError(f"--to {dataset} lies inside the inference output {store.out}; give a folder of its own")
    if dataset.exists() and not dataset.is_dir():
        raise ReviewError(f"--to {dataset} is a file; give a folder (it is created if missing)")
    dataset.mkdir(parents=True, exist_ok=True)
    manifest_path = dataset / "manifest.parquet"
    summary = ExportSummary(dataset, manifest_path)
    statuses = store.statuses(store.read_reviews())

    rows = []
    for sid, qc in store.qc.groupby(store.qc["scan_id"].astype(str), sort=True):
        why = _blocker(sid, qc, statuses, strict)
        if not why and store.is_sheet(sid):
            why = "a whole sheet (several tracks); sheets are not exported yet"
        if why:
            summary.skipped[sid] = why
            continue
        try:
            table, geo, orientation = store._open(sid)
            image, ink = store.image(sid, orientation, with_ink=True)
        except ReviewError as exc:
            summary.skipped[sid] = str(exc)
            continue
        sample = ID_PREFIX + sid
        mask = np.zeros(image.shape, np.uint8)
        class_of = dict(zip(qc["curve"].astype(str), qc["class_id"].astype(int)))
        # curve 1 last: it owns the pixels both curves claim
        for m in sorted(table.value_mnemonics(), key=lambda m: -class_of.get(m, 0)):
            rows_m = geo.display_rows(m, geo.rows_of(m, table.values(m)))
            mask[curve_mask(ink, geo.cols, rows_m)] = class_of.get(m, 0)
        write_tiff(dataset / f"{sample}.tif", image)
        write_tiff(dataset / f"{sample}.mask.tif", mask)
        curves = [c for c in table.curves if not c.mnemonic.endswith(CONF_SUFFIX)]
        write_las(dataset / f"{sample}.las", table.depth, [LasCurve(c.mnemonic, c.unit, c.values, c.descr)
                                                            for c in curves],
                  depth_unit=table.depth_unit, null=table.null,
                  params={"SOURCE": (SOURCE, "", "curves reviewed in veernet review"),
                          "SCAN": (sid, "", "inference scan id")})
        side = find_sidecar(store.scan_path(sid)) if geo.calibrated else None
        if side is not None:
            # the sample's image is canonical, so its sidecar must be too
            Sidecar.load(side).canonical(_own_shape(geo, orientation)).save(dataset / f"{sample}.json")
        rows.append({"id": sample, "image": f"{sample}.tif", "mask": f"{sample}.mask.tif", "las": f"{sample}.las",
                     "calibration": f"{sample}.json" if side is not None else None, "width": geo.width,
                     "height": geo.height, "split": "train", "source": SOURCE, "scan_path": str(store.scan_path(sid)),
                     "review": ",".join(sorted({s for (s_id, _), s in statuses.items() if s_id == sid and s}))})
        summary.exported.append(sample)

    new = pd.DataFrame(rows, columns=["id", "image", "mask", "las", "calibration", "width", "height", "split",
                                      "source", "scan_path", "review"])
    base = pd.DataFrame()
    if mix_with:
        try:
            base = read_manifest(mix_with)
        except ManifestError as exc:
            raise ReviewError(f"--mix-with: {exc}") from exc
        reviewed = set(new["scan_path"])
        drop = base["image"].map(lambda p: str(Path(p).resolve()) in reviewed)
        summary.dropped_base = base.loc[drop, "id"].astype(str).tolist()
        base = base[~drop & (base["source"] != SOURCE)].copy()
        for col in ("image", "mask", "las", "calibration"):
            base[col] = base[col].map(lambda p: None if p is None or (isinstance(p, float) and pd.isna(p))
                                      else os.path.relpath(p, dataset))
        summary.base_rows = len(base)
    elif manifest_path.is_file():  # keep what else the folder holds (an earlier mix), replace the review rows
        try:
            old = read_manifest(manifest_path)
        except ManifestError as exc:
            raise ReviewError(f"{manifest_path}: {exc}") from exc
        base = old[old["source"] != SOURCE].copy()
        for col in ("image", "mask", "las", "calibration"):
            base[col] = base[col].map(lambda p: None if p is None or (isinstance(p, float) and pd.isna(p))
                                      else os.path.relpath(p, dataset))
        summary.base_rows = len(base)
    has_val = len(base) and (base["split"] == "val").any()
    if split in ("train", "val"):
        new["split"] = split
    elif not has_val and len(new) >= 2:
        order = np.argsort(new["id"].to_numpy())
        val = [int(i) for k, i in enumerate(order) if k % VAL_EVERY == VAL_EVERY - 1] or [int(order[-1])]
        new.loc[val, "split"] = "val"
    _remove_stale_samples(dataset, set(new["id"]))
    df = pd.concat([base, new], ignore_index=True) if len(base) else new
    if len(df):
        write_manifest(df, manifest_path)
    elif manifest_path.is_file():
        manifest_path.unlink()
    return summary


def _blocker(sid: str, qc: pd.DataFrame, statuses: dict, strict: bool) -> str:
    """Why a scan cannot become a sample ("" when it can)."""
    for curve, flagged in zip(qc["curve"].astype(str), qc["flagged"].astype(bool)):
        status = statuses.get((sid, curve), "")
        if status == "rejected":
            return f"curve {curve} is rejected (its ink would be taught as background)"
        if not status and (flagged or strict):
            return (f"curve {curve} is flagged and not reviewed yet; accept or correct it in `veernet review`"
                    if flagged else f"curve {curve} is not reviewed (--strict)")
    if not any(statuses.get((sid, c)) in ("accepted", "corrected") for c in qc["curve"].astype(str)):
        return "no curve reviewed"
    return ""


def _own_shape(geo: Geometry, orientation: str) -> tuple[int, int]:
    """The scan's shape in its own orientation (what `Sidecar.canonical` takes)."""
    return (geo.width, geo.height) if orientation == "depth_along_height" else (geo.height, geo.width)


def _remove_stale_samples(dataset: Path, keep: set[str]) -> None:
    """Files of review samples an earlier export wrote that are no longer exported (a curve since rejected)."""
    for p in dataset.glob(f"{ID_PREFIX}*"):
        sample = next((p.name[: -len(s)] for s in SAMPLE_SUFFIXES if p.name.endswith(s)), None)
        if sample is not None and sample not in keep and p.is_file():
            p.unlink()


__all__ = ["ExportSummary", "MASK_HALF", "curve_mask", "export_reviews"]
