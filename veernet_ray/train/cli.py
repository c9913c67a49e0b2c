"""`veernet train` and `jobs/train.py`: one argument parser, one code path."""

from __future__ import annotations

import argparse
import sys

from veernet_ray.config import ConfigError
from veernet_ray.entry import SMOKE, add_config_args, config_from_args  # SMOKE stays importable here


def build_parser(prog: str = "veernet train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train VeerNet on Ray Train: width-bucketed Ray Data batches, padded masked loss, "
        "gradient accumulation, checkpoints every epoch, MLflow logging. Re-running the same command "
        "with the same run name resumes from the latest checkpoint.",
        epilog="examples:\n"
        "  veernet train                                  # demo config: generates data, trains on local Ray\n"
        "  veernet train --config configs/seed.yaml --set scale.num_workers=4 scale.use_gpu=true\n"
        "  veernet train --config configs/demo.yaml --set train.epochs=2 train.loss=sce->lovasz\n"
        "  ray job submit --working-dir . -- python jobs/train.py --config configs/seed.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p, manifest_help="manifest.parquet to train on (overrides data.manifest)",
                    smoke_flag="--smoke-test",
                    smoke_help="a tiny run on CPU in about a minute: 12 generated scans, 1 epoch, tiny model")
    p.add_argument("--name", help="run name (overrides the config's name; the same name resumes)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    return p


def main(argv: list[str] | None = None, prog: str = "veernet train") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        cfg = config_from_args(args, smoke=SMOKE + ["name=smoke"], after=[f"name={args.name}"] if args.name else [])
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    from veernet_ray.paths import output_folder_problem

    problem = output_folder_problem(cfg.storage_path(), "storage=")
    if problem:  # before Ray starts and before any data is generated
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    from veernet_ray.train.driver import run_training

    try:
        result = run_training(cfg, ray_address=args.address)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    keys = ("val_miou_fg", "val_iou_1", "val_iou_2", "val_f1_1", "val_f1_2", "val_curve_r2_median", "val_curve_mae")
    shown = ", ".join(f"{k}={result.metrics[k]:.3f}" for k in keys if k in result.metrics)
    print(f"[veernet] done: {shown}")
    print(f"[veernet] best checkpoint: {result.best_checkpoint}")
    if result.model_version:
        print(f"[veernet] registered model: models:/{cfg.tracking.register_as}/{result.model_version}")
    if result.mlflow_run_id:
        print(f"[veernet] MLflow: mlflow ui --backend-store-uri {result.tracking_uri}  (run {result.mlflow_run_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
