"""Run real training steps of the configured VeerNet and record memory and time.

Every figure here comes from the trainer's own step: `accumulate_gradients`
(the real loss, bf16 autocast when the run uses it, the float32 loss cast),
gradient clipping and `AdamW.step()`, on a synthetic batch of the requested
(batch, height, width). Nothing is decoded: planning needs shapes, not pixels.

- `measure_gpu`: peak memory from `torch.cuda.max_memory_allocated` (reset
  before each point, after a warm-up step that creates AdamW's state) and the
  wall clock of each micro-step. Basis "measured".
- `estimate_cpu`: on a machine with no GPU, the peak of the same step counted
  tensor by tensor on the CPU (`plan.memory.LiveBytes`: forward, backward and
  the optimiser step), plus weights, AdamW state and the input batch. Basis
  "estimate", never "measured".
- `time_cpu`: one real step on this CPU, basis "cpu-measured" (a CPU figure,
  not a GPU's).
"""

from __future__ import annotations

import contextlib
import gc
import time
from typing import Sequence

import numpy as np
import torch

from veernet_ray.config import RunConfig
from veernet_ray.data.collate import to_tensors
from veernet_ray.losses import SegLoss
from veernet_ray.losses.schedule import parse_schedule
from veernet_ray.model import VeerNet, count_parameters, model_config
from veernet_ray.plan.fit import Point
from veernet_ray.train.loop import accumulate_gradients  # plan measures the very step training runs

# fp32 weights + fp32 gradients + AdamW's exp_avg and exp_avg_sq: 4 x 4 bytes per parameter.
STATE_BYTES_PER_PARAM = 16


def gpu_amp(cfg: RunConfig) -> str:
    """The precision a GPU run of this config uses: "auto" means bf16 there."""
    return "off" if cfg.train.amp == "off" else "bf16"


def loss_weights(cfg: RunConfig, epochs: int) -> list[tuple[SegLoss, float]]:
    """Each distinct loss of the schedule with the fraction of epochs it trains."""
    schedule = parse_schedule(cfg.train.loss, max(epochs, len(cfg.train.loss.split("->"))),
                              cfg.train.loss_params or None)
    counts: dict[str, int] = {}
    for e in range(schedule.epochs):
        name = schedule.name_for_epoch(e)
        counts[name] = counts.get(name, 0) + 1
    first = {schedule.name_for_epoch(e): schedule.loss_for_epoch(e) for e in range(schedule.epochs)}
    return [(first[n], c / schedule.epochs) for n, c in counts.items()]


