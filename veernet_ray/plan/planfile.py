"""The plan file: `plan.json` as `veernet plan` writes it, read back as a typed `Plan`.

`veernet plan` writes the file (`planner.make_plan`); training (`train.plan=`) and the
tuning sweeps only read it, through `load_plan`. Without a plan file a sweep on a GPU
uses `fallback_plan`, the fixed per-tier table below: there is one place for the
physical batch per tier whichever way it was decided. Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from veernet_ray.plan.tiers import Tier

__all__ = ["PLAN_VERSION", "SCHEMA", "Plan", "TierBatch", "PlanFileError", "load_plan", "fallback_plan",
           "FALLBACK_PHYSICAL_BATCH"]

PLAN_VERSION = 1
SCHEMA = f"veernet-plan/{PLAN_VERSION}"

# Physical batch per tier at seed-size logs (640 px tall, up to ~12,800 px wide, bf16), used when no
# plan file from `veernet plan` is given. 24 GiB -> 4 and 80 GiB -> 16 are one widest seed log per
# ~5 GiB; a tier the table does not name gets the same ratio, clamped to [1, effective batch].
FALLBACK_PHYSICAL_BATCH = {"high-end": 4, "advanced": 16}
_GIB_PER_LOG = 5.0


class PlanFileError(ValueError):
    """A plan file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class TierBatch:
    """One tier's row of a plan: its physical batch (0 when batch 1 does not fit)."""

    name: str
    physical_batch: int
    accumulation_steps: int | None = None
    fits: bool = True


@dataclass(frozen=True)
class Plan:
    """What training and tuning take from a plan.

    physical_batch / accumulation_steps: the chosen tier's (None in a plan holding tier rows only).
    num_workers: the worker count the accumulation was planned for.
    source: where the numbers came from ("plan <path>" or "fallback table"), for logs and MLflow.
    """

    version: int = PLAN_VERSION
    physical_batch: int | None = None
    accumulation_steps: int | None = None
    num_workers: int = 1
    tier: str | None = None
    tiers: dict[str, TierBatch] = field(default_factory=dict)
    source: str = ""

    def batch_for(self, num_workers: int) -> tuple[int, int | None]:
        """(physical batch, accumulation or None) for a run on `num_workers` workers.

        The plan's accumulation holds for the worker count it was planned for; for another
        count it is None and the caller recomputes it from the physical batch.
        """
        if self.physical_batch is None:
            raise PlanFileError(f"{self.source}: a plan file needs an integer 'physical_batch'")
        return self.physical_batch, self.accumulation_steps if num_workers == self.num_workers else None


def load_plan(path: str | Path) -> Plan:
    """Read `plan.json`; raises FileNotFoundError when it is missing, PlanFileError when it is not a plan."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"plan file {path} not found; make one with `veernet plan --manifest M`")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlanFileError(f"{path}: not a plan file from `veernet plan` ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise PlanFileError(f"{path}: not a plan file from `veernet plan` (the top level is not a mapping)")
    return _from_dict(data, f"plan {path}")


def fallback_plan(tiers: Sequence[Tier], effective_batch: int = 16) -> Plan:
    """The fixed table as a plan: each tier's physical batch when no plan file was made."""
    rows = {}
    for t in tiers:
        batch = FALLBACK_PHYSICAL_BATCH.get(t.name) or max(1, min(effective_batch, int(t.gpu_mem_gb / _GIB_PER_LOG)))
        rows[t.name] = TierBatch(t.name, batch)
    return Plan(tiers=rows, source="fallback table")


def _from_dict(data: dict[str, Any], source: str) -> Plan:
    schema = str(data.get("schema") or SCHEMA)
    try:
        version = int(data.get("version") or schema.rsplit("/", 1)[-1])
    except ValueError:
        version = -1
    if version != PLAN_VERSION:
        raise PlanFileError(f"{source}: plan version {data.get('version', schema)!r}, this code reads version "
                            f"{PLAN_VERSION}; re-run `veernet plan`")
    try:
        rows = {}
        for r in data.get("tiers") or []:
            fits = bool(r.get("fits", True))
            rows[str(r["name"])] = TierBatch(str(r["name"]), int(r["physical_batch"]) if fits else 0,
                                             _opt_int(r.get("accumulation_steps")) if fits else None, fits)
        return Plan(
            version=version,
            physical_batch=_opt_int(data.get("physical_batch")),
            accumulation_steps=_opt_int(data.get("accumulation_steps")) or None,
            num_workers=int(data.get("num_workers", 1)),
            tier=data.get("tier"),
            tiers=rows,
            source=source,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlanFileError(f"{source}: not a plan file from `veernet plan` ({type(exc).__name__}: {exc})") from exc


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
