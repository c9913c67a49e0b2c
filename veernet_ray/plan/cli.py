"""`veernet plan`: physical batch, accumulation, epoch time and euros per tier, from measurements."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from veernet_ray.config import PROJECT_ROOT, ConfigError
from veernet_ray.entry import SMOKE_MODEL, add_config_args, config_from_args

PROG = "veernet plan"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Plan training compute from measurements of the real model on the real data: the largest "
        "physical batch that holds the widest padded log on each GPU tier, accumulation steps for the effective "
        "batch, padding with and without width bucketing, epoch wall clock, euros per run and per N retrains. "
        "On a GPU memory and throughput are measured; without one memory is estimated (labelled 'estimate') and "
        "the throughput is this CPU's ('cpu-measured') unless --throughput gives a card figure. "
        "Writes OUT/plan.json (read by `veernet train --set train.plan=OUT/plan.json`) and OUT/plan.png.",
        epilog="examples:\n"
        "  veernet plan --manifest runs/data/demo/manifest.parquet\n"
        "  veernet plan --manifest /shared/veernet/seed/manifest.parquet --config configs/seed.yaml --tier advanced\n"
        "  veernet plan --manifest M --gpu-mem 48 --eur-month 1200 --throughput 40\n"
        "  veernet train --manifest M --set train.plan=runs/plan/plan.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p, config_help="run config whose model, precision (train.amp) and loss are planned",
                    set_help="config overrides, e.g. model.checkpointing=true train.amp=bf16",
                    manifest_help="manifest.parquet (or its folder) to plan for (default: the config's data.manifest)",
                    smoke_flag="--smoke-test",
                    smoke_help="seconds on a CPU: `veernet train --smoke-test`'s tiny model, the fewest measurement "
                               "shapes")
    p.add_argument("--tiers", default=str(PROJECT_ROOT / "configs" / "tiers.yaml"),
                   help="GPU tiers file (default: %(default)s)")
    p.add_argument("--tier", help="the tier whose batch and accumulation go into plan.json "
                   "(default: the cheapest per run among the tiers that fit)")
    p.add_argument("--gpu-mem", type=float, metavar="GB", help="plan for one card of this many GiB instead of the tiers")
    p.add_argument("--eur-month", type=float, metavar="X", help="that card's rent per month (with --gpu-mem)")
    p.add_argument("--epochs", type=int, default=50, help="epochs per full training run (default: %(default)s)")
    p.add_argument("--retrains", type=int, default=10, help="N: also cost N full runs (default: %(default)s)")
    p.add_argument("--effective-batch", type=int, help="images per optimiser step (default: the config's, 16)")
    p.add_argument("--workers", type=int, default=1, help="GPUs training together, one per worker (default: 1)")
    p.add_argument("--throughput", type=float, metavar="MPX_PER_S",
                   help="a known training throughput of the card, megapixels per second (labelled 'given')")
    p.add_argument("--headroom", type=float, default=0.1,
                   help="fraction of each card kept free for the CUDA context and allocator (default: %(default)s)")
    p.add_argument("--split", default="train", help="manifest split one epoch passes over, or 'all' (default: train)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="measure on the GPU (cuda) or estimate on the CPU (default: auto)")
    p.add_argument("--out", default="runs/plan", help="folder for plan.json and plan.png (default: %(default)s)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)

    def fail(msg: str) -> int:
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2

    from veernet_ray.plan.planner import PlanError
    from veernet_ray.plan.tiers import Tier, TierError, load_tiers

    from veernet_ray.paths import output_folder_problem

    problem = output_folder_problem(args.out, "--out")
    if problem:  # before minutes of measuring
        return fail(problem)
    if (args.gpu_mem is None) != (args.eur_month is None):
        return fail("--gpu-mem and --eur-month go together (a card's memory in GiB and its rent per month)")
    if args.epochs < 1 or args.retrains < 0 or args.workers < 1 or (args.effective_batch or 1) < 1:
        return fail("--epochs, --workers and --effective-batch must be at least 1, --retrains at least 0")
    try:
        cfg = config_from_args(args, smoke=SMOKE_MODEL, manifest_to_config=False)  # --manifest: read below
        if args.gpu_mem is not None:
            tiers = [Tier(f"{args.gpu_mem:g}GB-card", args.gpu_mem, args.eur_month)]
            if args.tier:
                return fail("--tier picks from the tiers file; with --gpu-mem/--eur-month there is one card")
        else:
            tiers = load_tiers(args.tiers)
            if args.tier and args.tier not in [t.name for t in tiers]:
                return fail(f"unknown tier {args.tier!r}; valid tiers: {', '.join(t.name for t in tiers)}")
    except (ConfigError, TierError) as exc:
        return fail(str(exc))
    manifest = args.manifest or cfg.data.manifest
    if not manifest:
        return fail("no manifest: pass --manifest PATH (generate one with `veernet synth DIR`)")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return fail("--device cuda but no CUDA GPU is visible; use --device cpu for the estimate")

    from veernet_ray.plan.report import format_table
    from veernet_ray.plan.run import run_plan

    try:
        plan = run_plan(cfg, manifest, tiers, out=args.out, tier=args.tier, epochs=args.epochs,
                        retrains=args.retrains, effective_batch=args.effective_batch, workers=args.workers,
                        throughput=args.throughput, device=args.device, headroom=args.headroom, split=args.split,
                        quick=args.smoke_test)
    except (PlanError, ValueError, KeyError) as exc:
        return fail(str(exc).strip("'\""))
    print()
    print(format_table(plan))
    out = Path(args.out)
    print(f"\nwrote {out / 'plan.json'} and {out / 'plan.png'}; train with it: "
          f"veernet train --manifest {manifest} --set train.plan={out / 'plan.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
