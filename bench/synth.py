"""Benchmark: seed-preset synthetic images per second on one core, file writing included.

    .venv/bin/python bench/synth.py            # N=8 seed-size images, in-process (workers=1)
    .venv/bin/python bench/synth.py --smoke-test

Prints one result line: `synth: X.XX img/s/core (seed preset, N images, mean W x H, render R s + write W s)`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/synth.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke-test", action="store_true", help="2 demo images")
    args = ap.parse_args(argv)
    if args.smoke_test:
        args.n, args.preset = 2, "demo"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)  # one core: the figure is per core

    from veernet_ray.synth.generate import sample_id, write_sample
    from veernet_ray.synth.render import render_sample
    from veernet_ray.synth.styles import SynthConfig

    config = SynthConfig.from_preset(args.preset)
    render_sample(args.seed, 10_000, config)  # warm-up (imports, cv2 init)
    t_render = t_write = 0.0
    pixels = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            t0 = time.perf_counter()
            s = render_sample(args.seed, i, config)
            t1 = time.perf_counter()
            write_sample(s, Path(tmp), sample_id(args.seed, i))
            t2 = time.perf_counter()
            t_render += t1 - t0
            t_write += t2 - t1
            pixels.append(s.image.shape)
    total = t_render + t_write
    mh = sum(p[0] for p in pixels) / len(pixels)
    mw = sum(p[1] for p in pixels) / len(pixels)
    print(
        f"synth: {args.n / total:.2f} img/s/core ({args.preset} preset, {args.n} images, mean {mw:.0f} x {mh:.0f} px, "
        f"render {t_render / args.n:.3f} s + write {t_write / args.n:.3f} s per image)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
