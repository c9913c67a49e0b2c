"""Run real training steps of the configured VeerNet and record memory and time.

Every figure here comes from the trainer's own step: `accumulate_gradients`
(the real loss, bf16 autocast when the run uses it, the float32 loss cast),
gradient clipping and `AdamW.step()`, on a synthetic batch of the requested
(batch, height, width). Nothing is decoded: planning needs shapes, not pixels.

- `measure_gpu`: peak memory from `torch.cuda.max_memory_allocated` (reset
  before each point, after a warm-up step that creates AdamW's state) and the
  wall clock of each micro-step. Basis "measured".
- `estimate_cpu`: on a machine with no GPU, activation accounting of the same
  step: the bytes of every distinct storage autograd saves for backward
  (`saved_tensors_hooks`), plus a transient allowance for backward, plus 16
  bytes per parameter. Basis "estimate", never "measured".
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
# Backward allocates gradients for the activations it is about to free; at its
# start (the peak) these are the loss's and the last decoder stage's, each about
# the size of the largest saved tensor. Two of them is the allowance.
TRANSIENT_LARGEST = 2.0


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


class _StopBeforeBackward(Exception):
    """Raised by `_ForwardOnly` once the loss is computed: all saved tensors exist by then."""


class _ForwardOnly:
    """The real loss, then a stop: autograd saves tensors only in forward, so the step's backward
    (slow on a CPU, especially in bf16) adds nothing to the accounting and is skipped."""

    def __init__(self, loss_fn: SegLoss) -> None:
        self.loss_fn, self.unit = loss_fn, loss_fn.unit

    def __call__(self, *args, **kwargs):
        self.loss_fn(*args, **kwargs)
        raise _StopBeforeBackward


def saved_bytes(model, loss_fn, mb, *, device, amp: str) -> float:
    """Bytes autograd keeps for backward in the forward of one real step (`accumulate_gradients`):
    distinct non-parameter storages, plus the backward transient, plus inputs nothing saved."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), contextlib.suppress(_StopBeforeBackward):
        accumulate_gradients(model, _ForwardOnly(loss_fn), [mb], device=device, amp=amp)
    inputs = sum(t.untyped_storage().nbytes() for k, t in mb.items()
                 if k in ("image", "mask", "valid") and t.untyped_storage().data_ptr() not in storages)
    return sum(storages.values()) + TRANSIENT_LARGEST * max(storages.values(), default=0) + inputs


def estimate_cpu(cfg: RunConfig, shapes: Sequence[tuple[int, int, int]] = ((1, 32, 256), (2, 32, 256), (1, 64, 256), (1, 32, 512)), *,
                 epochs: int) -> list[Point]:
    """Estimated GPU peak memory at each shape from activation accounting of the real step on this CPU.

    Runs at the GPU run's precision (bf16 autocast on the CPU for amp "auto"/"bf16"),
    so the saved tensors have the dtypes a GPU run would give them. Keep shapes
    small: bf16 on a CPU is slow, and activations are linear in pixels anyway
    (the points differ in batch, height and width so the fit's residuals test that).
    """
    dev = torch.device("cpu")
    amp = gpu_amp(cfg)
    model, _ = build_step(cfg, dev, channels_last=False)
    fixed = STATE_BYTES_PER_PARAM * count_parameters(model)
    losses = [loss for loss, _ in loss_weights(cfg, epochs)]
    points = []
    for b, h, w in shapes:
        mb = synthetic_batch(b, h, w, cfg.train.num_classes, device=dev, channels_last=False)
        act = max(saved_bytes(model, loss_fn, mb, device=dev, amp=amp) for loss_fn in losses)
        points.append(Point(b, h, w, float(fixed + act)))
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
