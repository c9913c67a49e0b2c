"""What a trial costs on a tier, and which physical batch a tier's memory ceiling allows.

A tier (`configs/tiers.yaml`, loaded by the planner's `load_tiers`) is a GPU
memory ceiling and a monthly price. A trial is priced as

    euros = wall-clock hours x eur_month / hours_per_month   (730 h: a month rented around the clock)

On a GPU the trial runs under its tier's ceiling (`scale.gpu_memory_gb`, which the
training loop enforces with `torch.cuda.set_per_process_memory_fraction`) at the
physical batch that ceiling allows, and its wall clock is priced at that tier's
rate only. On a CPU (smoke mode) one run is priced at every tier's rate: cost
arithmetic on the CPU's wall clock, labelled so wherever it is shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from veernet_ray.plan.tiers import Tier, TierError, load_tiers

__all__ = ["Tier", "TierError", "load_tiers", "pick_tiers", "euros", "TierBatch", "tier_batches",
           "FALLBACK_PHYSICAL_BATCH", "CPU_BASIS"]

# The label every CPU-priced figure carries: the tiers' rates times the CPU's wall clock.
CPU_BASIS = "cpu wall clock x tier rate (cost arithmetic only)"

# Physical batch per tier at seed-size logs (640 px tall, up to ~12,800 px wide, bf16), used when no
# plan file from `veernet plan` is given: a fixed table until the planner's measurement is wired in
# for every sweep. 24 GiB -> 4 and 80 GiB -> 16 are one widest seed log per ~5 GiB; a tier the table
# does not name gets the same ratio, clamped to [1, 16] (16 = the effective batch: never more).
FALLBACK_PHYSICAL_BATCH = {"high-end": 4, "advanced": 16}
_GIB_PER_LOG = 5.0
EFFECTIVE_BATCH = 16  # the whitepaper's multiclass effective batch; accumulation makes up the rest


def euros(wall_seconds: float, tier: Tier) -> float:
    """Euros of renting `tier` for `wall_seconds` (hourly rate = eur_month / hours_per_month)."""
    return wall_seconds / 3600.0 * tier.eur_hour


def pick_tiers(tiers: Sequence[Tier], names: Sequence[str] | None) -> list[Tier]:
    """The named tiers in the given order (None/empty: all); an unknown name lists the valid ones."""
    if not names:
        return list(tiers)
    by_name = {t.name: t for t in tiers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise TierError(f"unknown tier(s) {unknown}; valid tiers: {', '.join(by_name)} (add yours to the tiers file)")
    return [by_name[n] for n in names]


@dataclass(frozen=True)
class TierBatch:
    """The physical batch a tier runs at and where the number came from."""

    tier: str
    physical_batch: int
    source: str  # "plan <path>", "fallback table", "config (cpu)"
    fits: bool = True


def _fallback(tier: Tier) -> int:
    if tier.name in FALLBACK_PHYSICAL_BATCH:
        return FALLBACK_PHYSICAL_BATCH[tier.name]
    return max(1, min(EFFECTIVE_BATCH, int(tier.gpu_mem_gb / _GIB_PER_LOG)))


def tier_batches(tiers: Sequence[Tier], *, on_gpu: bool, config_batch: int,
                 plan: str | Path | None = None) -> dict[str, TierBatch]:
    """Physical batch per tier.

    CPU: the config's batch for every tier (the tiers only price the run).
    GPU with `plan` (plan.json from `veernet plan`, which measured this model):
    each tier's row of the plan; a tier the plan says cannot fit batch 1 is marked
    `fits=False` and skipped by the sweep. GPU without a plan: the fallback table.
    """
    if not on_gpu:
        return {t.name: TierBatch(t.name, config_batch, "config (cpu)") for t in tiers}
    if plan is None:
        return {t.name: TierBatch(t.name, _fallback(t), "fallback table") for t in tiers}
    path = Path(plan)
    try:
        rows = {r["name"]: r for r in json.loads(path.read_text())["tiers"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TierError(f"{path}: not a plan file from `veernet plan` ({type(exc).__name__}: {exc})") from exc
    out = {}
    for t in tiers:
        row: dict[str, Any] | None = rows.get(t.name)
        if row is None:
            raise TierError(f"{path} has no row for tier {t.name!r} (it has {sorted(rows)}); "
                            "re-run `veernet plan` with the same tiers file")
        fits = bool(row.get("fits", True))
        out[t.name] = TierBatch(t.name, int(row["physical_batch"]) if fits else 0, f"plan {path}", fits)
    return out
