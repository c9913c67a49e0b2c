"""`veernet tune losses|capacity` (and `tuning/*_ablation.py`): one parser, one code path."""

from __future__ import annotations

import argparse
import sys

from veernet_ray.config import ConfigError
from veernet_ray.entry import TUNE_SMOKE, TUNE_SMOKE_CAPACITY, add_config_args, config_from_args

PROG = "veernet tune"
KINDS = ("losses", "capacity")

# the smoke presets live with the other entry points' (veernet_ray.entry); importable here too
SMOKE, SMOKE_CAPACITY = TUNE_SMOKE, TUNE_SMOKE_CAPACITY


def _csv(kind):
    def parse(text: str):
        try:
            return tuple(kind(x.strip()) for x in text.split(",") if x.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from exc
    return parse


def build_parser(prog: str = PROG, kind: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Ray Tune sweeps of real training runs, each priced per GPU tier (wall clock x the tier's "
        "hourly rate) and logged to MLflow as child runs of one parent run per sweep; ends with "
        "`veernet compare`'s ranked table, PNG and recommendation.",
        epilog="examples:\n"
        f"  {prog} {kind or 'losses'} --smoke                      # CPU, tiny data, all losses, a few minutes\n"
        f"  {prog} {kind or 'losses'} --config configs/seed.yaml --plan runs/plan/plan.json --asha\n"
        f"  {prog} {kind or 'capacity'} --widths 0.5,1 --depths 4,5 --tier high-end --share-gpu",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if kind is None:
        p.add_argument("kind", choices=KINDS, help="losses: the loss ablation; capacity: encoder width x depth")
    add_config_args(p, config_help="base run config every trial starts from", set_help="override base config fields",
                    manifest_help="manifest.parquet every trial trains on (default: the config's data)")
    p.add_argument("--losses", type=_csv(str), help="losses: comma-separated subset (default: all seven)")
    p.add_argument("--widths", type=_csv(float), help="capacity: width multipliers (default: 0.5,1,2)")
    p.add_argument("--depths", type=_csv(int),
                   help="capacity: encoder depths, at most len(model.widths) of the base config (default: 4,5)")
    p.add_argument("--tiers", help="tiers file (default: configs/tiers.yaml)")
    p.add_argument("--tier", action="append", help="only this tier (repeatable; default: every tier in the file)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="gpu: one trial per variant x tier under the tier's memory ceiling; cpu: one run per "
                        "variant priced for every tier (cost arithmetic only); auto: gpu when CUDA is here")
    p.add_argument("--plan", help="plan.json from `veernet plan`: each tier's physical batch "
                                  "(default: a fixed table, high-end 4 / advanced 16 at seed size)")
    p.add_argument("--asha", action="store_true", help="stop weak trials early (ASHA on --metric)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: 3 with --smoke, 2 on CPU, 1 on GPU "
                                                      "or the number that share one card with --share-gpu)")
    p.add_argument("--share-gpu", action="store_true",
                   help="give each trial only its tier's share of the card (24 GiB of 80: 0.3 GPU), so several "
                        "run on one GPU; their wall clocks then overstate a dedicated card")
    p.add_argument("--card-gb", type=float, help="the card's memory for --share-gpu (default: read from CUDA)")
    p.add_argument("--metric", default="val_curve_r2_median", help="quality metric for ASHA, ranking and the "
                                                                   "recommendation (default: %(default)s)")
    p.add_argument("--name", help="sweep name (default: <kind>-<timestamp>; the same name resumes)")
    p.add_argument("--experiment", help="MLflow experiment (default: veernet-tune-<kind>)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else runs/mlflow.db)")
    p.add_argument("--storage", help="run folder for checkpoints and Tune state (overrides the config's storage)")
    p.add_argument("--out", help="folder for compare.md / compare.png (default: <storage>/compare/<sweep>)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--smoke", "--smoke-test", dest="smoke", action="store_true",
                   help="a tiny CPU sweep in a few minutes: tiny model and data, 2 epochs, every loss once "
                        "(or 4 capacity variants), priced for every tier as cost arithmetic only")
    return p


def _card_gb() -> float | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 2**30
    except (ImportError, OSError, RuntimeError):  # no torch build with CUDA, no driver: no card to size
        pass
    return None


def main(argv: list[str] | None = None, prog: str = PROG, kind: str | None = None) -> int:
    args = build_parser(prog, kind).parse_args(argv)
    kind = kind or args.kind
    from veernet_ray.tune.pricing import TierError, load_tiers, pick_tiers
    from veernet_ray.tune.space import DEPTHS, LOSS_SWEEP, WIDTH_MULTS, capacity_variants, loss_variants

    try:
        cfg = config_from_args(args, smoke=SMOKE, after=[f"storage={args.storage}"] if args.storage else [])
        tiers = pick_tiers(load_tiers(args.tiers), args.tier)
        if kind == "losses":
            variants = loss_variants(args.losses or LOSS_SWEEP, epochs=cfg.train.epochs)
        else:
            smoke = SMOKE_CAPACITY if args.smoke else {}
            variants = capacity_variants(cfg.model, args.widths or smoke.get("mults") or WIDTH_MULTS,
                                         args.depths or smoke.get("depths") or DEPTHS)
    except (ConfigError, TierError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    from veernet_ray.paths import output_folder_problem

    problem = output_folder_problem(cfg.storage_path(), "storage") or (
        output_folder_problem(args.out, "--out") if args.out else "")
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    card = args.card_gb or _card_gb()
    on_gpu = args.device == "gpu" or (args.device == "auto" and card is not None and not args.smoke)
    if args.smoke and args.device == "gpu":
        print(f"{prog}: error: --smoke runs on CPU (the tiers are cost arithmetic only); drop --device gpu",
              file=sys.stderr)
        return 2
    if args.max_concurrent is not None and args.max_concurrent < 1:
        print(f"{prog}: error: --max-concurrent must be at least 1", file=sys.stderr)
        return 2
    # smoke: 3 trials x (0.01 + 0.5 CPUs) + 0.25-CPU decode tasks fit 2 cores; start-up dominates, so 3 beats 2
    concurrent = args.max_concurrent or (1 if on_gpu else 3 if args.smoke else 2)
    if on_gpu and args.share_gpu and args.max_concurrent is None and card:
        concurrent = max(1, int(card // min(t.gpu_mem_gb for t in tiers)))

    from veernet_ray.tune.sweep import run_sweep

    try:
        result = run_sweep(cfg, variants, kind=kind, tiers=tiers, name=args.name,
                           experiment=args.experiment,
                           tracking_uri=args.tracking_uri, on_gpu=on_gpu, plan=args.plan, asha=args.asha,
                           max_concurrent=concurrent, share_gpu=args.share_gpu, card_gb=card, metric=args.metric,
                           ray_address=args.address, out=args.out)
    except (ConfigError, TierError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print()
    print(result.table)
    print()
    print(result.recommendation)
    print(f"[veernet] {result.trials} trial(s), {result.errors} failed; compare: {result.figure}")
    print(f"[veernet] MLflow: experiment {result.experiment!r}, parent run {result.parent_run_id} at {result.tracking_uri}")
    print(f"[veernet] again later: veernet compare --experiment {result.experiment} --tracking-uri {result.tracking_uri}")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
