"""The per-worker training loop: `train_func` calls `train_one_epoch` and `validate`.

Read top to bottom. Gradient accumulation, mixed precision and rank-0 logging
each live in one obvious place:
- accumulation: `train_one_epoch`, the three lines around `no_sync`;
- precision: `veernet_ray.device.autocast_for`;
- rank-0 side effects (checkpoint files with their overlays): `train_func`; MLflow
  gets each epoch from the controller once Ray has committed it
  (`veernet_ray.train.epochs`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist

from veernet_ray import tracking
from veernet_ray.config import from_dict
from veernet_ray.data.collate import to_tensors
from veernet_ray.data.pipeline import unwrap_row
from veernet_ray.device import autocast_for, peak_memory_gb
from veernet_ray.evaluate import score_curves, summarise, trace_positions
from veernet_ray.losses import loss_normalizer
from veernet_ray.losses.schedule import parse_schedule
from veernet_ray.metrics.segmentation import SegmentationMeter
from veernet_ray.model import VeerNet, model_config
from veernet_ray.model.checkpoint import OVERLAYS_DIR, load_payload, save_checkpoint
from veernet_ray.visual import truth_and_prediction, write_png


# ----------------------------------------------------------------- helpers
def lr_lambda(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to `min_ratio` of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def say(msg: str) -> None:
    """One console line from a worker. Ray Train patches `print` to also go through its
    logger, which shows each line twice on the driver; the process's own stdout, which
    Ray relays once, avoids that."""
    print(msg, file=sys.__stdout__, flush=True)


def world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    if world()[1] > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def grouped(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    group: list[dict] = []
    for row in rows:
        group.append(row)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


# ----------------------------------------------------------- the two steps
def accumulate_gradients(model, loss_fn, micro_batches: list[dict[str, torch.Tensor]], *, device, amp="off") -> float:
    """Forward/backward over micro-batches so the gradient is that of their union.

    The loss is averaged over the valid pixels (or images, for per-image
    losses) of the whole effective batch across all workers, not as a mean of
    per-micro-batch means: each micro-batch contributes its *sum* divided by
    the global count. DDP averages gradients over workers, hence `* world`.
    Gradient sync happens only on the last micro-step (`no_sync` before).
    Returns the loss value of the effective batch.
    """
    _, world_size = world()
    count = sum(loss_normalizer(loss_fn.unit, mb["valid"]).to(torch.float64) for mb in micro_batches)
    count = all_reduce_sum(torch.as_tensor(count, dtype=torch.float64, device=device).clone())
    total = 0.0
    for i, mb in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast_for(torch.device(device), amp):
                logits = model(mb["image"])
            if logits.dtype in (torch.bfloat16, torch.float16):
                logits = logits.float()  # losses in float32: sums over millions of pixels
            loss = loss_fn(logits, mb["mask"], mb["valid"], reduction="sum") / count.to(logits.dtype)
            (loss * world_size).backward()
        total += float(loss.detach())
    return total


def train_one_epoch(model, optimizer, scheduler, loss_fn, rows: Iterable[dict], *, accum: int, device, amp: str,
                    channels_last: bool, grad_clip: float, progress_every: float = 0.0,
                    total_steps: int | None = None) -> dict[str, float]:
    """One pass over this worker's shard; one optimiser step per `accum` micro-batches.

    progress_every: seconds between one-line progress reports (0 = none); rank 0 passes it
    so a long CPU epoch says how far it is.
    """
    model.train()
    losses, images, pixels, steps = [], 0, 0, 0
    t0 = last = time.perf_counter()
    for group in grouped(rows, accum):
        mbs = [to_tensors(r, device=device, channels_last=channels_last) for r in group]
        optimizer.zero_grad(set_to_none=True)
        losses.append(accumulate_gradients(model, loss_fn, mbs, device=device, amp=amp))
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        steps += 1
        images += sum(int(m["valid"].shape[0]) for m in mbs)
        pixels += sum(int(m["valid"].numel()) for m in mbs)
        if progress_every and time.perf_counter() - last >= progress_every:
            last = time.perf_counter()
            of = f"/{total_steps}" if total_steps else ""
            say(f"[veernet]   step {steps}{of}: loss {np.mean(losses[-20:]):.4f}, "
                f"{images / (last - t0):.2f} images/s")
    seconds = time.perf_counter() - t0
    stats = torch.tensor([float(np.sum(losses)), len(losses), images, pixels, seconds], dtype=torch.float64, device=device)
    stats = all_reduce_sum(stats)
    _, world_size = world()
    wall = float(stats[4]) / world_size
    return {
        "train_loss": float(stats[0] / max(stats[1], 1)),
        "train_steps": steps,
        "images_per_s": float(stats[2]) / max(wall, 1e-9),
        "megapixels_per_s": float(stats[3]) / 1e6 / max(wall, 1e-9),
        "epoch_seconds": wall,
        "lr": scheduler.get_last_lr()[0],
    }


@torch.inference_mode()
def validate(model, rows: Iterable[dict], *, num_classes: int, device, amp: str, channels_last: bool,
             overlays: int = 0, overlay_dir: Path | None = None) -> dict[str, float]:
    """Per-class mask metrics over valid pixels and traced-curve metrics against the truth LAS."""
    model.eval()
    meter = SegmentationMeter(num_classes)
    scores: list[dict[str, float]] = []
    drawn = 0
    for row in rows:
        t = to_tensors(row, device=device, channels_last=channels_last)
        with autocast_for(torch.device(device), amp):
            logits = model(t["image"])
        probs = torch.softmax(logits.float(), dim=1)
        meter.update(probs.argmax(1), t["mask"], t["valid"])
        if "truth" not in row:
            continue
        probs_np = probs.cpu().numpy()
        for b, (h, w) in enumerate(np.asarray(row["shape"])):
            p = probs_np[b, :, :h, :w]
            if num_classes == 2:  # binary stage: one "curve" class, graded against curve 1
                class_ids, truth, wraps = (1,), row["truth"][b, :1, :w], row["wrap_px"][b, :1]
            else:
                class_ids, truth, wraps = (1, 2), row["truth"][b, :, :w], row["wrap_px"][b]
            pred, _ = trace_positions(p, class_ids, tuple(float(x) for x in wraps))
            scores += score_curves(pred, truth)
            if overlay_dir is not None and drawn < overlays:
                write_overlay(overlay_dir / f"val_{drawn}.png", row["image"][b, :h, :w], p.argmax(0), row["mask"][b, :h, :w])
                drawn += 1
    out = {f"val_{k}": v for k, v in meter.compute().items()}
    out.update(summarise(scores, prefix="val_"))
    return out


def write_overlay(path: Path, image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> None:
    """Truth (top) and prediction (bottom) on the raster: curve 1 red, curve 2 blue."""
    write_png(path, truth_and_prediction(image, pred, truth))


# ----------------------------------------------------------- per worker
def train_func(config: dict[str, Any]) -> None:
    """Ray Train entry point, run by every worker."""
    # Ray only here: plan/ imports this module for the training step it measures, without Ray
    import ray.train
    import ray.train.torch

    cfg = from_dict(config["run"])
    tc = cfg.train
    rank = ray.train.get_context().get_world_rank()
    world_size = ray.train.get_context().get_world_size()
    torch.manual_seed(tc.seed + rank)
    np.random.seed(tc.seed + rank)
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    if not on_gpu:
        # Ray caps a worker's torch at int(num_cpus) threads; scale.torch_threads lets a laptop
        # reserve 1 CPU (leaving Ray Data a budget for decode tasks) yet compute on both cores.
        torch.set_num_threads(cfg.scale.torch_threads or max(1, math.floor(cfg.scale.cpus_per_worker)))
    channels_last = tc.channels_last == "on" or (tc.channels_last == "auto" and on_gpu)
    if on_gpu and cfg.scale.gpu_memory_gb:
        # a tier's memory ceiling on a bigger card: the allocator refuses to grow past it
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cfg.scale.gpu_memory_gb * 2**30 / total), device)
    run_dir = Path(config["run_dir"])
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    (run_dir / "pids" / f"rank{rank}.pid").write_text(str(os.getpid()))

    model = VeerNet(model_config(cfg))
    checkpoint = ray.train.get_checkpoint()
    state: dict[str, Any] = {}
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = load_payload(d)
        model.load_state_dict(state["model"])
    elif tc.init_from:
        loaded = model.load_backbone_from(load_payload(tc.init_from)["model"], everything=tc.init_scope == "all")
        if rank == 0:
            what = "backbone" if tc.init_scope == "backbone" else "matching"
            say(f"[veernet] stage start: loaded {len(loaded)} {what} tensors from {tc.init_from}")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = ray.train.torch.prepare_model(model)
    shapes = config.get("distinct_shapes")  # a shape grid: a small set of batch shapes known in advance
    if on_gpu and shapes:
        torch.backends.cudnn.benchmark = True  # autotune each grid shape once; every later step reuses it
    if tc.compile:
        if shapes:  # static shapes, one graph per grid shape, compiled when first seen and cached
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, shapes + 2)
            model = torch.compile(model, dynamic=False)
        else:
            model = torch.compile(model, dynamic=True)

    accum = config["accum"]
    steps_per_epoch = config["steps_per_epoch"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    total = steps_per_epoch * tc.epochs
    warmup = max(1, int(round(tc.warmup_epochs * steps_per_epoch)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, warmup=warmup, total=total, min_ratio=tc.min_lr_ratio)
    )
    start_epoch = 0
    history: list[dict[str, float]] = []
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        history = list(json.loads(state.get("history", "[]")))
        if rank == 0:
            say(f"[veernet] resumed from the checkpoint of epoch {start_epoch - 1}")

    schedule = parse_schedule(tc.loss, tc.epochs, tc.loss_params or None)
    if rank == 0:  # epochs the checkpoint holds that MLflow lacks; new epochs are logged by the controller
        tracking.EpochLogger(config.get("mlflow"), history)
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")

    for epoch in range(start_epoch, tc.epochs):
        # each worker's current epoch beside its pid: what an operator, or a fault test, reads
        (run_dir / "pids" / f"rank{rank}.epoch").write_text(str(epoch))
        loss_fn = schedule.loss_for_epoch(epoch)
        rows = _rows(train_shard, shuffle_buffer=cfg.data.shuffle_buffer, seed=tc.seed * 1_000_003 + epoch * 101 + rank)
        metrics = train_one_epoch(model, optimizer, scheduler, loss_fn, rows, accum=accum, device=device,
                                  amp=tc.amp, channels_last=channels_last, grad_clip=tc.grad_clip,
                                  progress_every=120.0 if rank == 0 else 0.0, total_steps=steps_per_epoch)
        metrics.update(epoch=epoch, loss_name=schedule.name_for_epoch(epoch), peak_memory_gb=peak_memory_gb(device))
        with tempfile.TemporaryDirectory() as tmp:
            if rank == 0:
                ckpt_dir = Path(tmp) / "ckpt"
                ckpt_dir.mkdir()
                metrics.update(validate(model, _rows(val_shard), num_classes=tc.num_classes, device=device, amp=tc.amp,
                                        channels_last=channels_last, overlays=tc.val_overlays,
                                        overlay_dir=ckpt_dir / OVERLAYS_DIR))
                history.append({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
                save_checkpoint(ckpt_dir, model=model, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                epoch=epoch, config=cfg.to_dict(), history=json.dumps(history))
                reported = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not _nan(v)}
                reported.setdefault(cfg.scale.checkpoint_metric, float("-inf"))
                # MLflow gets the epoch from the controller once every rank has reported (EpochsToMlflow)
                ray.train.report(reported, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir),
                                 checkpoint_dir_name=f"epoch_{epoch:04d}")
                say(f"[veernet] epoch {epoch + 1}/{tc.epochs} " + " ".join(
                    f"{k}={v:.4g}" for k, v in reported.items() if k in _PRINTED))
            else:
                _hold_report(rank, epoch)
                ray.train.report({}, checkpoint=None)


_PRINTED = ("train_loss", "val_miou_fg", "val_iou_1", "val_iou_2", "val_curve_r2_median", "val_curve_mae", "images_per_s")


#: a fault test's hook, "RANK:EPOCH:SECONDS": that rank (1 or above; rank 0 is never held) waits this long
#: before it reports that epoch. Ray commits an epoch's checkpoint once every rank has reported, so the
#: window between rank 0's checkpoint reaching storage and the commit stays open long enough for a kill
#: to land in it on a loaded machine (tests/test_train_job.py, the "commit" moment)
HOLD_REPORT_ENV = "VEERNET_TEST_HOLD_REPORT"


def _hold_report(rank: int, epoch: int) -> None:
    spec = os.environ.get(HOLD_REPORT_ENV, "")
    try:
        hold_rank, hold_epoch, seconds = spec.split(":")
        if (int(hold_rank), int(hold_epoch)) == (rank, epoch):
            time.sleep(float(seconds))
    except ValueError:  # unset or malformed: no hold
        return


def _nan(v: float) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _rows(shard, shuffle_buffer: int = 0, seed: int | None = None) -> Iterator[dict]:
    """Pre-collated micro-batches from a Ray Data shard, one at a time (optionally shuffled locally)."""
    kwargs: dict[str, Any] = {"batch_size": 1, "batch_format": "numpy"}
    if shuffle_buffer and shuffle_buffer > 1:
        kwargs.update(local_shuffle_buffer_size=shuffle_buffer, local_shuffle_seed=seed)
    for batch in shard.iter_batches(**kwargs):
        yield unwrap_row(batch)
