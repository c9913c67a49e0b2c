"""What a scan's region (`VeerNet.forward(valid=)`) costs and buys when it is batched into a bigger cell.

    PYTHONPATH=. .venv/bin/python bench/valid_region.py                       # CPU, shipped weights
    PYTHONPATH=. .venv/bin/python bench/valid_region.py --device cuda --batch 8
    PYTHONPATH=. .venv/bin/python bench/valid_region.py --smoke-test

A generated seed-size scan is run alone (padded to its own margin and multiple, as `veernet
evaluate` runs it) and padded into a cell `--grow` larger on each side, `--batch` copies per
forward, with and without its region. Reported per variant: milliseconds per forward (median of
`--rounds`, the variants alternating in each round, after one warm-up each), and the largest and
mean difference from the scan's probabilities alone (0-255). Only the ratio of the times counts on
a noisy machine; on a GPU the times are synchronised.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="copies of the scan per forward (default: %(default)s)")
    p.add_argument("--grow", type=float, default=1.15, help="cell side / the scan's own padded side (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (default: %(default)s)")
    p.add_argument("--width", type=int, default=3000, help="scan width in px (default: %(default)s)")
    p.add_argument("--smoke-test", action="store_true", help="a tiny model and a small scan, one round")
    args = p.parse_args(argv)

    import torch

    from veernet_ray.data.collate import round_up
    from veernet_ray.infer.stages import ModelStage
    from veernet_ray.weights import SHIPPED

    if args.smoke_test:
        from veernet_ray.infer.cli import tiny_checkpoint

        ckpt = str(tiny_checkpoint(tempfile.mkdtemp()))
        args.width, args.rounds = 400, 1
    else:
        ckpt = str(SHIPPED)
    stage = ModelStage(ckpt, device=args.device, batch_size=args.batch, max_width=1 << 20)
    image = _scan(args.width)
    h, w = image.shape
    own = (round_up(h + stage.margin, stage.multiple), round_up(w + stage.margin, stage.multiple))
    cell = (round_up(int(own[0] * args.grow), stage.multiple), round_up(int(own[1] * args.grow), stage.multiple))
    alone = stage.forward([image])[0].astype(np.int16)
    real = stage.model

    def plain(x, valid=None):
        return real(x)

    def run(variant: str) -> tuple[float, np.ndarray]:
        stage.model = real if variant == "region" else plain
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = stage.forward([image] * args.batch, pad_to=cell)[0]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    variants = ("whole tensor", "region")
    times: dict[str, list[float]] = {v: [] for v in variants}
    diffs = {}
    for v in variants:
        _, out = run(v)  # warm-up
        d = np.abs(out.astype(np.int16) - alone)
        diffs[v] = (int(d.max()), float(d.mean()))
    # the floor: the same scan in a batch of `--batch` at its own shape. On a GPU (bf16, cuDNN choosing
    # kernels per shape) that alone moves probabilities; on a CPU in float32 it is rounding only
    d = np.abs(stage.forward([image] * args.batch)[0].astype(np.int16) - alone)
    floor = (int(d.max()), float(d.mean()))
    for _ in range(args.rounds):
        for v in variants:
            times[v].append(run(v)[0])
    stage.model = real
    print(f"scan {h} x {w}, own padded {own[0]} x {own[1]}, cell {cell[0]} x {cell[1]} "
          f"({1 - h * w / (cell[0] * cell[1]):.0%} padding), batch {args.batch}, {args.device}, "
          f"{args.rounds} rounds")
    print("| statistics over | ms per forward | max |dp| from alone | mean |dp| |")
    print("|---|---|---|---|")
    for v in variants:
        print(f"| {v} | {1000 * statistics.median(times[v]):.0f} | {diffs[v][0]} | {diffs[v][1]:.3f} |")
    print(f"| (floor: batch {args.batch} at its own shape, no cell) | - | {floor[0]} | {floor[1]:.3f} |")
    ratio = statistics.median(times["region"]) / statistics.median(times["whole tensor"])
    print(f"region / whole-tensor time: {ratio:.2f}x")
    if not args.device.startswith("cpu"):
        # 2026-11-28, H200, batch 8: region max 12, mean 0.033 against whole tensor 136 / 0.733; bf16
        # kernels differ per shape, so exactness is checked on the CPU only (tests/test_model.py too)
        print("not checked for exactness on this device: compare the region's row with the floor's")
        return 0
    if diffs["region"][0] > 1:  # more than uint8 rounding: the region no longer isolates the scan
        print(f"error: with its region the scan's probabilities differ from its own by up to {diffs['region'][0]}/255",
              file=sys.stderr)
        return 1
    return 0


def _scan(width: int) -> np.ndarray:
    """One generated seed-size training-style scan (seed 7), cut to `width` columns."""
    from veernet_ray.synth import SynthConfig, render_sample

    return np.ascontiguousarray(render_sample(7, 0, SynthConfig.from_preset("seed")).image[:, :width])


if __name__ == "__main__":
    sys.exit(main())
