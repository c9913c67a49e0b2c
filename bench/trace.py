"""Time curve tracing on a synthetic 12,800 x 640 probability map (3 classes).

Curve 1: a sinusoid with noise and a distracting full-width grid line;
curve 2: a slower sinusoid that leaves the track and wraps (backup, declared).
Prints the best-of-N wall time and the mean row error against the truth.

    .venv/bin/python bench/trace.py              # full size
    .venv/bin/python bench/trace.py --no-wrap    # same map, no backup period declared
    .venv/bin/python bench/trace.py --smoke-test
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from veernet_ray.trace import trace_curves


def synthetic_probs(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = np.arange(width)
    t1 = height / 2 + 0.35 * height * np.sin(cols / 400.0)
    t2 = 0.5 * height - 0.0001 * height * cols + 0.2 * height * np.sin(cols / 900.0)  # drifts past the top: wraps
    period = height - 1.0
    drawn2 = np.mod(t2, period)
    probs = np.zeros((3, height, width), np.float32)
    probs[1:] = rng.uniform(0, 0.05, (2, height, width))
    for c, rows in ((1, t1), (2, drawn2)):
        r = np.round(rows).astype(int)
        probs[c, r, cols] = 0.9
        probs[c, np.clip(r + 1, 0, height - 1), cols] = 0.4
    probs[1, height // 5, :] = np.maximum(probs[1, height // 5, :], 0.45)  # grid line
    probs[0] = np.clip(1 - probs[1] - probs[2], 0, 1)
    return probs, t1, t2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=640)
    ap.add_argument("--width", type=int, default=12800)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-wrap", action="store_true", help="declare no backup period (curve 2 is cut at the edge)")
    ap.add_argument("--smoke-test", action="store_true", help="tiny map, one run")
    args = ap.parse_args()
    if args.smoke_test:
        args.height, args.width, args.repeat = 64, 400, 1
    probs, t1, t2 = synthetic_probs(args.height, args.width)
    wrap = None if args.no_wrap else {2: args.height - 1.0}
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = trace_curves(probs, (1, 2), wrap_px=wrap)
        times.append(time.perf_counter() - t0)
    # truth rows are pixel centres rounded, plus the 0.4 neighbour pulls the centroid ~0.3 px down
    err1 = np.nanmean(np.abs(res.rows[0] - t1))
    err2 = np.nanmean(np.abs(res.rows[1] - (np.mod(t2, args.height - 1.0) if args.no_wrap else t2)))
    cover = np.isfinite(res.rows).mean(axis=1)
    what = "no wrap declared" if args.no_wrap else "1 wrapped"
    print(f"trace_curves {args.width} x {args.height}, 3 classes, 2 traced ({what}): "
          f"best {min(times):.3f} s of {args.repeat} (all: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"mean |row error| curve1 {err1:.2f} px, curve2 {err2:.2f} px; coverage {cover[0]:.3f}, {cover[1]:.3f}")


if __name__ == "__main__":
    main()
