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

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from veernet_ray.plan.planfile import FALLBACK_PHYSICAL_BATCH, PlanFileError, fallback_plan, load_plan
from veernet_ray.plan.tiers import Tier, TierError, load_tiers

__all__ = ["Tier", "TierError", "load_tiers", "pick_tiers", "euros", "TierBatch", "tier_batches",
           "FALLBACK_PHYSICAL_BATCH", "CPU_BASIS"]

# The label every CPU-priced figure carries: the tiers' rates times the CPU's wall clock.
CPU_BASIS = "cpu wall clock x tier rate (cost arithmetic only)"

# The fixed physical batch per tier used without a plan file is `plan.planfile.FALLBACK_PHYSICAL_BATCH`
# (re-exported here), read through `fallback_plan`: one table, one reader.
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
    try:
        p = load_plan(plan) if plan is not None else fallback_plan(tiers, EFFECTIVE_BATCH)
    except (FileNotFoundError, PlanFileError) as exc:
        raise TierError(str(exc)) from exc
    out = {}
    for t in tiers:
        row = p.tiers.get(t.name)
        if row is None:
            raise TierError(f"{plan} has no row for tier {t.name!r} (it has {sorted(p.tiers)}); "
                            "re-run `veernet plan` with the same tiers file")
        out[t.name] = TierBatch(t.name, row.physical_batch, p.source, row.fits)
    return out
