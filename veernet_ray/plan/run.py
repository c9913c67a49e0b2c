"""`run_plan`: manifest + run config + tiers -> plan.json and plan.png. The API behind `veernet plan`.

On a GPU the memory line and the throughput are measured (real steps on the
current card); without one the memory line is an activation-accounting estimate
and the throughput is this CPU's, and plan.json's "basis" says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from veernet_ray.config import RunConfig
from veernet_ray.data.collate import round_up
from veernet_ray.plan.fit import MemoryFit, StepTime, fit_memory, fit_step_time, given_throughput
from veernet_ray.plan.planner import PlanError, make_plan, manifest_shapes
from veernet_ray.plan.tiers import Tier


def measure_lines(cfg: RunConfig, shapes: list[tuple[int, int]], *, device: str, epochs: int, quick: bool = False,
                  log: Callable[[str], None] = print) -> tuple[MemoryFit, StepTime, dict[str, Any], dict | None]:
    """(memory fit, step time, basis, held-out check) for this config on `device` ("cuda" or "cpu").

    quick: on the CPU, the fewest shapes and one timed step (smoke tests); the GPU grid is unchanged.
    """
    import torch

    from veernet_ray.plan import measure

    m = cfg.model.multiple  # every measured shape is one the model accepts: multiples of 2**len(widths)
    hp = round_up(max(h for h, _ in shapes), m)
    hmin = round_up(min(h for h, _ in shapes), m)
    wp = round_up(max(w for _, w in shapes), m)
    amp = measure.gpu_amp(cfg)
    if device.startswith("cuda"):
        name = measure.cuda_name(device)
        grid, held = measure.gpu_grid(hmin, hp, wp, multiple=m)
        log(f"[plan] measuring {len(grid)} shapes + 1 held out on {name} (amp {amp}) ...")
        points, skipped = measure.measure_gpu(cfg, grid + [held], epochs=epochs, device=device, log=log)
        held_pt = next((p for p in points if (p.batch, p.height, p.width) == held), None)
        fit_pts = [p for p in points if p is not held_pt]
        if len(fit_pts) < 2:
            raise PlanError(f"{name} ran out of memory at the measurement shapes {skipped} (up to half the widest "
                            f"log, {hp} x {wp // 2} px): measure on a larger GPU, or lighten the model "
                            "(--set model.checkpointing=true, train.amp=bf16), or plan with --device cpu for an estimate")
        mem = fit_memory(fit_pts, "measured")
        step = fit_step_time(fit_pts, "measured", name)
        holdout = None
        if held_pt is not None:
            pred = mem.predict(*held)
            holdout = {"batch": held[0], "height": held[1], "width": held[2], "measured_bytes": held_pt.peak_bytes,
                       "predicted_bytes": pred, "rel_error": pred / held_pt.peak_bytes - 1.0,
                       "within_10pct": abs(pred / held_pt.peak_bytes - 1.0) <= 0.10}
        basis = {
            "memory": "measured",
            "memory_detail": f"torch.cuda.max_memory_allocated around real AdamW steps on {name}, "
                             f"{len(fit_pts)} shapes, max fit residual {mem.max_residual:.1%}",
            "throughput": "measured",
            "throughput_detail": f"{step.mpx_per_s:.1f} Mpx/s + {step.overhead_s * 1e3:.0f} ms per micro-step on {name}",
            "device": name,
            "notes": [f"skipped (out of memory): {skipped}"] if skipped else [],
        }
        return mem, step, basis, holdout

    log(f"[plan] no GPU: estimating memory by activation accounting on the CPU (amp {amp}) ...")
    u = max(1, m // 32)  # small shapes in units of 32 px, scaled up for deeper encoders
    estimate_shapes = tuple((b, h * u, w * u) for b, h, w in (
        ((1, 32, 256), (2, 32, 256)) if quick else ((1, 32, 256), (2, 32, 256), (1, 64, 256), (1, 32, 512))))
    mem = fit_memory(measure.estimate_cpu(cfg, estimate_shapes, epochs=epochs), "estimate")
    log("[plan] timing a real training step on the CPU ...")
    # A CPU step at a demo-sized crop of the widest log (at most 128 x 1,024 px: seconds, not minutes).
    shape = (1, 32 * u, 256 * u) if quick else (1, max(m, min(hp, 128) // m * m), max(m, min(wp, 1024) // m * m))
    step = fit_step_time([measure.time_cpu(cfg, shape, epochs=epochs, repeats=1 if quick else 3)], "cpu-measured", "cpu")
    basis = {
        "memory": "estimate",
        "memory_detail": f"saved-for-backward tensors of real steps at small shapes on the CPU, bf16={amp == 'bf16'}, "
                         f"+ backward transient + 16 B/param; not a GPU measurement",
        "throughput": "cpu-measured",
        "throughput_detail": f"{step.mpx_per_s:.3f} Mpx/s at {shape[0]} x {shape[1]} x {shape[2]}: this CPU, not a GPU",
        "device": "cpu",
        "notes": ["epoch times and euros use this CPU's speed: the GPU throughput is unknown until "
                  "`veernet plan` runs on a GPU or --throughput MPX_PER_S gives a card figure",
                  "memory is an estimate (no GPU here); run `veernet plan` on the GPU to measure it"],
    }
    return mem, step, basis, None


def run_plan(cfg: RunConfig, manifest: str | Path, tiers: list[Tier], *, out: str | Path, tier: str | None = None,
             epochs: int = 50, retrains: int = 10, effective_batch: int | None = None, workers: int = 1,
             throughput: float | None = None, device: str = "auto", headroom: float = 0.1, split: str = "train",
             figure: bool = True, quick: bool = False, log: Callable[[str], None] = print,
             lines: tuple[MemoryFit, StepTime, dict[str, Any], dict | None] | None = None) -> dict[str, Any]:
    """Plan training of `cfg`'s model on `manifest` for each tier; write out/plan.json (+ plan.png).

    quick: the smoke-test measurement (fewest CPU shapes; recorded in plan.json as "smoke_test").
    lines: precomputed (memory fit, step time, basis, holdout), to skip measuring (tests).
    Raises PlanError with what would fit when the input cannot be planned.
    """
    import torch

    from veernet_ray.model import VeerNet, count_parameters, model_config

    shapes, stats = manifest_shapes(manifest, split, multiple=cfg.model.multiple)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if lines is None:
        lines = measure_lines(cfg, shapes, device=device, epochs=epochs, quick=quick, log=log)
    mem, step, basis, holdout = lines
    basis = {**basis, "notes": list(basis.get("notes", []))}
    if throughput is not None:
        step = given_throughput(throughput, "--throughput")
        basis.update(throughput="given", throughput_detail=f"{throughput:g} Mpx/s given with --throughput")
        basis["notes"] = [n for n in basis["notes"] if not n.startswith("epoch times and euros use this CPU")]
    if any(t.throughput_mpx_s for t in tiers) and throughput is None:
        basis["notes"].append("tiers with throughput_mpx_s in the tiers file use that figure (basis 'given')")
    if mem.max_residual > 0.05:
        basis["notes"].append(f"the memory line misses a point by {mem.max_residual:.1%}: treat predictions with care")
    from veernet_ray.model.info import layer_table

    mcfg = model_config(cfg)
    model = VeerNet(mcfg)
    hp, wp = stats["widest_padded"]["height"], stats["widest_padded"]["width"]
    _, leaf_elements = layer_table(model, hp, wp)  # meta device: free at any size
    model_info = {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in mcfg.__dict__.items()},
                  "parameters": count_parameters(model),
                  # `veernet model-info`'s rough figure, for comparison with memory_fit.per_pixel_bytes
                  "leaf_output_bytes_per_pixel_fp32": 4.0 * leaf_elements / (hp * wp)}
    plan = make_plan(
        shapes, mem, step, tiers, tier=tier, effective_batch=effective_batch or cfg.train.effective_batch,
        epochs=epochs, retrains=retrains, workers=workers, headroom=headroom, max_padding=cfg.data.max_padding,
        amp="bf16" if cfg.train.amp != "off" else "off", checkpointing=cfg.model.checkpointing,
        multiple=cfg.model.multiple, manifest=stats, model=model_info, basis=basis,
        extra={"holdout": holdout, "loss": cfg.train.loss, "smoke_test": quick, "config": cfg.to_dict()},
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    if figure:
        from veernet_ray.plan.report import write_figure

        write_figure(plan, mem, out / "plan.png")
    return plan


__all__ = ["run_plan", "measure_lines", "PlanError"]
