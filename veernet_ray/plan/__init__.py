"""Planning: measure (GPU) or estimate (CPU) the real model's memory and speed, then cost each GPU tier.

`run_plan` writes plan.json, which `veernet train` (`train.plan`: physical batch and
accumulation steps) and the sweeps read as a typed `Plan` (`planfile.load_plan`), and plan.png. The maths is pure and lives in
`fit` (lines through measurements) and `planner` (per-tier arithmetic); torch
runs only in `measure`.
"""

from veernet_ray.plan.fit import MemoryFit, Point, StepTime, fit_memory, fit_step_time
from veernet_ray.plan.planfile import Plan, PlanFileError, load_plan
from veernet_ray.plan.planner import PlanError, make_plan, manifest_shapes
from veernet_ray.plan.tiers import Tier, TierError, load_tiers

__all__ = ["MemoryFit", "Point", "StepTime", "fit_memory", "fit_step_time", "PlanError", "make_plan",
           "manifest_shapes", "Tier", "TierError", "load_tiers", "run_plan", "Plan", "PlanFileError", "load_plan"]


def __getattr__(name: str):
    # run_plan pulls in torch; import it only when asked for.
    if name == "run_plan":
        from veernet_ray.plan.run import run_plan

        return run_plan
    raise AttributeError(name)
