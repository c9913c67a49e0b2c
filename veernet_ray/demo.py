"""`veernet demo` (what `make demo` runs): generate -> train -> digitise, all local, then say where things are.

Everything lands under `runs/` in the current folder: the generated dataset
and its preview sheet, Ray Train checkpoints, the MLflow database and
artifacts, and the digitised LAS files with their QC table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from veernet_ray.config import PROJECT_ROOT, load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="veernet demo",
        description="Run the platform end to end on this machine: generate demo-size scans, train VeerNet "
        "on local Ray (CPU), digitise the test split into LAS files with QC, log everything to a local MLflow.",
    )
    p.add_argument("--config", default=str(PROJECT_ROOT / "configs" / "demo.yaml"), help="run config (default: %(default)s)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. train.epochs=2")
    p.add_argument("--skip-train", action="store_true", help="reuse the last demo checkpoint instead of training")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    storage = cfg.storage_path()
    t0 = time.time()

    # 1. data (generated once; a second demo run reuses it)
    from veernet_ray.synth import generate_dataset

    d = cfg.data
    data_dir = storage / "data" / f"{d.generate_preset}-n{d.generate_n}-s{d.generate_seed}"
    _step(f"1/3 generating {d.generate_n} {d.generate_preset}-size scans into {data_dir}")
    manifest = Path(generate_dataset(data_dir, n=d.generate_n, seed=d.generate_seed, preset=d.generate_preset,
                                     las_dir=d.generate_las_dir, workers=1, preview=8))
    cfg = cfg.with_overrides({"data.manifest": str(manifest)})

    # 2. training on local Ray
    best = storage / cfg.name / "best"
    result = None
    if args.skip_train and (best / "checkpoint.pt").exists():
        _step(f"2/3 reusing {best}")
    else:
        _step(f"2/3 training '{cfg.name}' on local Ray ({cfg.train.epochs} epochs, CPU)")
        from veernet_ray.train.driver import run_training

        result = run_training(cfg)
        best = result.best_checkpoint
        keys = ("val_iou_1", "val_iou_2", "val_f1_1", "val_f1_2", "val_curve_r2_median", "val_curve_mae")
        print("    validation: " + ", ".join(f"{k}={result.metrics[k]:.3f}" for k in keys if k in result.metrics))

    # 3. digitise the test split with the model just trained
    from veernet_ray.infer import digitise_manifest_split, score_outputs

    digitised = storage / cfg.name / "digitised"
    _step(f"3/3 digitising the test split into {digitised}")
    from veernet_ray.tracking import resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(cfg.tracking.tracking_uri, storage)
    summary = digitise_manifest_split(manifest, "test", digitised, str(best), overlays="flagged",
                                      tracking_uri=tracking_uri)
    score = score_outputs(digitised, manifest, "test")

    # where things are
    print()
    print(f"demo finished in {time.time() - t0:.0f} s. Results:")
    print(f"  dataset + manifest : {manifest.parent}")
    print(f"  preview sheet      : {manifest.parent / 'preview.png'}")
    if best is not None:
        print(f"  best checkpoint    : {best / 'checkpoint.pt'}")
    print(f"  run folder         : {storage / cfg.name}  (config.yaml, Ray Train checkpoints under {storage / 'ray'})")
    print(f"  digitised LAS      : {digitised}  ({summary.get('done', 0) + summary.get('complete', 0)} scans, "
          f"{summary.get('flagged', 0)} flagged for review, {summary.get('errors', 0)} errors)")
    print(f"  QC table           : {summary.get('qc_parquet')}")
    print(f"  overlays (flagged) : {summary.get('overlays_dir')}")
    if score.get("curves"):
        print(f"  curve quality      : median R^2 {score['curve_r2_median']:.3f}, median Pearson r "
              f"{score['curve_pearson_median']:.3f}, MAE {score['curve_mae']:.3f} (track-normalised) over "
              f"{score['curves']} curves of {score['scans']} test scans, against the truth LAS")
    print(f"  MLflow UI          : .venv/bin/mlflow ui --backend-store-uri {tracking_uri}   then open http://127.0.0.1:5000")
    return 0


def _step(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
