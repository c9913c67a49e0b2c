"""Ray Tune sweeps that settle design questions on measured data, priced per GPU tier.

- `space`: the search spaces (loss ablation, encoder width x depth) as named
  sets of dotted `RunConfig` overrides;
- `pricing`: tiers (`configs/tiers.yaml`), euros per trial, each tier's physical batch;
- `trainable`: the Tune function trainable, one real training run per trial;
- `sweep`: parent MLflow run, `Tuner.fit()`, closing unfinished child runs;
- `compare`: ranked markdown table, quality-vs-euros PNG, one-line recommendation;
- `cli`: `veernet tune losses|capacity`; `compare.main`: `veernet compare`.

Nothing here imports Ray or torch at import time.
"""

from veernet_ray.tune.pricing import euros, tier_batches
from veernet_ray.tune.space import LOSS_SWEEP, capacity_variants, capacity_widths, loss_variants

__all__ = ["LOSS_SWEEP", "capacity_variants", "capacity_widths", "loss_variants", "euros", "tier_batches",
           "run_sweep", "compare_sweep"]


def __getattr__(name: str):
    # run_sweep and compare_sweep pull in Ray / MLflow / matplotlib; import them only when asked for.
    if name == "run_sweep":
        from veernet_ray.tune.sweep import run_sweep

        return run_sweep
    if name == "compare_sweep":
        from veernet_ray.tune.compare import compare_sweep

        return compare_sweep
    raise AttributeError(name)
