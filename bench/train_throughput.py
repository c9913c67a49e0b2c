"""Training throughput: the naive regime against the platform's, side by side over the same images.

(a) naive: physical batch 1, float32, no bucketing, no channels_last;
(b) platform: width-bucketed micro-batches of `--batch`, padded to 32, gradient
    accumulation to the effective batch, bf16 autocast and channels_last on a GPU
    (optionally torch.compile).
Both run the real training step (`veernet_ray.train.loop.accumulate_gradients`
+ AdamW) in one process over the same generated images, so the ratio b/a is
measured side by side. Prints images/s, megapixels/s, padding, peak memory
and the ratio, and appends a section to bench/RESULTS.md with --record.

    .venv/bin/python bench/train_throughput.py --preset demo --n 16            # CPU, a few minutes
    python bench/train_throughput.py --preset seed --n 64 --batch 16 --compile  # GPU
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from veernet_ray.data.buckets import accumulation_steps, plan_batches, plan_padding  # noqa: E402
from veernet_ray.data.collate import pad_collate, to_tensors  # noqa: E402
from veernet_ray.losses import build_loss  # noqa: E402
from veernet_ray.model import VeerNet, VeerNetConfig  # noqa: E402
from veernet_ray.train.loop import accumulate_gradients  # noqa: E402


def make_images(n: int, preset: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from veernet_ray.synth import SynthConfig, render_sample

    cfg = SynthConfig.from_preset(preset)
    out = []
    for i in range(n):
        s = render_sample(seed, i, cfg)
        out.append((s.image, s.mask))
    return out


def run_regime(name, model, images, batches, *, device, amp, channels_last, effective_batch, loss_name, warmup=1):
    """Train over `batches` (lists of image indices); returns throughput figures (warm-up steps excluded)."""
    loss_fn = build_loss(loss_name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    accum = accumulation_steps(effective_batch, max(len(b) for b in batches))
    groups = [batches[i : i + accum] for i in range(0, len(batches), accum)]
    shapes = [im.shape for im, _ in images]
    warmup = warmup if len(groups) > warmup else 0  # too few steps to spare one for warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n_img = px = 0
    t_start = None
    for g, group in enumerate(groups):
        if g == warmup and t_start is None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t_start = time.perf_counter()
        mbs = []
        for b in group:
            col = pad_collate([images[i][0] for i in b], [images[i][1] for i in b])
            mbs.append(to_tensors(col, device=device, channels_last=channels_last))
        opt.zero_grad(set_to_none=True)
        accumulate_gradients(model, loss_fn, mbs, device=device, amp=amp)
        opt.step()
        if g >= warmup:
            n_img += sum(len(b) for b in group)
            px += sum(m["valid"].numel() for m in mbs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - (t_start or time.perf_counter())
    pad = plan_padding(shapes, batches)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {
        "regime": name, "images": n_img, "seconds": seconds, "images_per_s": n_img / max(seconds, 1e-9),
        "mpx_per_s": px / 1e6 / max(seconds, 1e-9), "padding": pad.padding, "peak_gib": peak,
        "physical_batch": max(len(b) for b in batches), "accumulation": accum,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=None, help="geometry preset (default: seed on GPU, demo on CPU)")
    p.add_argument("--n", type=int, default=16, help="images (default: %(default)s)")
    p.add_argument("--batch", type=int, default=4, help="platform physical batch (default: %(default)s)")
    p.add_argument("--effective-batch", type=int, default=16)
    p.add_argument("--loss", default="sce")
    p.add_argument("--widths", default=None, help="encoder widths, e.g. 8,16,16,32,32 (default: the model's)")
    p.add_argument("--stem-width", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile the platform model")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    p.add_argument("--smoke-test", action="store_true", help="4 tiny images, tiny model: seconds")
    args = p.parse_args(argv)
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if args.device == "auto" else args.device))
    preset = args.preset or ("seed" if device.type == "cuda" else "demo")
    kw = {}
    if args.widths:
        kw["widths"] = tuple(int(w) for w in args.widths.split(","))
    if args.stem_width:
        kw["stem_width"] = args.stem_width
    if args.smoke_test:
        args.n, kw = 4, {"widths": (8, 16, 16, 32, 32), "stem_width": 8, "attn_heads": 2}
        args.batch, args.effective_batch = 2, 4
    cfg = VeerNetConfig(num_classes=3, **kw)
    images = make_images(args.n, preset, args.seed)
    torch.manual_seed(args.seed)
    base = VeerNet(cfg).to(device)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    shapes = [im.shape for im, _ in images]

    naive_model = VeerNet(cfg).to(device)
    naive_model.load_state_dict(state)
    naive = run_regime("naive: batch 1, fp32, no bucketing", naive_model, images,
                       plan_batches(shapes, 1, bucketed=False, seed=args.seed), device=device, amp="off",
                       channels_last=False, effective_batch=args.effective_batch, loss_name=args.loss)
    del naive_model
    plat_model = VeerNet(cfg).to(device)
    plat_model.load_state_dict(state)
    on_gpu = device.type == "cuda"
    if on_gpu:
        plat_model = plat_model.to(memory_format=torch.channels_last)
    if args.compile:
        plat_model = torch.compile(plat_model, dynamic=True)
    platform_ = run_regime(
        f"platform: bucketed batch {args.batch}, {'bf16 + channels_last' if on_gpu else 'fp32 (CPU)'}"
        + (", compiled" if args.compile else ""),
        plat_model, images, plan_batches(shapes, args.batch), device=device, amp="auto",
        channels_last=on_gpu, effective_batch=args.effective_batch, loss_name=args.loss)
    ratio = platform_["images_per_s"] / naive["images_per_s"] if naive["images_per_s"] > 0 else float("nan")
    dev_name = torch.cuda.get_device_name(device) if on_gpu else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    lines = [f"| regime | images/s | Mpx/s | padding | peak GiB | physical x accum |", "|---|---|---|---|---|---|"]
    for r in (naive, platform_):
        lines.append(f"| {r['regime']} | {r['images_per_s']:.3f} | {r['mpx_per_s']:.3f} | {r['padding']:.1%} | "
                     f"{r['peak_gib']:.2f} | {r['physical_batch']} x {r['accumulation']} |")
    lines.append(f"\nratio platform / naive: **{ratio:.2f}x** ({args.n} {preset}-preset images, model widths "
                 f"{cfg.widths}, stem {cfg.stem_width}, loss {args.loss}, device {dev_name})")
    text = "\n".join(lines)
    print(text)
    if args.record and not args.smoke_test:
        cmd = "python bench/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(f"\n## Training throughput (bench/train_throughput.py), {datetime.date.today()}\n\n"
                    f"- Command: `{cmd}`\n- Device: {dev_name}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
