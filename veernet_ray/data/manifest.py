"""Dataset manifest `manifest.parquet` (docs/contracts.md section 3): write, read, validate.

One row per raster log. Paths are stored relative to the manifest's folder and
resolved to absolute paths on read, so a dataset folder can be moved whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

REQUIRED = ("id", "image", "mask", "las", "calibration", "width", "height", "split", "source")
PATH_COLUMNS = ("image", "mask", "las", "calibration")
NULLABLE = ("mask", "las", "calibration")
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    """A manifest that does not follow the contract; the message names the column and rows."""


def validate_manifest(df: pd.DataFrame, where: str = "manifest") -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ManifestError(f"{where}: missing column(s) {missing}; required: {list(REQUIRED)}")
    if df["id"].isna().any():
        raise ManifestError(f"{where}: column 'id' has empty values")
    ids = df["id"].astype(str)
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        raise ManifestError(f"{where}: ids are not unique, e.g. {dup[:5]}")
    if df["image"].isna().any():
        raise ManifestError(f"{where}: column 'image' has empty values (rows {_rows(df['image'].isna())})")
    for col in ("width", "height"):
        v = pd.to_numeric(df[col], errors="coerce")
        if v.isna().any() or (v <= 0).any() or (v != v.round()).any():
            raise ManifestError(f"{where}: column {col!r} must hold positive integers (rows {_rows(v.isna() | (v <= 0))})")
    bad = ~df["split"].isin(SPLITS)
    if bad.any():
        raise ManifestError(f"{where}: column 'split' must be one of {SPLITS} (rows {_rows(bad)})")
    if df["source"].isna().any():
        raise ManifestError(f"{where}: column 'source' has empty values")
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write atomically; path columns must already be relative to `path`'s folder."""
    from veernet_ray.io import atomic_path

    path = Path(path)
    df = validate_manifest(df.reset_index(drop=True).copy(), where=path.name)
    for col in PATH_COLUMNS:
        absolute = df[col].dropna().map(lambda p: Path(p).is_absolute())
        if absolute.any():
            raise ManifestError(f"{path.name}: column {col!r} must hold paths relative to the manifest folder")
    df["id"] = df["id"].astype(str)
    df["width"] = df["width"].astype("int64")
    df["height"] = df["height"].astype("int64")
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")
    return path


def read_manifest(path: str | os.PathLike, check_files: bool = False) -> pd.DataFrame:
    """Read and validate; path columns come back absolute. check_files=True also checks they exist."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.parquet"
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    try:
        df = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:
        raise ManifestError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc
    df = validate_manifest(df, where=str(path))
    root = path.parent.resolve()
    for col in PATH_COLUMNS:
        df[col] = df[col].map(lambda p: None if p is None or (isinstance(p, float) and pd.isna(p)) else str(root / p))
    if check_files:
        for col in PATH_COLUMNS:
            gone = df[col].dropna().map(lambda p: not Path(p).exists())
            if gone.any():
                first = df.loc[gone[gone].index[0], col]
                raise ManifestError(f"{path}: {int(gone.sum())} file(s) in column {col!r} are missing, e.g. {first}")
    return df


def _rows(bad: pd.Series) -> list[int]:
    return [int(i) for i in bad[bad].index[:5]]


def resolve_manifest(cfg) -> Path:
    """The manifest a run config trains on (`data.manifest`); with none configured, the
    configured dataset (`data.generate_*`) is generated into `<storage>/data/` first."""
    if cfg.data.manifest:
        path = Path(cfg.data.manifest).expanduser().resolve()
        if path.is_dir():
            path = path / "manifest.parquet"
        if not path.exists():
            raise FileNotFoundError(f"manifest {path} not found; generate one with `veernet synth DIR` or set data.manifest")
        return path
    # imported here: the generator (and its fonts and LAS pool) only when a run asks for data
    from veernet_ray.synth import generate_dataset

    d = cfg.data
    out = cfg.storage_path() / "data" / f"{d.generate_preset}-n{d.generate_n}-s{d.generate_seed}"
    return Path(generate_dataset(out, n=d.generate_n, seed=d.generate_seed, preset=d.generate_preset,
                                 las_dir=d.generate_las_dir, workers=1))
