"""One Tune trial = one real training run (Ray 2.60 / Train V2 pattern).

Tune runs the *function* `train_trial`; it builds the trial's `RunConfig` from
the sweep's base config plus the trial's overrides and calls the ordinary
training driver (`run_training`), which fits a `TorchTrainer`. Epoch metrics
reach Tune through Train's `TuneReportCallback`; when the run ends the trial
reports once more with its wall clock and euros. Everything lands in the
trial's own MLflow run, a child of the sweep's parent run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from veernet_ray.config import RunConfig, from_dict
from veernet_ray.tune.pricing import CPU_BASIS, Tier, euros
from veernet_ray.tune.space import slug

# MLflow tags a sweep writes; `compare` reads them back.
TAG_SWEEP = "veernet.tune.sweep"
TAG_KIND = "veernet.tune.kind"
TAG_LABEL = "veernet.tune.label"
TAG_TIER = "veernet.tune.tier"
TAG_PRICED = "veernet.tune.priced_tiers"
TAG_BASIS = "veernet.tune.cost_basis"
TAG_STATUS = "veernet.tune.status"  # finished | early-stopped | failed
CPU_TIER = "cpu"  # the trial "tier" of a CPU sweep: one run priced at every tier's rate

# What every finished trial reports besides the epoch metrics.
SUMMARY_KEYS = ("wall_clock_s", "model_params")


@dataclass(frozen=True)
class SweepSpec:
    """Everything a trial needs that is the same for the whole sweep (shipped once via tune.with_parameters)."""

    name: str
    kind: str  # "losses" | "capacity"
    base: dict[str, Any]  # RunConfig.to_dict() with absolute storage, manifest and tracking URI
    parent_run_id: str
    variants: dict[str, dict[str, Any]]  # label -> dotted overrides
    tiers: dict[str, Tier]  # name -> tier (the trial's ceiling and/or its prices)
    batches: dict[str, int] = field(default_factory=dict)  # tier -> physical batch (GPU)
    gpu_fraction: dict[str, float] = field(default_factory=dict)  # tier -> GPU share per worker (GPU)
    on_gpu: bool = False
    effective_batch: int | None = None  # GPU: the whitepaper's 16; None keeps the config's


def trial_name(spec: SweepSpec, label: str, tier: str) -> str:
    return f"{spec.name}-{slug(label)}" + ("" if tier == CPU_TIER else f"-{tier}")


def trial_config(spec: SweepSpec, label: str, tier: str) -> RunConfig:
    """The trial's RunConfig: base + the variant's overrides + the tier's ceiling and batch."""
    if label not in spec.variants:
        raise KeyError(f"unknown variant {label!r}; this sweep's variants: {', '.join(spec.variants)}")
    overrides: dict[str, Any] = {
        **spec.variants[label],
        "name": trial_name(spec, label, tier),
        "tracking.parent_run_id": spec.parent_run_id,
    }
    if tier != CPU_TIER:
        overrides.update({
            "scale.use_gpu": True,
            "scale.gpu_memory_gb": spec.tiers[tier].gpu_mem_gb,
            "scale.gpus_per_worker": spec.gpu_fraction.get(tier, 1.0),
            "train.physical_batch": spec.batches[tier],
        })
        if spec.effective_batch:
            overrides["train.effective_batch"] = spec.effective_batch
    return from_dict(spec.base).with_overrides(overrides)


def priced_tiers(spec: SweepSpec, tier: str) -> list[Tier]:
    return list(spec.tiers.values()) if tier == CPU_TIER else [spec.tiers[tier]]


def cost_basis(spec: SweepSpec, tier: str) -> str:
    if tier == CPU_TIER:
        return CPU_BASIS
    share = spec.gpu_fraction.get(tier, 1.0)
    shared = f", sharing the GPU ({share:.2f} of it per worker: wall clock overstates a dedicated card)" if share < 1 else ""
    return f"gpu wall clock under the {spec.tiers[tier].gpu_mem_gb:g} GiB ceiling{shared}"


def summary_metrics(spec: SweepSpec, tier: str, wall_s: float, model_params: int | None = None) -> dict[str, float]:
    """wall_clock_s, eur_<tier> for every priced tier, and model_params when known."""
    out: dict[str, float] = {"wall_clock_s": float(wall_s)}
    out.update({f"eur_{t.name}": euros(wall_s, t) for t in priced_tiers(spec, tier)})
    if model_params is not None:
        out["model_params"] = float(model_params)
    return out


def child_tags(spec: SweepSpec, label: str, tier: str) -> dict[str, str]:
    return {
        TAG_SWEEP: spec.name,
        TAG_KIND: spec.kind,
        TAG_LABEL: label,
        TAG_TIER: tier,
        TAG_PRICED: ",".join(t.name for t in priced_tiers(spec, tier)),
        TAG_BASIS: cost_basis(spec, tier),
    }


def count_params(cfg: RunConfig) -> int:
    from veernet_ray.model import VeerNet, count_parameters, model_config

    return int(count_parameters(VeerNet(model_config(cfg))))


def train_trial(config: dict[str, Any], spec: SweepSpec) -> None:
    """Tune function trainable: config = {"label": variant, "tier": tier name or "cpu"}."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from veernet_ray import tracking
    from veernet_ray.train.driver import run_training

    label, tier = config["label"], config.get("tier", CPU_TIER)
    cfg = trial_config(spec, label, tier)
    uri = cfg.tracking.tracking_uri
    # Create the child run here with the sweep's tags; run_training finds it by name and logs into it.
    exp_id = tracking.ensure_experiment(uri, cfg.tracking.experiment, cfg.storage_path())
    run_id, _ = tracking.get_or_create_run(uri, exp_id, cfg.name, tags=child_tags(spec, label, tier),
                                           parent_run_id=spec.parent_run_id)
    params = count_params(cfg)
    tracking.log_metrics(uri, run_id, {"model_params": float(params)})

    start = time.monotonic()
    result = run_training(cfg, verbose=False, callbacks=[TuneReportCallback()])
    wall = time.monotonic() - start

    summary = summary_metrics(spec, tier, wall, params)
    tracking.log_metrics(uri, run_id, summary)
    tracking.set_tag(uri, run_id, TAG_STATUS, "finished")
    final = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float)) and k != "epoch"}
    tune.report({**final, **summary})  # one last report: the epoch metrics again, with the price
