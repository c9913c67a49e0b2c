"""Score digitised LAS files against the truth LAS of a generated dataset.

Reads each written LAS back (so what is graded is what a user gets), turns
calibrated values back into positions on the track through the sidecar, and
compares them with the truth curve at the same depths, using the training
metrics (`evaluate.truth_positions` + `evaluate.score_curves`: R^2 on 300
resampled points, values normalised to the track).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def score_scan(las_out: str | os.PathLike, truth_las: str | os.PathLike, sidecar_path: str | os.PathLike,
               height: int, width: int) -> list[dict[str, float]]:
    """Per-curve metrics of one digitised LAS against its truth (canonical height/width of the scan)."""
    from veernet_ray.evaluate import normalised, score_curves, truth_positions
    from veernet_ray.las.lasfile import read_las_curves
    from veernet_ray.las.sidecar import Sidecar
    from veernet_ray.metrics.curves import resample_linear

    sc = Sidecar.load(sidecar_path)
    truth = truth_positions(truth_las, sc, height, width)
    canon = sc.canonical((width, height) if sc.orientation == "depth_along_height" else (height, width))
    depth, curves, _ = read_las_curves(las_out)
    cols = np.clip(canon.depth.px_at(depth), 0, width - 1)
    axes = sorted(canon.curves, key=lambda c: c.class_id)
    pred = np.full((len(axes), len(depth)), np.nan)
    want = np.full((len(axes), len(depth)), np.nan)
    for k, axis in enumerate(axes):
        values = curves.get(axis.mnemonic)
        if values is None:
            continue
        pred[k] = normalised(axis.row_at(values), height)
        want[k] = resample_linear(truth.positions[k], cols)
    return score_curves(pred, want)


def score_outputs(output: str | os.PathLike, manifest: str | os.PathLike, split: str | None = None) -> dict[str, Any]:
    """Median curve R^2 (and friends) of every LAS in `output` that has a truth LAS in the manifest.

    Returns {"scans": n scored, "curves": n curves, "missing": scans without an output LAS,
    "curve_r2_median", "curve_pearson_median", "curve_mae", "curve_mse", "curve_coverage", "per_scan": [...]}.
    """
    from veernet_ray.data.manifest import read_manifest
    from veernet_ray.evaluate import summarise
    from veernet_ray.io import read_header
    from veernet_ray.las.sidecar import Sidecar
    from veernet_ray.infer.listing import unsafe_name
    from veernet_ray.las.export import assign_output_stems, output_path

    df = read_manifest(manifest)
    if split is not None:
        df = df[df["split"] == split]
    scores: list[dict[str, float]] = []
    per_scan, missing = [], 0
    df = df[[not unsafe_name(str(i)) for i in df["id"]]]
    ids = [str(i) for i in df["id"]]
    stems = dict(zip(ids, assign_output_stems(ids, ids)))  # the names `veernet infer` gave the same rows
    for r in df.itertuples(index=False):
        if not isinstance(r.las, str) or not isinstance(r.calibration, str):
            continue  # no truth to grade against
        las_out = output_path(output, str(r.id), stem=stems[str(r.id)])
        if not Path(las_out).is_file():
            missing += 1
            continue
        header = read_header(r.image)  # the file, not the manifest, says the shape
        h, w = header.height, header.width
        if Sidecar.load(r.calibration).orientation == "depth_along_height":
            h, w = w, h
        s = score_scan(las_out, r.las, r.calibration, h, w)
        scores += s
        per_scan.append({"id": r.id, "las": str(las_out), "r2": [round(float(x["r2"]), 4) for x in s]})
    out: dict[str, Any] = {"scans": len(per_scan), "curves": len(scores), "missing": missing}
    out.update(summarise(scores))
    out["per_scan"] = per_scan
    return out
