"""The fixed shape grid against height bucketing, by the cost model (issue 13, item 1).

    .venv/bin/python bench/shape_grid.py                       # seed-size shapes, 1,024 logs
    .venv/bin/python bench/shape_grid.py --manifest runs/data/ship-train/manifest.parquet
    .venv/bin/python bench/shape_grid.py --smoke-test

Prints, per device cost (GPU: issue 13's H200 figures; CPU) and physical batch,
micro-batches, batch fill, padding, distinct shapes and the *predicted* useful
Mpx/s of both plans. Predictions only: the GPU figures must be measured
(bench/train_throughput.py on a GPU) before anyone quotes them as speed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default=None, help="take the shapes of a manifest's train split")
    p.add_argument("--n", type=int, default=1024, help="seed-size shapes to draw when no manifest is given")
    p.add_argument("--epochs", type=int, default=10, help="epochs the per-shape warm-up is spread over")
    p.add_argument("--smoke-test", action="store_true", help="64 shapes: the code path only")
    args = p.parse_args(argv)

    from veernet_ray.data.buckets import plan_batches
    from veernet_ray.data.shapes import CPU_COST, GPU_COST, bucket_plan_cost, choose_grid

    if args.manifest:
        from veernet_ray.data.manifest import read_manifest

        df = read_manifest(args.manifest)
        df = df[df["split"] == "train"]
        shapes = list(zip(df["height"].astype(int), df["width"].astype(int)))
    else:
        rng = np.random.default_rng(0)
        n = 64 if args.smoke_test else args.n
        shapes = [(int(rng.integers(480, 641)), int(rng.integers(3200, 12801))) for _ in range(n)]
    print(f"{len(shapes)} logs, heights {min(h for h, _ in shapes)}-{max(h for h, _ in shapes)}, "
          f"widths {min(w for _, w in shapes)}-{max(w for _, w in shapes)}; warm-up spread over {args.epochs} epochs")
    print("| device | batch | plan | micro-batches | fill | padding | distinct shapes | useful Mpx/s (predicted) | grid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, cost in (("GPU (H200 figures)", GPU_COST), ("CPU", CPU_COST)):
        for pb in (4, 16):
            bucket = bucket_plan_cost(shapes, plan_batches(shapes, pb), pb, cost, epochs=args.epochs)
            grid = choose_grid(shapes, pb, cost, epochs=args.epochs)
            for label, plan, cells in (("buckets (3% cap)", bucket, "-"),
                                       ("shape grid", grid, f"{len(grid.grid.heights)} H x {len(grid.grid.widths)} W")):
                s = plan.summary()
                print(f"| {name} | {pb} | {label} | {s['micro_batches']} | {s['fill']:.2f} | {s['padding']:.1%} | "
                      f"{s['distinct_shapes']} | {s['useful_mpx_per_s']:.1f} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
