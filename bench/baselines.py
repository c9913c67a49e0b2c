"""The classical floor: both baseline tracers on an evaluation set, no model needed.

    .venv/bin/python bench/baselines.py                      # held-out styles, 12 seed-size scans per family
    .venv/bin/python bench/baselines.py --set train-style --n 6
    .venv/bin/python bench/baselines.py --smoke-test         # 1 narrow scan per family, seconds

The tracers live in `veernet_ray/evaluate/baselines.py` (so `veernet evaluate`
prints them beside the model); this script runs them alone and times them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    from veernet_ray.evaluate.heldout import EVAL_SETS, curve_table, ensure_set, evaluate_sets, markdown

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--set", dest="set_name", choices=sorted(EVAL_SETS), default="heldout-style")
    p.add_argument("--n", type=int, default=12, help="scans per style family")
    p.add_argument("--data", default="runs/eval/data", help="where evaluation sets are kept")
    p.add_argument("--smoke-test", action="store_true", help="1 scan of 640-800 px per family in a temp folder")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data, n, width = (tmp, 1, (640, 800)) if args.smoke_test else (args.data, args.n, None)
        sets = ensure_set(args.set_name, data, n=n, width=width, progress=not args.smoke_test)
        t0 = time.perf_counter()
        result = evaluate_sets(None, sets, progress=not args.smoke_test)
        dt = time.perf_counter() - t0
    print(markdown(f"Classical baselines on {args.set_name}", curve_table(result.rows)))
    scans = result.seconds["scans"]
    print(f"{scans} scans, both tracers {result.seconds['baselines']:.1f} s "
          f"({result.seconds['baselines'] / max(scans, 1):.2f} s per scan; {dt:.1f} s with reading and truth)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
