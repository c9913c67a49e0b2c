"""From a memory line, a time line, the manifest's shapes and the tiers to a plan: pure arithmetic.

Per tier:
- physical batch: the largest batch whose predicted peak, at the widest and
  tallest padded log of the manifest, fits the card's usable memory (the card
  minus `headroom` for the CUDA context and allocator slack); then lowered to the
  smallest batch that needs the same number of accumulation steps, so
  physical x accumulation x workers lands on the effective batch;
- padding with and without width bucketing (`plan_batches`, the trainer's own);
- epoch wall clock: the sum of predicted micro-step times over the bucketed
  micro-batches of the split (one epoch = one pass over it, as `epoch_seconds`
  in the training metrics), divided over the workers (ideal scaling);
- money: run hours x eur_month / hours_per_month x workers, per run and per N
  retrains, and how many full retrains fit in a day.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from veernet_ray.data.buckets import MULTIPLE, accumulation_steps, batch_padding, plan_batches, plan_padding
from veernet_ray.data.collate import round_up
from veernet_ray.plan.fit import GIB, MemoryFit, StepTime, given_throughput
from veernet_ray.plan.planfile import PLAN_VERSION, SCHEMA  # the plan file's format and its reader live there
from veernet_ray.plan.tiers import Tier


class PlanError(ValueError):
    """Input the planner cannot plan for; the message says what would work instead."""


# ------------------------------------------------------------------ manifest
def manifest_shapes(path: str | Path, split: str = "train", *, multiple: int = MULTIPLE
                    ) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """(height, width) of every log in `split` ("all" = every row), and manifest statistics.

    `multiple` is the model's padding multiple (`cfg.model.multiple`) for the padded figures.

    Reads only the `width`, `height` (and, if present, `split`) columns: planning
    never decodes pixels, so any parquet with those columns can be planned for.
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "manifest.parquet"
    if not path.is_file():
        raise PlanError(f"manifest {path} not found; generate one with `veernet synth DIR` "
                        "and pass DIR/manifest.parquet")
    try:
        df = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:
        raise PlanError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in ("width", "height") if c not in df.columns]
    if missing:
        raise PlanError(f"{path}: missing column(s) {missing}; planning needs each log's 'width' and 'height' in pixels")
    splits = sorted(df["split"].dropna().astype(str).unique().tolist()) if "split" in df.columns else []
    if split != "all" and "split" in df.columns:
        df = df[df["split"] == split]
    if df.empty:
        where = f" in split {split!r} (splits present: {splits or 'none'}; try --split all)" if splits else ""
        raise PlanError(f"{path}: the manifest has no logs{where}; nothing to plan. "
                        "Generate data with `veernet synth DIR --n 200` or point --manifest at a filled one")
    w = pd.to_numeric(df["width"], errors="coerce")
    h = pd.to_numeric(df["height"], errors="coerce")
    if w.isna().any() or h.isna().any() or (w <= 0).any() or (h <= 0).any():
        raise PlanError(f"{path}: 'width' and 'height' must be positive integers on every row")
    shapes = list(zip(h.astype(int).tolist(), w.astype(int).tolist()))
    return shapes, manifest_stats(shapes, path=str(path), split=split if "split" in df.columns else "all",
                                  multiple=multiple)


