"""`veernet demo` (what `make demo` runs): generate -> train -> digitise, all local, then say where things are.

Training runs as a demonstration on demo-size scans (a CPU trains it in minutes;
it is not the model that digitises). The digitising step uses the model the
package ships (`veernet_ray/weights/`) on seed-size scans drawn in the
held-out styles, from a well training never saw, and grades the LAS files it
writes against the truth. Everything lands under `runs/` in the current
folder: the generated datasets and preview sheet, Ray Train checkpoints, the
MLflow database and artifacts, and the digitised LAS files with their QC table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from veernet_ray.entry import add_config_args, config_from_args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="veernet demo",
        description="Run the platform end to end on this machine: generate demo-size scans and train VeerNet "
        "on local Ray (CPU) as a demonstration, then digitise seed-size scans in held-out styles with the "
        "shipped model into LAS files with QC, grade them against the truth, log everything to a local MLflow.",
    )
    add_config_args(p, config_help="run config", set_help="config overrides, e.g. train.epochs=2")
    p.add_argument("--skip-train", action="store_true", help="reuse the last demo checkpoint instead of training")
    p.add_argument("--digitise-n", type=int, default=3, metavar="N",
                   help="seed-size scans per held-out style family to digitise with the shipped model")
    p.add_argument("--checkpoint", default=None,
                   help="digitise with this checkpoint instead of the shipped weights (e.g. runs/ship/best)")
    args = p.parse_args(argv)
    from veernet_ray.config import ConfigError
    from veernet_ray.paths import output_folder_problem

    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"veernet demo: error: {exc}", file=sys.stderr)
        return 2
    storage = cfg.storage_path()
    problem = output_folder_problem(storage, "storage=")
    if problem:
        print(f"veernet demo: error: {problem}", file=sys.stderr)
        return 2
    t0 = time.time()

    # 1. data (generated once; a second demo run reuses it)
    from veernet_ray.synth import generate_dataset

    d = cfg.data
    data_dir = storage / "data" / f"{d.generate_preset}-n{d.generate_n}-s{d.generate_seed}"
    _step(f"1/3 generating {d.generate_n} {d.generate_preset}-size scans into {data_dir}")
    manifest_train = Path(generate_dataset(data_dir, n=d.generate_n, seed=d.generate_seed, preset=d.generate_preset,
                                           las_dir=d.generate_las_dir, workers=1, preview=8))
    cfg = cfg.with_overrides({"data.manifest": str(manifest_train)})

    # 2. training on local Ray
    best = storage / cfg.name / "best"
    result = None
    if args.skip_train and (best / "checkpoint.pt").exists():
        _step(f"2/3 reusing {best}")
    else:
        _step(f"2/3 training '{cfg.name}' on local Ray ({cfg.train.epochs} epochs, CPU; a demonstration of the "
              "training path, the digitising step uses the shipped model)")
        from veernet_ray.train.driver import run_training

        result = run_training(cfg)
        best = result.best_checkpoint
        keys = ("val_iou_1", "val_iou_2", "val_f1_1", "val_f1_2", "val_curve_r2_median", "val_curve_mae")
        print("    validation: " + ", ".join(f"{k}={result.metrics[k]:.3f}" for k in keys if k in result.metrics))

    # 3. digitise held-out-style, seed-size scans with the shipped model (or --checkpoint)
    from veernet_ray.evaluate.heldout import ensure_set
    from veernet_ray.infer import digitise_manifest_split, score_outputs
    from veernet_ray.tracking import resolve_tracking_uri
    from veernet_ray.weights import shipped_checkpoint

    model = args.checkpoint or shipped_checkpoint()
    if model is None:
        model = str(best)  # a build without shipped weights: digitise with the demonstration model
    digitised = storage / cfg.name / "digitised"
    from veernet_ray.evaluate.heldout import EVAL_SETS

    _step(f"3/3 digitising {len(EVAL_SETS['heldout-style']) * args.digitise_n} held-out-style seed-size scans into {digitised} "
          f"with {'the shipped model' if not args.checkpoint and shipped_checkpoint() else model}")
    sets = ensure_set("heldout-style", storage / "eval" / "data", n=args.digitise_n, width=(3200, 4800),
                      progress=False)
    tracking_uri = resolve_tracking_uri(cfg.tracking.tracking_uri, storage)
    scores, flagged, scans, errors = [], 0, 0, 0
    for family, manifest in sets:
        summary = digitise_manifest_split(manifest, "test", digitised / family, str(model), overlays="flagged",
                                          tracking_uri=tracking_uri)
        score = score_outputs(digitised / family, manifest, "test")
        scores.append((family, score))
        flagged += summary.get("flagged", 0)
        scans += summary.get("done", 0) + summary.get("complete", 0)
        errors += summary.get("errors", 0)

    # where things are
    print()
    print(f"demo finished in {time.time() - t0:.0f} s. Results:")
    print(f"  training dataset   : {manifest_train.parent}")
    print(f"  preview sheet      : {manifest_train.parent / 'preview.png'}")
    if best is not None:
        print(f"  demo checkpoint    : {best / 'checkpoint.pt'}  (a demonstration; digitising used {model})")
    print(f"  run folder         : {storage / cfg.name}  (config.yaml, Ray Train checkpoints under {storage / 'ray'})")
    print(f"  digitised LAS      : {digitised}/<style>/  ({scans} scans, {flagged} flagged for review, {errors} errors)")
    print(f"  QC tables          : {digitised}/<style>/qc.parquet, overlays of flagged scans in <style>/overlays/")
    for family, score in scores:
        if score.get("curves"):
            print(f"  {family:<19}: median R^2 {score['curve_r2_median']:.3f}, median Pearson r "
                  f"{score['curve_pearson_median']:.3f}, MAE {score['curve_mae']:.3f} (track-normalised) over "
                  f"{score['curves']} curves of {score['scans']} scans, against the truth LAS")
    print(f"  full evaluation    : .venv/bin/veernet evaluate   (model beside classical baselines, per style)")
    print(f"  MLflow UI          : .venv/bin/mlflow ui --backend-store-uri {tracking_uri}   then open http://127.0.0.1:5000")
    return 0


def _step(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
