"""`veernet infer` and `jobs/infer.py`: one argument parser, one code path (`run_inference`)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from veernet_ray.trace.thresholds import QC_DEFAULTS

PROG = "veernet infer"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Digitise scanned raster well logs into LAS files with Ray Data: CPU tasks decode, "
        "an actor pool runs VeerNet (GPUs, else CPUs) on width-bucketed padded batches, CPU tasks trace, "
        "calibrate and write one LAS per scan plus qc.parquet and errors.parquet. Re-running the same "
        "command skips finished scans; bad inputs get an errors row and the job carries on.",
        epilog="examples:\n"
        "  veernet infer --input scans/ --output out/ --checkpoint runs/demo/best\n"
        "  veernet infer --input 'archive/**/*.tif' --output out/ --checkpoint models:/veernet-demo/1 \\\n"
        "      --tracking-uri http://mlflow:5000\n"
        "  veernet infer --input data/manifest.parquet --split test --output out/ --checkpoint ckpt.pt\n"
        "  veernet infer --smoke-test\n"
        "  ray job submit --working-dir . -- python jobs/infer.py --input /data/scans --output /data/las \\\n"
        "      --checkpoint models:/veernet/3\n"
        "exit status: 0 when any scan succeeded (or nothing failed), 1 when every scan failed, 2 on usage errors",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", help="folder (searched recursively), glob, or manifest.parquet of scans")
    p.add_argument("--output", help="folder for the LAS files, qc.parquet, errors.parquet and overlays/")
    p.add_argument("--checkpoint", help="checkpoint.pt, a folder holding one, a Ray Train checkpoint folder, "
                   "or models:/name/version (default: the shipped weights, if any)")
    p.add_argument("--split", help="with a manifest input: digitise only this split (train/val/test)")
    p.add_argument("--address", help="Ray address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the model runs (default: %(default)s = GPU when the cluster has one)")
    p.add_argument("--batch-size", type=int, default=8, help="scans per model batch (default: %(default)s)")
    p.add_argument("--batching", default="auto", choices=("auto", "grid", "buckets"),
                   help="how the model's padded batches form: grid = a few fixed shapes chosen by a cost model, "
                   "batches filled (a GPU warms each shape once); buckets = by height, at most 3%% padding "
                   "(default: %(default)s = grid on a GPU, buckets on a CPU)")
    p.add_argument("--decode-cpus", type=float, default=0.5, help="CPUs per decode task (default: %(default)s)")
    p.add_argument("--write-cpus", type=float, default=0.5, help="CPUs per trace/write task (default: %(default)s)")
    p.add_argument("--model-actors", type=int, help="model actors (default: one per GPU, or CPUs // 8)")
    p.add_argument("--model-cpus", type=float, help="CPUs per model actor (default: 1 with a GPU, else about half "
                   "the cluster's CPUs over the actors)")
    p.add_argument("--max-width", type=int, default=None,
                   help="scans wider than this (px along depth) run in overlapping tiles (default: 8192 on a "
                        "CPU, 16384 on a GPU)")
    p.add_argument("--tile-overlap", type=int, default=256, help="tile overlap in px (default: %(default)s)")
    p.add_argument("--max-height", type=int, default=4096,
                   help="refuse scans taller than this across the value axis (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=64 * 2**20,
                   help="refuse scans with more pixels than this, from the header, before decoding; the write "
                   "stage needs ~24 bytes a pixel (default: %(default)s = 4,096 x 16,384)")
    p.add_argument("--orientation", default="auto", choices=("auto", "landscape", "portrait"),
                   help="for scans without a sidecar: auto treats height > 2 x width as portrait (default: auto)")
    p.add_argument("--overlays", default="flagged", choices=("flagged", "all", "none"),
                   help="overlay PNGs under OUTPUT/overlays/ (default: %(default)s)")
    p.add_argument("--min-coverage", type=float, default=QC_DEFAULTS.min_coverage,
                   help="flag a curve with a value on less than this share of depth (default: %(default)s)")
    p.add_argument("--min-confidence", type=float, default=QC_DEFAULTS.min_confidence,
                   help="flag a curve whose mean confidence is below this (default: %(default)s)")
    p.add_argument("--layout", default="auto", choices=("auto", "sheet", "strip"),
                   help="sheet: every scan is a whole sheet (header, tracks, depth column): find the tracks, read "
                   "the depth labels, digitise every track into one LAS per sheet (OUTPUT/layout/ID.json records "
                   "it); strip: every scan is one track; auto: a scan at least 800 px across without a sidecar is "
                   "a sheet when layout finds more than one track or a depth column (default: %(default)s)")
    p.add_argument("--scales", help="sheets: track-scales JSON for every sheet (an ID.scales.json beside a sheet "
                   "wins); without one, values stay normalised (NORM); see docs/sheets.md")
    p.add_argument("--depth-unit", choices=("FT", "M"),
                   help="sheets: depth unit when the header does not say (default: FT for labels >= 100)")
    p.add_argument("--ocr", default="digits+tesseract", choices=("digits+tesseract", "digits", "tesseract"),
                   help="sheets: depth-label reader: the shipped digit reader, Tesseract (Debian tesseract-ocr), or "
                   "the digit reader with Tesseract re-reading sections it left in doubt (default: %(default)s)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                   "sqlite in OUTPUT/.veernet/)")
    p.add_argument("--experiment", default="veernet-infer", help="MLflow experiment (default: %(default)s)")
    p.add_argument("--no-tracking", action="store_true", help="do not log an MLflow run")
    p.add_argument("--no-progress", action="store_true", help="hide Ray Data's progress bars")
    p.add_argument("--overwrite", action="store_true",
                   help="redo every scan (default: skip scans whose LAS was made by the same checkpoint, "
                   "calibration and options; outputs of another model are always redone)")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="digitise links that lead outside the input folder (default: refuse them)")
    p.add_argument("--smoke-test", action="store_true",
                   help="generate 4 tiny scans and a fixed-seed tiny model, digitise them on CPU (~1 minute)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    from veernet_ray.infer.pipeline import InferError, InferJobError, InferOptions, format_summary, run_inference

    smoke_root = None
    try:
        if args.smoke_test:
            smoke_root = _smoke(args)
        if not args.input or not args.output:
            raise InferError("--input and --output are required (or pass --smoke-test)")
        opts = InferOptions(
            input=args.input, output=args.output, checkpoint=args.checkpoint, split=args.split,
            address=args.address, device=args.device, batch_size=args.batch_size, batching=args.batching,
            decode_cpus=args.decode_cpus,
            write_cpus=args.write_cpus, model_actors=args.model_actors, model_cpus=args.model_cpus,
            max_width=args.max_width, tile_overlap=args.tile_overlap, max_height=args.max_height,
            max_pixels=args.max_pixels, orientation=args.orientation, overlays=args.overlays,
            min_coverage=args.min_coverage, min_confidence=args.min_confidence,
            layout=args.layout, scales=args.scales, depth_unit=args.depth_unit, ocr=args.ocr,
            tracking=not args.no_tracking, tracking_uri=args.tracking_uri, experiment=args.experiment,
            progress=not args.no_progress, overwrite=args.overwrite, follow_symlinks=args.follow_symlinks,
        )
        summary = run_inference(opts)
    except InferError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except InferJobError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if smoke_root is not None:  # the smoke test's own temporary folder (inputs, model, outputs)
            import shutil

            shutil.rmtree(smoke_root, ignore_errors=True)
    if smoke_root is not None:
        print(f"[veernet] smoke test: removed {smoke_root} (pass --output DIR to keep the outputs)")
    print(format_summary(summary), flush=True)
    if summary["exit_code"]:
        print(f"{prog}: every scan failed; see {summary['errors_parquet']}", file=sys.stderr)
    return int(summary["exit_code"])


def _smoke(args: argparse.Namespace) -> Path | None:
    """Fill in a tiny generated input and a fixed-seed tiny model where the user gave none.

    Returns the temporary folder it made: the caller removes it after the run (outputs the
    user asked for with --output live elsewhere and are kept).
    """
    root = Path(tempfile.mkdtemp(prefix="veernet-infer-smoke-"))
    if not args.input:
        from veernet_ray.synth import generate_dataset

        args.input = str(generate_dataset(root / "data", n=4, seed=0, preset="demo", workers=1, progress=False))
    if not args.checkpoint:
        args.checkpoint = str(tiny_checkpoint(root / "model"))
    args.output = args.output or str(root / "out")
    args.no_tracking = args.no_tracking or not args.tracking_uri
    print(f"[veernet] smoke test: input {args.input}, checkpoint {args.checkpoint}, output {args.output}")
    return root


def tiny_checkpoint(directory: str | Path, seed: int = 0, stem_width: int = 8,
                    widths: tuple[int, ...] = (8, 16, 16, 32, 32)) -> Path:
    """A fixed-seed, untrained tiny VeerNet checkpoint: for smoke tests and throughput benchmarks only."""
    import torch

    from veernet_ray.model import VeerNet, VeerNetConfig
    from veernet_ray.model.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(d, model=VeerNet(VeerNetConfig(stem_width=stem_width, widths=widths)))


if __name__ == "__main__":
    sys.exit(main())