def manifest_stats(shapes: Sequence[tuple[int, int]], *, path: str = "", split: str = "all",
                   multiple: int = MULTIPLE) -> dict[str, Any]:
    hs = np.array([s[0] for s in shapes])
    ws = np.array([s[1] for s in shapes])
    counts, edges = np.histogram(ws, bins=min(10, max(1, len(set(ws.tolist())))))
    return {
        "path": path,
        "split": split,
        "logs": len(shapes),
        "megapixels": float((hs * ws).sum() / 1e6),
        "height": {"min": int(hs.min()), "median": float(np.median(hs)), "max": int(hs.max())},
        "width": {"min": int(ws.min()), "median": float(np.median(ws)), "max": int(ws.max())},
        "widest_padded": {"height": round_up(int(hs.max()), multiple), "width": round_up(int(ws.max()), multiple)},
        "width_histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


# ------------------------------------------------------------------ per tier
def choose_batch(max_fit: int, effective_batch: int, workers: int) -> tuple[int, int]:
    """(physical batch, accumulation steps): the fewest accumulation steps the card allows, and
    the smallest physical batch that still needs only that many (so the effective batch is met, not overshot)."""
    fit = min(max_fit, effective_batch)
    accum = accumulation_steps(effective_batch, fit, workers)
    return math.ceil(effective_batch / (accum * workers)), accum


def epoch_seconds(shapes: Sequence[tuple[int, int]], physical_batch: int, step: StepTime, *, workers: int = 1,
                  max_padding: float = 0.03, multiple: int = MULTIPLE) -> float:
    """Predicted wall clock of one pass over `shapes` in the trainer's bucketed micro-batches."""
    batches = plan_batches(shapes, physical_batch, multiple=multiple, max_padding=max_padding)
    total = sum(step.seconds(batch_padding([shapes[i] for i in b], multiple).computed_px) for b in batches)
    return total / workers


def padding_figures(shapes: Sequence[tuple[int, int]], physical_batch: int, *, max_padding: float = 0.03,
                    multiple: int = MULTIPLE, seed: int = 0) -> dict[str, float]:
    """Padding fractions of the computed pixels, with width bucketing and with random batches."""
    out = {}
    for label, bucketed in (("bucketed", True), ("random", False)):
        batches = plan_batches(shapes, physical_batch, multiple=multiple, bucketed=bucketed,
                               max_padding=max_padding, seed=seed)
        stats = plan_padding(shapes, batches, multiple)
        out[f"padding_{label}"] = stats.padding
        out[f"batching_padding_{label}"] = stats.bucket_padding
    return out


def tier_plan(tier: Tier, shapes: Sequence[tuple[int, int]], mem: MemoryFit, step: StepTime, *,
              effective_batch: int, epochs: int, retrains: int, workers: int = 1, headroom: float = 0.1,
              max_padding: float = 0.03, multiple: int = MULTIPLE) -> dict[str, Any]:
    """Every figure of one tier; `fits` is False when not even batch 1 of the widest log fits."""
    hp = round_up(max(h for h, _ in shapes), multiple)
    wp = round_up(max(w for _, w in shapes), multiple)
    usable = tier.mem_bytes * (1.0 - headroom)
    max_fit = mem.max_batch(hp, wp, usable)
    row: dict[str, Any] = {
        "name": tier.name,
        "gpu_mem_gib": tier.gpu_mem_gb,
        "usable_gib": usable / GIB,
        "eur_month": tier.eur_month,
        "hours_per_month": tier.hours_per_month,
        "eur_hour": tier.eur_hour,
        "max_batch_fits": max_fit,
        "peak_gib_batch1": mem.predict(1, hp, wp) / GIB,
        "fits": max_fit >= 1,
    }
    if max_fit < 1:
        row["max_width_batch1"] = mem.max_width(hp, usable, 1, multiple)
        return row
    if tier.throughput_mpx_s is not None and step.basis != "given":
        step = given_throughput(tier.throughput_mpx_s, f"tiers.yaml ({tier.name})")
    physical, accum = choose_batch(max_fit, effective_batch, workers)
    epoch_s = epoch_seconds(shapes, physical, step, workers=workers, max_padding=max_padding, multiple=multiple)
    run_h = epoch_s * epochs / 3600.0
    eur_run = run_h * tier.eur_hour * workers
    row.update({
        "physical_batch": physical,
        "accumulation_steps": accum,
        "effective_batch": physical * accum * workers,
        "peak_gib": mem.predict(physical, hp, wp) / GIB,
        **padding_figures(shapes, physical, max_padding=max_padding, multiple=multiple),
        "throughput_mpx_s": step.mpx_per_s,
        "throughput_basis": step.basis,
        "epoch_s": epoch_s,
        "run_h": run_h,
        "eur_per_run": eur_run,
        "eur_per_retrains": eur_run * retrains,
        "retrains_per_day": 24.0 / run_h if run_h > 0 else float("inf"),
    })
    return row


def too_small_message(row: dict[str, Any], mem: MemoryFit, *, hp: int, wp: int, amp: str, checkpointing: bool,
                      headroom: float) -> str:
    """Why the card cannot train even one widest log, and what would fit."""
    need = row["peak_gib_batch1"]
    lines = [
        f"tier {row['name']!r} ({row['gpu_mem_gib']:g} GiB, {row['usable_gib']:.3g} GiB usable after "
        f"{headroom:.0%} headroom) is too small for batch 1 of the widest log ({hp} x {wp} px padded): "
        f"predicted peak {need:.1f} GiB ({mem.basis}).",
        "What would fit:",
    ]
    if amp == "off":
        lines.append("  - bf16 mixed precision (--set train.amp=auto): activations in half the bytes")
    if not checkpointing:
        lines.append("  - activation checkpointing (--set model.checkpointing=true): encoder activations are "
                     "recomputed in backward, about 30% more compute for a much smaller peak")
    tile = row.get("max_width_batch1", 0)
    if tile >= 32:
        lines.append(f"  - tiling: crops up to {tile} px wide (at {hp} px tall, batch 1) fit this card; "
                     f"tile the logs wider than that with some overlap")
    lines.append(f"  - a card with at least {need / (1 - headroom):.1f} GiB (--gpu-mem)")
    return "\n".join(lines)


# ------------------------------------------------------------------ the plan
def make_plan(shapes: Sequence[tuple[int, int]], mem: MemoryFit, step: StepTime, tiers: Sequence[Tier], *,
              tier: str | None = None, effective_batch: int = 16, epochs: int = 50, retrains: int = 10,
              workers: int = 1, headroom: float = 0.1, max_padding: float = 0.03, amp: str = "bf16",
              checkpointing: bool = False, multiple: int = MULTIPLE, manifest: dict[str, Any] | None = None,
              model: dict[str, Any] | None = None, basis: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan as a JSON-ready dict; raises PlanError when the chosen card (or every card) is too small.

    tier: the tier whose physical batch and accumulation go to the top level
    (None: the cheapest per run among those that fit).
    """
    if not shapes:
        raise PlanError("no logs to plan for: the manifest (split) is empty")
    if effective_batch < 1 or epochs < 1 or retrains < 0 or workers < 1:
        raise PlanError("effective batch, epochs and workers must be >= 1 and retrains >= 0")
    if not 0 <= headroom < 1:
        raise PlanError(f"headroom must be in [0, 1), got {headroom}")
    hp = round_up(max(h for h, _ in shapes), multiple)
    wp = round_up(max(w for _, w in shapes), multiple)
    rows = [tier_plan(t, shapes, mem, step, effective_batch=effective_batch, epochs=epochs, retrains=retrains,
                      workers=workers, headroom=headroom, max_padding=max_padding, multiple=multiple) for t in tiers]
    fitting = [r for r in rows if r["fits"]]
    if tier is not None:
        chosen = next((r for r in rows if r["name"] == tier), None)
        if chosen is None:
            raise PlanError(f"unknown tier {tier!r}; valid tiers: {', '.join(r['name'] for r in rows)}")
        chosen_by = "--tier"
    elif len(rows) == 1:
        chosen, chosen_by = rows[0], "the only card"
    else:
        chosen = min(fitting, key=lambda r: r["eur_per_run"]) if fitting else rows[0]
        chosen_by = "cheapest per run among the tiers that fit"
    if not chosen["fits"]:
        msg = too_small_message(chosen, mem, hp=hp, wp=wp, amp=amp, checkpointing=checkpointing, headroom=headroom)
        if tier is None and len(rows) > 1:
            msg = "no tier fits batch 1 of the widest log.\n" + msg
        raise PlanError(msg)
    return {
        "schema": SCHEMA,
        "version": PLAN_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tier": chosen["name"],
        "chosen_by": chosen_by,
        "physical_batch": chosen["physical_batch"],
        "accumulation_steps": chosen["accumulation_steps"],
        "effective_batch": chosen["effective_batch"],
        "num_workers": workers,
        "epochs": epochs,
        "retrains": retrains,
        "amp": amp,
        "headroom": headroom,
        "max_padding": max_padding,
        "basis": basis or {"memory": mem.basis, "throughput": step.basis},
        "memory_fit": mem.to_dict(),
        "throughput": step.to_dict(),
        "model": model or {},
        "manifest": manifest or manifest_stats(shapes, multiple=multiple),
        "tiers": rows,
        **(extra or {}),
    }