def synthetic_batch(batch: int, height: int, width: int, num_classes: int, *, device, channels_last: bool,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """A `pad_collate`-shaped batch of noise with random labels, made model-ready by `to_tensors`."""
    rng = np.random.default_rng(seed)
    raw = {
        "image": rng.integers(0, 256, (batch, height, width), dtype=np.uint8),
        "mask": rng.integers(0, num_classes, (batch, height, width), dtype=np.uint8),
        "valid": np.ones((batch, height, width), dtype=bool),
    }
    return to_tensors(raw, device=device, channels_last=channels_last)


def build_step(cfg: RunConfig, device: torch.device, channels_last: bool):
    """(model, optimizer) as `train_func` builds them (no DDP: one device)."""
    torch.manual_seed(cfg.train.seed)
    model = VeerNet(model_config(cfg)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    return model, optimizer


def train_step(model, optimizer, loss_fn, mb, *, device, amp: str, grad_clip: float) -> None:
    """One optimiser step on one micro-batch, exactly as `train_one_epoch` does it."""
    optimizer.zero_grad(set_to_none=True)
    accumulate_gradients(model, loss_fn, [mb], device=device, amp=amp)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def measure_gpu(cfg: RunConfig, shapes: Sequence[tuple[int, int, int]], *, epochs: int, repeats: int = 3,
                device: str = "cuda", log=print) -> tuple[list[Point], list[tuple[int, int, int]]]:
    """Peak memory and micro-step time at each (batch, height, width) on the current GPU.

    Memory is the maximum over the schedule's losses; time is their epoch-weighted mean.
    Returns (points, shapes skipped because they ran out of memory).
    """
    dev = torch.device(device)
    amp = gpu_amp(cfg)
    channels_last = cfg.train.channels_last != "off"
    model, optimizer = build_step(cfg, dev, channels_last)
    losses = loss_weights(cfg, epochs)
    points, skipped = [], []
    for b, h, w in shapes:
        peak, seconds = 0, 0.0
        try:
            for loss_fn, weight in losses:
                mb = synthetic_batch(b, h, w, cfg.train.num_classes, device=dev, channels_last=channels_last)
                train_step(model, optimizer, loss_fn, mb, device=dev, amp=amp, grad_clip=cfg.train.grad_clip)
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                t0 = time.perf_counter()
                for _ in range(repeats):
                    train_step(model, optimizer, loss_fn, mb, device=dev, amp=amp, grad_clip=cfg.train.grad_clip)
                torch.cuda.synchronize(dev)
                seconds += weight * (time.perf_counter() - t0) / repeats
                peak = max(peak, torch.cuda.max_memory_allocated(dev))
                del mb
        except torch.cuda.OutOfMemoryError:
            skipped.append((b, h, w))
            mb = None
            optimizer.zero_grad(set_to_none=True)
            gc.collect()  # the exception's frames held the failed step's tensors
            torch.cuda.empty_cache()
            log(f"[plan]   {b} x {h} x {w}: out of memory, skipped")
            continue
        points.append(Point(b, h, w, float(peak), seconds))
        log(f"[plan]   {b} x {h} x {w}: peak {peak / 2**30:.2f} GiB, {seconds * 1e3:.0f} ms per micro-step")
    return points, skipped


#: `max_memory_allocated` over the count, measured on an H200 (bench/RESULTS.md, "Issue 13 on a GPU,
#: second session", 2026-11-28) for batch 16 of the widest log (640 x 12,800, seed model, bf16, native
#: GroupNorm): 73.5 GiB against 63.1 GiB counted without checkpointing, 48.3 against 37.4 with it. The
#: excess is the allocator's rounding, cuDNN's workspaces and, since CUDA's GroupNorm kernels take NCHW
#: only, the NCHW copy of every GroupNorm input (the CPU kernels take channels_last, so `LiveBytes`
#: never sees it). The sliced GroupNorm of 2026-11-27 was 1.036 (75.39 against 72.8 GiB).
GPU_OVER_COUNT = 1.165
GPU_OVER_COUNT_CHECKPOINTED = 1.29


def estimate_cpu(cfg: RunConfig, shapes: Sequence[tuple[int, int, int]] = ((1, 32, 256), (2, 32, 256), (1, 64, 256), (1, 32, 512)), *,
                 epochs: int) -> list[Point]:
    """Estimated GPU peak memory at each shape: the real training step run on this CPU under
    `LiveBytes`, which counts every tensor alive after every operator of forward, backward and
    the optimiser step (what `torch.cuda.max_memory_allocated` reports, less allocator rounding).

    Runs at the GPU run's precision (bf16 autocast for amp "auto"/"bf16"). VeerNet's GroupNorm
    keeps the same dtypes on every device, so the count is the GPU's: for the model before that
    GroupNorm, this count (with a GPU's GroupNorm policy) gave 12.0 GiB for one 640 x 12,800
    log, where an H200 measured about 12 GiB (bench/RESULTS.md). Weights, AdamW's two moments
    and the input batch exist before the step and are added; gradients are counted inside it.
    Keep shapes small: bf16 on a CPU is slow, and activations are linear in pixels anyway.
    The count is scaled by GPU_OVER_COUNT (GPU_OVER_COUNT_CHECKPOINTED with activation checkpointing),
    what an H200 allocated beyond it.
    """
    from veernet_ray.plan.memory import LiveBytes

    dev = torch.device("cpu")
    amp = gpu_amp(cfg)
    model, optimizer = build_step(cfg, dev, channels_last=False)
    fixed = (STATE_BYTES_PER_PARAM - 4) * count_parameters(model)  # weights + AdamW moments; grads counted live
    losses = [loss for loss, _ in loss_weights(cfg, epochs)]
    points = []
    for b, h, w in shapes:
        mb = synthetic_batch(b, h, w, cfg.train.num_classes, device=dev, channels_last=False)
        inputs = sum(t.untyped_storage().nbytes() for k, t in mb.items() if k in ("image", "mask", "valid"))
        peak = 0
        for loss_fn in losses:
            train_step(model, optimizer, loss_fn, mb, device=dev, amp=amp, grad_clip=cfg.train.grad_clip)  # AdamW state
            optimizer.zero_grad(set_to_none=True)
            with LiveBytes() as live:
                train_step(model, optimizer, loss_fn, mb, device=dev, amp=amp, grad_clip=cfg.train.grad_clip)
            optimizer.zero_grad(set_to_none=True)
            peak = max(peak, live.peak)
        over = GPU_OVER_COUNT_CHECKPOINTED if cfg.model.checkpointing else GPU_OVER_COUNT
        points.append(Point(b, h, w, float(fixed + inputs + peak * over)))
    return points


def time_cpu(cfg: RunConfig, shape: tuple[int, int, int] = (1, 32, 512), *, epochs: int, repeats: int = 3) -> Point:
    """Seconds per real micro-step on this CPU at a small shape (the precision a CPU run uses)."""
    dev = torch.device("cpu")
    amp = "bf16" if cfg.train.amp == "bf16" else "off"  # what autocast_for gives a CPU run
    model, optimizer = build_step(cfg, dev, channels_last=False)
    b, h, w = shape
    mb = synthetic_batch(b, h, w, cfg.train.num_classes, device=dev, channels_last=False)
    seconds = 0.0
    for loss_fn, weight in loss_weights(cfg, epochs):
        train_step(model, optimizer, loss_fn, mb, device=dev, amp=amp, grad_clip=cfg.train.grad_clip)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            train_step(model, optimizer, loss_fn, mb, device=dev, amp=amp, grad_clip=cfg.train.grad_clip)
        seconds += weight * (time.perf_counter() - t0) / repeats
    return Point(b, h, w, 0.0, seconds)


def cuda_name(device: str = "cuda") -> str:
    with contextlib.suppress(Exception):
        return torch.cuda.get_device_name(torch.device(device))
    return "cuda"


def gpu_grid(h_min: int, h_max: int, w_max: int, multiple: int = 32) -> tuple[list[tuple[int, int, int]], tuple[int, int, int]]:
    """Measurement shapes from the manifest's padded extremes, and the held-out check.

    The fit points stay at or below half the widest log (so they also fit small
    cards), vary batch, height and width, and the held-out point is the shape the
    plan hinges on: one widest, tallest log, predicted by extrapolation.
    """
    def snap(v: float) -> int:
        return max(multiple, int(v) // multiple * multiple)

    w4, w2 = snap(w_max / 4), snap(w_max / 2)
    grid = [(1, h_max, w4), (1, h_max, w2), (2, h_max, w4), (2, h_min, w2), (4, h_max, w4)]
    return list(dict.fromkeys(grid)), (1, h_max, w_max)
