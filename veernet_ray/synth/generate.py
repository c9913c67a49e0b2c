"""Write a synthetic dataset: images, masks, truth LAS, sidecars, manifest, preview.

Layout of `out_dir` (paths in the manifest are relative to it):
    manifest.parquet  synth.json  [preview.png]
    0000/<id>.tif  0000/<id>.mask.tif  0000/<id>.las  0000/<id>.json   (1,000 samples per shard folder)

Nothing is written half-way: the dataset is generated into a temporary sibling
folder and renamed onto `out_dir` at the end. `synth.json` records the
generation parameters; asking again with the same parameters is a no-op, with
different ones an error (unless overwrite=True).

Scale-out: samples are rendered by Ray tasks (chunks of indices) when
workers > 1 or a cluster address is given; every sample's RNG derives from
(seed, index), so the bytes do not depend on the worker count. On a multi-node
cluster `out_dir` must be on storage every node can write (NFS, a shared volume).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from veernet_ray.synth.render import Sample, render_sample
from veernet_ray.synth.styles import ScanStyle, SynthConfig, SynthConfigError

FORMAT_VERSION = 1
SHARD = 1000
PARAMS_FILE = "synth.json"
MANIFEST = "manifest.parquet"


class DatasetExistsError(ValueError):
    """out_dir already holds something else; the message says what to do."""


def sample_id(seed: int, index: int) -> str:
    return f"s{seed}_{index:06d}"


def write_sample(sample: Sample, root: Path, sid: str, style_family: str = "train") -> dict[str, Any]:
    """Write the four files of one sample under root/<shard>/ and return its manifest row."""
    from veernet_ray.io import write_tiff
    from veernet_ray.las.lasfile import LasCurve, write_las

    shard = f"{sample.index // SHARD:04d}"
    folder = root / shard
    folder.mkdir(parents=True, exist_ok=True)
    rel = {k: f"{shard}/{sid}{ext}" for k, ext in (("image", ".tif"), ("mask", ".mask.tif"), ("las", ".las"), ("calibration", ".json"))}
    write_tiff(root / rel["image"], sample.image)
    write_tiff(root / rel["mask"], sample.mask)
    sc = sample.sidecar
    curves = [
        LasCurve(ax.mnemonic, ax.unit, vals, f"curve {ax.class_id} ({ax.scale})")
        for ax, vals in zip(sc.curves, sample.values)
    ]
    write_las(
        root / rel["las"],
        sample.depth,
        curves,
        depth_unit=sc.depth.unit,
        well={"WELL": sid, "COMP": "veernet-ray synthetic", "SRVC": "veernet synth"},
        params={"SRC": (sample.source, "", "curve source")},
    )
    sc.save(root / rel["calibration"])
    m = sample.meta
    return {
        "id": sid,
        **rel,
        "width": sample.width,
        "height": sample.height,
        "split": None,
        "source": sample.source,
        "seed": m["seed"],
        "index": sample.index,
        "curve1": m["curve1"],
        "curve2": m["curve2"],
        "curve2_style": m["curve2_style"],
        "curve_on_top": m["curve_on_top"],
        "wrap": m["wrap"],
        "crossing": m["crossing"],
        "skew_deg": m["skew_deg"],
        "style": style_family,
    }


def render_and_write(
    root: str, seed: int, indices: Sequence[int], config: SynthConfig, pool, style_family: str = "train"
) -> list[dict]:
    """Render and write a chunk of samples (the unit of work of one Ray task)."""
    rows = []
    for i in indices:
        s = render_sample(seed, int(i), config, pool)
        rows.append(write_sample(s, Path(root), sample_id(seed, int(i)), style_family))
    return rows


def assign_splits(n: int, seed: int, split: Sequence[float]) -> list[str]:
    """Exact shares (rounded), randomly placed but a function of (n, seed) only."""
    counts = [int(round(f * n)) for f in split[:2]]
    counts.append(max(0, n - sum(counts)))
    labels = np.array(["train"] * counts[0] + ["val"] * counts[1] + ["test"] * counts[2])[:n]
    perm = np.random.default_rng([int(seed), 0x5EED]).permutation(n)
    out = np.empty(n, dtype=object)
    out[perm] = labels
    return out.tolist()


def check_split(split: Sequence[float]) -> tuple[float, float, float]:
    try:
        vals = tuple(float(x) for x in split)
    except (TypeError, ValueError):
        raise SynthConfigError(f"split must be three numbers TRAIN,VAL,TEST, got {split!r}") from None
    if len(vals) != 3 or min(vals) < 0 or abs(sum(vals) - 1.0) > 1e-6:
        raise SynthConfigError(f"split must be three non-negative shares summing to 1, got {split!r}")
    return vals  # type: ignore[return-value]


def generate_dataset(
    out_dir: str | os.PathLike,
    *,
    n: int,
    seed: int = 0,
    preset: str = "demo",
    width: tuple[int, int] | None = None,
    height: tuple[int, int] | None = None,
    las_dir: str | os.PathLike | None = None,
    source: str | None = None,
    workers: int = 1,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    preview: int = 0,
    overwrite: bool = False,
    style: ScanStyle | None = None,
    style_family: str = "train",
    ray_address: str | None = None,
    progress: bool = True,
) -> Path:
    """Generate `n` samples into `out_dir`; returns the manifest path.

    Raises SynthConfigError (bad settings), DatasetExistsError (out_dir holds
    another dataset), LasSourceError (no usable LAS curve) or OSError (cannot write).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise SynthConfigError(f"n must be a positive whole number, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthConfigError(f"seed must be a non-negative whole number, got {seed!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise SynthConfigError(f"workers must be >= 1, got {workers!r}")
    if preview < 0:
        raise SynthConfigError(f"preview must be >= 0, got {preview}")
    split = check_split(split)
    source = source or ("mixed" if las_dir else "stochastic")
    if source in ("las", "mixed") and not las_dir:
        raise SynthConfigError(f"source {source!r} needs --las-dir (a folder of .las files)")
    from veernet_ray.synth.styles import HELDOUT_LAS
    from veernet_ray.synth.styles import style_family as family_style

    try:
        family = family_style(style_family)
    except KeyError as exc:
        raise SynthConfigError(str(exc.args[0])) from None
    config = SynthConfig.from_preset(preset, width=width, height=height, source=source, style=style or family)

    pool = None
    las_files: list = []
    if las_dir and source != "stochastic":
        from veernet_ray.synth.las_source import load_las_pool

        # held-out families draw only the held-out wells; every other family never does
        heldout = style_family.startswith("heldout")
        sel = {"include": HELDOUT_LAS} if heldout else {"exclude": HELDOUT_LAS}
        pool = load_las_pool(las_dir, **sel)
        las_files = [
            [p.name, p.stat().st_size] for p in sorted(Path(las_dir).iterdir())
            if p.suffix.lower() == ".las" and ((p.name in HELDOUT_LAS) == heldout)
        ]
    params = {
        "format": FORMAT_VERSION,
        "n": int(n),
        "seed": int(seed),
        "preset": preset,
        "style_family": style_family,
        "split": list(split),
        "las_files": las_files,
        "config": json.loads(json.dumps(config.to_dict())),
    }

    out = Path(out_dir)
    manifest = out / MANIFEST
    if out.exists():
        if not out.is_dir():
            raise DatasetExistsError(f"{out} exists and is not a folder; choose a new output folder")
        pfile = out / PARAMS_FILE
        if pfile.is_file() and not overwrite:
            try:
                old = json.loads(pfile.read_text(encoding="utf-8")).get("params")
            except (OSError, ValueError):
                old = None
            if old == params and manifest.is_file():
                _say(True, f"{out} already holds this dataset (same parameters); nothing to do")
                return manifest
            raise DatasetExistsError(
                f"{out} already holds a different synthetic dataset ({PARAMS_FILE} differs); "
                "choose a new folder or pass --overwrite"
            )
        if any(out.iterdir()) and not overwrite:
            raise DatasetExistsError(f"{out} is not empty and holds no {PARAMS_FILE}; choose a new folder or pass --overwrite")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.synth-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()  # raises PermissionError (an OSError) for an unwritable parent
    try:
        rows = _run(tmp, n, seed, config, pool, workers, ray_address, progress, style_family)
        import pandas as pd

        from veernet_ray.data.manifest import write_manifest

        rows.sort(key=lambda r: r["index"])
        for r, s in zip(rows, assign_splits(n, seed, split)):
            r["split"] = s
        df = pd.DataFrame(rows)
        write_manifest(df, tmp / MANIFEST)
        (tmp / PARAMS_FILE).write_text(
            json.dumps({"generator": "veernet synth", "params": params, "count": len(rows)}, indent=1, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        if preview:
            _write_preview(tmp, rows[: min(preview, n)])
        if out.exists():
            trash = out.parent / f".{out.name}.synth-old-{os.getpid()}"
            os.replace(out, trash)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"veernet synth: {msg}", file=sys.stderr)


def _write_preview(root: Path, rows: list[dict]) -> None:
    from veernet_ray.io import read_image
    from veernet_ray.synth.preview import write_preview

    items = []
    for r in rows:
        caption = f"{r['id']}  {r['curve1']} / {r['curve2']} ({r['curve2_style']})  wrap={r['wrap']} cross={r['crossing']} top={r['curve_on_top']}"
        items.append((caption, read_image(root / r["image"]), read_image(root / r["mask"])))
    write_preview(root / "preview.png", items)


def _run(
    tmp: Path, n: int, seed: int, config: SynthConfig, pool, workers: int, address: str | None, progress: bool,
    family: str = "train",
) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=n, desc="veernet synth", unit="img", disable=not progress, file=sys.stderr)
    try:
        if workers == 1 and address is None:
            rows = []
            for i in range(n):
                rows += render_and_write(str(tmp), seed, [i], config, pool, family)
                bar.update(1)
            return rows
        return _run_ray(tmp, n, seed, config, pool, workers, address, bar, family)
    finally:
        bar.close()


def _run_ray(
    tmp: Path, n: int, seed: int, config: SynthConfig, pool, workers: int, address: str | None, bar, family: str = "train"
) -> list[dict]:
    import ray

    from veernet_ray.raycluster import init_ray

    started = False
    if not ray.is_initialized():
        # a private local cluster that goes with this process (never the stale one /tmp/ray names),
        # or the cluster at `address`, checked first
        if address is None:
            init_ray(None, num_cpus=workers, log_to_driver=False)
        else:
            init_ray(address, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1)(render_and_write)
        pool_ref = ray.put(pool)
        cpus = max(1, int(ray.cluster_resources().get("CPU", workers)))
        # ~4 chunks per core balances uneven image sizes; <= 32 keeps the bar moving
        chunk = int(max(1, min(32, n // (cpus * 4))))
        pending = {}
        for a in range(0, n, chunk):
            idx = list(range(a, min(n, a + chunk)))
            pending[task.remote(str(tmp), seed, idx, config, pool_ref, family)] = len(idx)
        rows: list[dict] = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                rows += ray.get(ref)
                bar.update(pending.pop(ref))
        return rows
    finally:
        if started:
            ray.shutdown()
