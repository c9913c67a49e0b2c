"""Where a training step's and a model actor's time goes: torch.profiler over the real code.

    python3 bench/gpu_profile.py                     # on a GPU: seed model, 16 x 640 x 7,328
    PYTHONPATH=. .venv/bin/python bench/gpu_profile.py --smoke-test     # CPU, seconds

Two profiles, each after warm-up steps (autotuning and allocator growth stay out):
- training: `accumulate_gradients` + AdamW on one full grid batch (bf16 autocast, channels_last);
- inference: `ModelStage.__call__`, the model actor's own code, on one batch of generated scans of
  one grid cell (collate, transfer, forward, softmax, quantise, copy back, crop), shipped weights.
For each: wall time per step, the device's kernel time in it (busy share), and the operators with
the most device time and the most host time. `--out DIR` also writes Chrome traces.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _profile(fn, steps: int, device: torch.device, trace: Path | None, top: int) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(steps):
            fn()
        sync()
    wall = (time.perf_counter() - t0) / steps
    events = prof.key_averages()
    lines = [f"- wall {wall * 1e3:.1f} ms per step ({steps} steps profiled)"]
    if device.type == "cuda":
        # the kernels' own events only: an operator's row carries its kernels' time too, so summing every
        # row counted it twice (2026-11-28's H200 log printed "busy 184%"); torch's table sums the same way
        from torch.autograd import DeviceType

        dev = sum(e.self_device_time_total for e in events if e.device_type != DeviceType.CPU) / 1e3 / steps
        lines.append(f"- device kernel time {dev:.1f} ms per step: busy {dev / (wall * 1e3):.0%} of the wall")
        lines += ["", "Most device time:", "", "```",
                  events.table(sort_by="self_device_time_total", row_limit=top, max_name_column_width=60), "```"]
    lines += ["", "Most host time:", "", "```",
              events.table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=60), "```"]
    if trace:
        prof.export_chrome_trace(str(trace))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--height", type=int, default=640)
    p.add_argument("--width", type=int, default=7328)
    p.add_argument("--steps", type=int, default=3, help="profiled steps (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--top", type=int, default=15, help="operators per table (default: %(default)s)")
    p.add_argument("--norm", choices=("native", "sliced"), default="native", help="VeerNet's bf16 GroupNorm kernel")
    p.add_argument("--out", help="folder for Chrome traces (train.json, infer.json)")
    p.add_argument("--smoke-test", action="store_true", help="tiny model and sizes, CPU: the code path only")
    args = p.parse_args(argv)

    from veernet_ray.data.collate import pad_collate, to_tensors
    from veernet_ray.infer.cli import tiny_checkpoint
    from veernet_ray.infer.stages import ModelStage
    from veernet_ray.losses import build_loss
    from veernet_ray.model import VeerNet, VeerNetConfig, veernet
    from veernet_ray.train.loop import accumulate_gradients
    from veernet_ray.weights import shipped_checkpoint

    veernet.NORM_KERNEL = args.norm
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kw = {}
    if args.smoke_test:
        args.batch, args.height, args.width, args.steps, args.warmup = 2, 64, 256, 1, 1
        kw = {"widths": (8, 16, 16, 32, 32), "stem_width": 8, "attn_heads": 2}
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(0)
    imgs = [np.where(rng.random((args.height, args.width)) < 0.03, 0, 255).astype(np.uint8) for _ in range(args.batch)]
    masks = [(im == 0).astype(np.uint8) for im in imgs]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"# Profile on {name}, torch {torch.__version__}: batch {args.batch} x {args.height} x {args.width}, "
             f"GroupNorm {args.norm}", ""]

    # training: the real accumulation step and AdamW, as bench/train_throughput.py's grid regime runs it
    torch.manual_seed(0)
    model = VeerNet(VeerNetConfig(num_classes=3, **kw)).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = build_loss("sce")
    mb = to_tensors(pad_collate(imgs, masks), device=device, channels_last=channels_last)

    def train_step():
        opt.zero_grad(set_to_none=True)
        accumulate_gradients(model, loss_fn, [mb], device=device, amp="auto")
        opt.step()

    for _ in range(args.warmup):
        train_step()
    lines += ["## Training step (forward, backward, AdamW)", ""]
    lines += _profile(train_step, args.steps, device, out / "train.json" if out else None, args.top)
    del model, opt, mb
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # inference: the model actor's own __call__ on one batch of one grid cell
    ckpt = tiny_checkpoint(Path(out or "/tmp") / "tiny-profile") if args.smoke_test else shipped_checkpoint()
    stage = ModelStage(str(ckpt), device=device.type, batch_size=args.batch,
                       grid=((args.height,), (args.width,)), max_width=max(args.width, 512))
    rows = {"id": np.array([f"s{i}" for i in range(args.batch)], dtype=object),
            "status": np.array(["ok"] * args.batch, dtype=object),
            "kind": np.array([""] * args.batch, dtype=object), "message": np.array([""] * args.batch, dtype=object),
            "stage": np.array([""] * args.batch, dtype=object)}
    img_col = np.empty(args.batch, dtype=object)
    for i, im in enumerate(imgs):
        img_col[i] = im
    rows["image"] = img_col
    for _ in range(args.warmup):
        stage(rows)
    lines += ["", f"## Inference: ModelStage.__call__ ({'tiny model' if args.smoke_test else 'shipped weights'})", ""]
    lines += _profile(lambda: stage(rows), args.steps, device, out / "infer.json" if out else None, args.top)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
