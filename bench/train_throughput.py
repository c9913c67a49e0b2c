"""Training throughput: the naive regime against the platform's, side by side over the same images.

(a) naive: physical batch 1, float32, no bucketing, no channels_last;
(b) buckets: height-bucketed micro-batches of `--batch` capped at 3% padding (the
    platform before issue 13), gradient accumulation to the effective batch, bf16
    autocast and channels_last on a GPU;
(c) grid: the same, padded to the cells of a fixed shape grid chosen by the cost
    model (`data.shapes.choose_grid`), batches filled; cuDNN autotuning on; with
    --compile, one static-shape graph per cell.
All run the real training step (`veernet_ray.train.loop.accumulate_gradients`
+ AdamW) in one process over the same generated images, so the ratios are
measured side by side. Each regime runs `--epochs` passes: the first is the
warm-up (autotuning, allocator growth, compiles) and is reported on its own; the
rest are timed. Reported: images/s, useful Mpx/s (the images' own pixels),
padding, batch fill, distinct shapes, peak memory, GPU busy (nvidia-smi), the
ratios; `--widest` adds peak memory at the widest log (640 x 12,800) for
batches 1, 4, 8 and 16 with and without activation checkpointing (GPU only).
`--record` appends a section to bench/RESULTS.md.

    .venv/bin/python bench/train_throughput.py --preset demo --n 16            # CPU, a few minutes
    python bench/train_throughput.py --preset seed --n 256 --batch 16 --compile --widest  # GPU
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
sys.path.insert(0, str(ROOT / "bench"))

from veernet_ray.data.buckets import accumulation_steps, plan_batches, plan_padding  # noqa: E402
from veernet_ray.data.collate import pad_collate, to_tensors  # noqa: E402
from veernet_ray.losses import build_loss  # noqa: E402
from veernet_ray.model import VeerNet, VeerNetConfig, veernet  # noqa: E402
from veernet_ray.train.loop import accumulate_gradients  # noqa: E402


def _render(args):
    from veernet_ray.synth import SynthConfig, render_sample

    seed, i, preset = args
    s = render_sample(seed, i, SynthConfig.from_preset(preset))
    return s.image, s.mask


def make_images(n: int, preset: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` generated (image, mask) pairs, rendered on up to 8 processes (deterministic per index)."""
    import multiprocessing as mp

    jobs = [(seed, i, preset) for i in range(n)]
    workers = max(1, min(8, (mp.cpu_count() or 1) // 2, n))
    if workers == 1:
        return [_render(j) for j in jobs]
    with mp.get_context("spawn").Pool(workers) as pool:
        return pool.map(_render, jobs)


def run_regime(name, model, images, batches, *, device, amp, channels_last, effective_batch, loss_name,
               pad_to=None, epochs=2, physical_batch=None):
    """Train `epochs` passes over `batches` (lists of image indices; `pad_to` their padded shapes, else
    each pads to its own max); the first pass is warm-up. Returns throughput figures of the timed passes."""
    from gpu_busy import GpuBusy

    loss_fn = build_loss(loss_name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    physical_batch = physical_batch or max(len(b) for b in batches)
    accum = accumulation_steps(effective_batch, physical_batch)
    order = list(range(len(batches)))
    groups = [order[i : i + accum] for i in range(0, len(order), accum)]
    shapes = [im.shape for im, _ in images]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one_pass():
        n_img = px = useful = 0
        for group in groups:
            mbs = []
            for j in group:
                b = batches[j]
                col = pad_collate([images[i][0] for i in b], [images[i][1] for i in b],
                                  pad_to=pad_to[j] if pad_to else None)
                mbs.append(to_tensors(col, device=device, channels_last=channels_last))
            opt.zero_grad(set_to_none=True)
            accumulate_gradients(model, loss_fn, mbs, device=device, amp=amp)
            opt.step()
            n_img += sum(len(batches[j]) for j in group)
            px += sum(m["valid"].numel() for m in mbs)
            useful += sum(int(m["valid"].sum()) for m in mbs)
        return n_img, px, useful

    sync()
    t0 = time.perf_counter()
    one_pass()  # warm-up: autotuning, allocator growth, compiles
    sync()
    warm_s = time.perf_counter() - t0
    n_img = px = useful = 0
    with GpuBusy() as busy:
        t0 = time.perf_counter()
        for _ in range(max(1, epochs - 1)):
            a, b_, c = one_pass()
            n_img, px, useful = n_img + a, px + b_, useful + c
        sync()
        seconds = time.perf_counter() - t0
    pad = 1.0 - useful / px if px else 0.0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    if pad_to:
        distinct = len({(len(b), *s) for b, s in zip(batches, pad_to)})
    else:
        distinct = len({(len(b), -(-max(shapes[i][0] for i in b) // 32) * 32, -(-max(shapes[i][1] for i in b) // 32) * 32)
                        for b in batches})
    return {
        "regime": name, "images": n_img, "seconds": seconds, "images_per_s": n_img / max(seconds, 1e-9),
        "mpx_per_s": px / 1e6 / max(seconds, 1e-9), "useful_mpx_per_s": useful / 1e6 / max(seconds, 1e-9),
        "padding": pad, "peak_gib": peak, "physical_batch": physical_batch, "accumulation": accum,
        "fill": float(np.mean([len(b) for b in batches])) / physical_batch, "distinct_shapes": distinct,
        "warmup_s": warm_s, "busy": busy.text(),
    }


def widest_memory(cfg, device, batches=(1, 4, 8, 16), shape=(640, 12_800)) -> list[str]:
    """Peak `torch.cuda.max_memory_allocated` of one bf16 AdamW step at the widest log, per batch."""
    lines = ["| checkpointing | " + " | ".join(f"batch {b}" for b in batches) + " |",
             "|---|" + "---|" * len(batches)]
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = VeerNet(VeerNetConfig(**{**cfg.__dict__, "checkpointing": ckpt})).to(device)
        model = model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss_fn = build_loss("sce")
        cells = []
        for b in batches:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            try:
                img = np.full((shape[0], shape[1]), 255, np.uint8)
                img[::7] = 0
                mask = (img == 0).astype(np.uint8)
                mb = to_tensors(pad_collate([img] * b, [mask] * b), device=device, channels_last=True)
                opt.zero_grad(set_to_none=True)
                accumulate_gradients(model, loss_fn, [mb], device=device, amp="auto")
                opt.step()
                torch.cuda.synchronize(device)
                cells.append(f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
                del mb
            except (torch.OutOfMemoryError, RuntimeError) as exc:  # OOM, or a kernel's own size limit
                oom = isinstance(exc, torch.OutOfMemoryError)
                cells.append("out of memory" if oom else f"failed: {str(exc).splitlines()[0][:120]}")
                opt.zero_grad(set_to_none=True)
                import gc

                gc.collect()
        lines.append(f"| {'on' if ckpt else 'off'} | " + " | ".join(cells) + " |")
        del model, opt
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=None, help="geometry preset (default: seed on GPU, demo on CPU)")
    p.add_argument("--n", type=int, default=16, help="images (default: %(default)s)")
    p.add_argument("--batch", type=int, default=4, help="platform physical batch (default: %(default)s)")
    p.add_argument("--effective-batch", type=int, default=16)
    p.add_argument("--loss", default="sce")
    p.add_argument("--widths", default=None, help="encoder widths, e.g. 8,16,16,32,32 (default: the model's)")
    p.add_argument("--stem-width", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="also the grid regime compiled (static shapes per cell)")
    p.add_argument("--regimes", default=None,
                   help="comma-separated, run in this order, each row printed as it finishes: naive, buckets, grid, "
                        "grid_sliced (the grid with the sliced float32 GroupNorm), grid_nchw (the grid without channels_last: "
                        "CUDA's GroupNorm kernels take NCHW only), compiled, widest (default: "
                        "naive,buckets,grid, then compiled with --compile and widest with --widest)")
    p.add_argument("--naive-n", type=int, help="the naive regime on the first N images only (its rate is per "
                   "image; default: all)")
    p.add_argument("--epochs", type=int, default=3, help="passes per regime, the first one warm-up (default: 3)")
    p.add_argument("--widest", action="store_true", help="GPU: peak memory at 640 x 12,800, batches 1/4/8/16")
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
        args.batch, args.effective_batch, args.epochs = 2, 4, 2
    regimes = (args.regimes.split(",") if args.regimes else
               ["naive", "buckets", "grid"] + (["compiled"] if args.compile else []) + (["widest"] if args.widest else []))
    known = ("naive", "buckets", "grid", "grid_sliced", "grid_nchw", "compiled", "widest")
    unknown = set(regimes) - set(known)
    if unknown:
        p.error(f"unknown regime(s) {sorted(unknown)}: choose from {', '.join(known)}")
    cfg = VeerNetConfig(num_classes=3, **kw)
    images = make_images(args.n, preset, args.seed)
    torch.manual_seed(args.seed)
    base = VeerNet(cfg).to(device)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    shapes = [im.shape for im, _ in images]

    from veernet_ray.data.shapes import CPU_COST, GPU_COST, plan_grid, choose_grid

    on_gpu = device.type == "cuda"
    precision = "bf16 + channels_last" if on_gpu else "fp32 (CPU)"

    def fresh(channels_last=False):
        m = VeerNet(cfg).to(device)
        m.load_state_dict(state)
        return m.to(memory_format=torch.channels_last) if channels_last else m

    gp = choose_grid(shapes, args.batch, GPU_COST if on_gpu else CPU_COST, epochs=args.epochs)
    grid_text = f"{list(gp.grid.heights)} x {list(gp.grid.widths)}"
    dev_name = torch.cuda.get_device_name(device) if on_gpu else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    header = ["| regime | images/s | useful Mpx/s | padding | fill | shapes | warm-up s | peak GiB | GPU busy | "
              "physical x accum | vs naive |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    print(f"{args.n} {preset}-preset images, {args.epochs} passes per regime (the first is warm-up), model widths "
          f"{cfg.widths}, stem {cfg.stem_width}, loss {args.loss}, grid {grid_text}, device {dev_name}", flush=True)
    print("\n".join(header), flush=True)
    results: list[dict] = []
    rows: list[str] = []
    extra: list[str] = []

    def row(r: dict) -> str:
        naive = next((x for x in results if x["regime"].startswith("naive")), None)
        ratio = (f"{r['images_per_s'] / naive['images_per_s']:.2f}x" if naive and naive["images_per_s"] > 0
                 else "n/a")
        return (f"| {r['regime']} | {r['images_per_s']:.3f} | {r['useful_mpx_per_s']:.3f} | {r['padding']:.1%} | "
                f"{r['fill']:.0%} | {r['distinct_shapes']} | {r['warmup_s']:.1f} | {r['peak_gib']:.2f} | "
                f"{r['busy']} | {r['physical_batch']} x {r['accumulation']} | {ratio} |")

    common = dict(device=device, effective_batch=args.effective_batch, loss_name=args.loss, epochs=args.epochs)
    for regime in regimes:
        if regime == "naive":
            sub = images[: args.naive_n] if args.naive_n else images
            r = run_regime("naive: batch 1, fp32, no bucketing" + (f" ({len(sub)} of the images)" if len(sub) <
                           len(images) else ""), fresh(), sub,
                           plan_batches([im.shape for im, _ in sub], 1, bucketed=False, seed=args.seed), amp="off",
                           channels_last=False, **common)
        elif regime == "buckets":
            torch.backends.cudnn.benchmark = False
            r = run_regime(f"buckets: batch {args.batch}, <= 3% padding, {precision}", fresh(on_gpu), images,
                           plan_batches(shapes, args.batch), amp="auto", channels_last=on_gpu,
                           physical_batch=args.batch, **common)
        elif regime in ("grid", "compiled", "grid_sliced", "grid_nchw"):
            torch.backends.cudnn.benchmark = on_gpu
            # grid_nchw: the model and batches in NCHW, so the GroupNorm inputs need no NCHW copy on CUDA
            # (2026-11-28 H200 profile: copies were a third of the step's device time), cuDNN's bf16
            # convolutions then take NCHW
            nhwc = on_gpu and regime != "grid_nchw"
            model = fresh(nhwc)
            name = f"grid: batch {args.batch}, {precision}" if regime != "grid_nchw" else \
                f"grid: batch {args.batch}, {'bf16' if on_gpu else 'fp32 (CPU)'}, NCHW"
            if regime == "grid_sliced":  # issue 13's first GroupNorm: float32 arithmetic in operators
                veernet.NORM_KERNEL, name = "sliced", name + ", sliced GroupNorm"
            if regime == "compiled":
                torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit,
                                                            gp.distinct_shapes + 2)
                model, name = torch.compile(model, dynamic=False), name + ", compiled per cell"
            r = run_regime(name, model, images, gp.batches, pad_to=gp.shapes, amp="auto", channels_last=nhwc,
                           physical_batch=args.batch, **common)
            veernet.NORM_KERNEL = "native"
        elif regime == "widest":
            if on_gpu:
                extra.extend(["", "Peak memory, one bf16 AdamW step at 640 x 12,800:", ""])
                for line in widest_memory(cfg, device):
                    extra.append(line)
                    print(line, flush=True)
            continue
        results.append(r)
        rows.append(row(r))
        print(rows[-1], flush=True)
    lines = header + rows
    lines.append(f"\n{args.n} {preset}-preset images, {args.epochs} passes per regime (the first is warm-up), model "
                 f"widths {cfg.widths}, stem {cfg.stem_width}, loss {args.loss}, grid {grid_text}, device {dev_name}")
    lines += extra
    text = "\n".join(lines)
    print("\n" + text)
    if args.record and not args.smoke_test:
        cmd = "python bench/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(f"\n## Training throughput (bench/train_throughput.py), {datetime.date.today()}\n\n"
                    f"- Command: `{cmd}`\n- Device: {dev_name}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
