"""`veernet evaluate`: the model beside the classical baselines on styles it never trained on."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from veernet_ray.cli import HelpFormatter
from veernet_ray.evaluate.heldout import EVAL_SEED, EVAL_SETS


def build_parser(prog: str = "veernet evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Grade a model on an evaluation set it never trained on, beside two classical tracers. "
            "The set is generated once (seed-size scans, one dataset per style family; the held-out "
            "families use a curve-2 pattern, grid/ink/noise settings and a well that training never "
            "sees) and reused. Prints per-class mask IoU/F1, recovered-curve R^2, MAE and Pearson r "
            "(track-normalised, against the truth LAS) overall and per style, the baselines' figures "
            "beside the model's, and how QC did; writes report.md, report.json and curves.parquet."
        ),
        formatter_class=HelpFormatter,
        epilog="examples:\n  veernet evaluate                                   # the shipped weights, held-out styles\n"
               "  veernet evaluate --checkpoint runs/ship/best --n 4  # a quick look\n"
               "  veernet evaluate --set train-style                 # training styles (QC thresholds are set here)\n"
               "  veernet evaluate --set val-style --n 48            # unseen styles for choices (which stage ships)",
    )
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint.pt, a folder holding one, or models:/name/version (default: the shipped weights)")
    p.add_argument("--set", dest="set_name", choices=sorted(EVAL_SETS), default="heldout-style",
                   help="evaluation set: heldout-style is only reported; train-style (training styles) and "
                        "val-style (unseen styles from training wells) are where choices are made")
    p.add_argument("--n", type=int, default=12, help="scans per style family")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help="base seed of the set (one per family from here)")
    p.add_argument("--width", default=None, metavar="MIN,MAX",
                   help="scan width range in px (default: the seed preset's 3200-12800)")
    p.add_argument("--las-dir", default=None, help="real LAS folder for the curves (default: ../shared/data/las)")
    p.add_argument("--data", default="runs/eval/data", help="where evaluation sets are generated and kept")
    p.add_argument("--out", default=None, help="report folder (default: runs/eval/<set>-<checkpoint hash>)")
    p.add_argument("--no-baselines", action="store_true", help="skip the classical tracers")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="keep the model's probabilities under DIR/<checkpoint hash>/ and reuse them on later "
                        "runs (for decoder and QC work; default: run the model every time)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from veernet_ray.evaluate.heldout import cache_folder, ensure_set, evaluate_sets, report_sections, write_report
    from veernet_ray.infer.pipeline import model_provenance, resolve_checkpoint
    from veernet_ray.synth.styles import parse_range
    from veernet_ray.trace.decode import DEFAULT_DECODER

    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    width = parse_range(args.width, "width") if args.width else None
    ckpt, source = resolve_checkpoint(args.checkpoint, tracking_uri=None, state_dir=Path("runs/eval").resolve())
    _, facts = model_provenance(ckpt, source)
    sets = ensure_set(args.set_name, args.data, n=args.n, seed=args.seed, las_dir=args.las_dir, width=width,
                      progress=not args.quiet)
    t0 = time.time()
    from veernet_ray.infer.stages import INFER_FILL, INFER_MARGIN

    cache = cache_folder(args.cache, facts["checkpoint_hash"]) if args.cache else None
    result = evaluate_sets(ckpt, sets, baselines=not args.no_baselines, progress=not args.quiet, cache=cache)
    meta = {"set": args.set_name, "families": [f for f, _ in sets], "n_per_family": args.n, "seed": args.seed,
            "checkpoint": str(ckpt), "source": source, **facts, "decoder": DEFAULT_DECODER,
            "infer_margin": INFER_MARGIN, "infer_fill": INFER_FILL,
            "seconds": round(time.time() - t0, 1)}
    out = Path(args.out or f"runs/eval/{args.set_name}-{facts['checkpoint_hash']}")
    paths = write_report(out, result, meta)
    for section in report_sections(paths["tables"]):
        print(section)
    print(f"report: {paths['markdown']}  (every curve: {paths['parquet']}; picture: {paths['figure']})")
    return 0


def main(argv: list[str] | None = None, prog: str = "veernet evaluate") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return run(args)
    except (ValueError, KeyError, OSError) as exc:  # bad settings, missing files: one line, exit 2
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else (str(exc) or type(exc).__name__)
        print(f"{prog}: error: {msg.splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
