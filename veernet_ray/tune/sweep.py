"""Run a sweep: one MLflow parent run, one Tune trial (and MLflow child run) per variant x tier.

Order of work, top to bottom:
1. resolve everything a trial must share (the manifest, generated once; the seed;
   absolute paths, since Tune runs trials in their own folders);
2. choose each tier's physical batch and GPU share;
3. open the parent run and log the search space;
4. `Tuner.fit()` over the grid, ASHA optional;
5. close the child runs that did not finish (stopped early or failed), pricing
   them by the wall clock Tune measured: a stopped trial still cost money;
6. compare: ranked table + PNG, logged on the parent run.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from veernet_ray.config import ConfigError, RunConfig
from veernet_ray.tune.pricing import CPU_BASIS, EFFECTIVE_BATCH, Tier, TierError, tier_batches
from veernet_ray.tune.trainable import (CPU_TIER, TAG_BASIS, TAG_KIND, TAG_STATUS, TAG_SWEEP, SweepSpec,
                                        summary_metrics, train_trial, trial_name)

DEFAULT_METRIC = "val_curve_r2_median"  # thin traces punish mask metrics; grade on the recovered curve
TRIAL_CPUS = 0.01  # the trial function only waits on its TorchTrainer, whose workers ask for their own CPUs/GPUs


@dataclass
class SweepResult:
    name: str
    experiment: str
    parent_run_id: str
    tracking_uri: str
    trials: int
    errors: int
    table: str
    figure: Path | None
    recommendation: str


def default_name(kind: str) -> str:
    # unique per launch: reusing a name resumes that sweep's runs (Train checkpoints, MLflow runs) instead
    return f"{kind}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def gpu_fractions(tiers: Sequence[Tier], card_gb: float | None, share: bool) -> dict[str, float]:
    """GPU share per worker: a tier's ceiling over the card's memory when sharing (3 x 24 GiB trials on 80 GiB), else 1."""
    if not share:
        return {t.name: 1.0 for t in tiers}
    if not card_gb:
        raise ConfigError("--share-gpu needs the card's memory: pass --card-gb (none could be read from CUDA here)")
    # floored to 1/100 so that k shares of one card never add up to more than 1 through rounding
    return {t.name: max(0.01, min(1.0, int(100 * t.gpu_mem_gb / card_gb) / 100)) for t in tiers}


def resolve_base(cfg: RunConfig, *, experiment: str, tracking_uri: str | None) -> RunConfig:
    """The config every trial starts from: absolute paths, a manifest made once, no model registration."""
    from veernet_ray import tracking
    from veernet_ray.data.manifest import resolve_manifest

    storage = cfg.storage_path()
    manifest = resolve_manifest(cfg)  # generates the configured data once, not once per trial
    return cfg.with_overrides({
        "storage": str(storage),
        "data.manifest": str(manifest),
        "tracking.experiment": experiment,
        "tracking.tracking_uri": tracking.resolve_tracking_uri(tracking_uri or cfg.tracking.tracking_uri, storage),
        "tracking.register_as": None,  # a sweep's models stay in their runs; only a chosen one is registered
    })


def run_sweep(cfg: RunConfig, variants: dict[str, dict[str, Any]], *, kind: str, tiers: Sequence[Tier],
              name: str | None = None, experiment: str | None = None, tracking_uri: str | None = None,
              on_gpu: bool = False, plan: str | None = None, asha: bool = False, max_concurrent: int = 1,
              share_gpu: bool = False, card_gb: float | None = None, metric: str = DEFAULT_METRIC,
              ray_address: str | None = None, out: str | Path | None = None,
              log: Callable[[str], None] = print) -> SweepResult:
    """Run every variant (x every tier on a GPU; once, priced for every tier, on a CPU) and compare them."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from veernet_ray import tracking
    from veernet_ray.tune import compare

    if not variants:
        raise ConfigError("nothing to sweep: no variants")
    if not tiers:
        raise TierError("no tiers to price the sweep with")
    name = name or default_name(kind)
    experiment = experiment or f"veernet-tune-{kind}"
    base = resolve_base(cfg, experiment=experiment, tracking_uri=tracking_uri)
    uri = base.tracking.tracking_uri
    storage = base.storage_path()

    batches = tier_batches(tiers, on_gpu=on_gpu, config_batch=base.train.physical_batch, plan=plan)
    skipped = [b for b in batches.values() if not b.fits]
    for b in skipped:
        log(f"[veernet] tier {b.tier!r} skipped: {b.source} says batch 1 of the widest log does not fit")
    run_tiers = [t for t in tiers if batches[t.name].fits]
    if on_gpu and not run_tiers:
        raise TierError("no tier fits this model and data (see the plan file); nothing to run")
    spec = SweepSpec(
        name=name, kind=kind, base=base.to_dict(), parent_run_id="", variants=dict(variants),
        tiers={t.name: t for t in tiers},
        batches={t: b.physical_batch for t, b in batches.items()},
        gpu_fraction=gpu_fractions(run_tiers, card_gb, share_gpu) if on_gpu else {},
        on_gpu=on_gpu, effective_batch=EFFECTIVE_BATCH if on_gpu else None,
    )
    trial_tiers = [t.name for t in run_tiers] if on_gpu else [CPU_TIER]
    basis = ("gpu: each trial under its tier's memory ceiling, priced at that tier's rate" if on_gpu else CPU_BASIS)

    # ---- parent run
    exp_id = tracking.ensure_experiment(uri, experiment, storage)
    parent_id, resumed = tracking.get_or_create_run(
        uri, exp_id, name, tags={TAG_SWEEP: name, TAG_KIND: kind, TAG_BASIS: basis})
    spec = dataclasses.replace(spec, parent_run_id=parent_id)
    tracking.log_params(uri, parent_id, {
        "sweep": {"kind": kind, "variants": list(variants), "trial_tiers": trial_tiers,
                  "priced_tiers": [t.name for t in tiers], "metric": metric, "asha": asha,
                  "max_concurrent_trials": max_concurrent, "share_gpu": share_gpu, "plan": plan,
                  "batches": {t: b.physical_batch for t, b in batches.items()},
                  "batch_source": sorted({b.source for b in batches.values()})},
        "tiers": {t.name: {"gpu_mem_gb": t.gpu_mem_gb, "eur_month": t.eur_month, "hours_per_month": t.hours_per_month}
                  for t in tiers},
        "base": base.to_dict(),
    })
    log(f"[veernet] sweep {name!r}: {len(variants)} variant(s) x {len(trial_tiers)} tier(s) "
        f"= {len(variants) * len(trial_tiers)} trial(s); {basis}")
    log(f"[veernet] MLflow parent run {parent_id} ({'resumed' if resumed else 'new'}) in {experiment!r} at {uri}")

    # ---- Tune
    if not ray.is_initialized():
        # keep Ray's dashboard: Train V2's placement-group cleaner polls the state API it serves
        # a given address is checked first; without one a private local cluster that dies with us
        from veernet_ray.raycluster import init_ray

        init_ray(ray_address, include_dashboard=True)
    epochs = base.train.epochs
    scheduler = None
    if asha:
        # max_t = epochs + 1: each trial reports every epoch, then once more with its price
        scheduler = ASHAScheduler(metric=metric, mode="max", time_attr="training_iteration",
                                  max_t=epochs + 1, grace_period=1, reduction_factor=2)
    trainable = tune.with_resources(tune.with_parameters(train_trial, spec=spec), {"CPU": TRIAL_CPUS})
    tuner = tune.Tuner(
        trainable,
        param_space={"label": tune.grid_search(list(variants)), "tier": tune.grid_search(trial_tiers)},
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(name=name, storage_path=str(storage / "tune")),
    )
    grid = tuner.fit()

    # ---- close what did not finish
    errors = 0
    for res in grid:
        label, tier = res.config["label"], res.config["tier"]
        run = tracking.find_run(uri, exp_id, trial_name(spec, label, tier))
        if res.error is not None:
            errors += 1
            log(f"[veernet] trial {label} / {tier} failed: {str(res.error).splitlines()[0][:300]}")
        if run is None:
            continue
        if run.data.tags.get(TAG_STATUS) == "finished":
            continue
        status = "failed" if res.error is not None else "early-stopped"
        wall = float((res.metrics or {}).get("time_total_s") or 0.0)
        tracking.log_metrics(uri, run.info.run_id, summary_metrics(spec, tier, wall))
        tracking.set_tag(uri, run.info.run_id, TAG_STATUS, status)
        tracking.finish_run(uri, run.info.run_id, "FAILED" if status == "failed" else "KILLED")

    # ---- compare, on the parent run
    out = Path(out) if out else storage / "compare" / name
    report = compare.compare_sweep(uri, experiment, parent_id, metric=metric, out=out)
    for path in (report.table_path, report.figure):
        if path is not None:
            tracking.log_artifact(uri, parent_id, path, "compare")
    tracking.log_metrics(uri, parent_id, {"trials": len(grid), "trial_errors": errors})
    tracking.finish_run(uri, parent_id, "FINISHED" if not errors else "FAILED")
    return SweepResult(name, experiment, parent_id, uri, len(grid), errors, report.table, report.figure,
                       report.recommendation)
