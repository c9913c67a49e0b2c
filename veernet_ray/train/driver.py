"""The training driver: plan data, create the MLflow run, fit a TorchTrainer, register the model.

One code path for `veernet train` (local Ray) and
`ray job submit -- python jobs/train.py` (any cluster): with no address Ray
starts locally; under `ray job submit` RAY_ADDRESS points at the cluster.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veernet_ray import tracking
from veernet_ray.config import RunConfig, save_config
from veernet_ray.data.buckets import accumulation_steps
from veernet_ray.data.manifest import resolve_manifest  # lives in data/ (tune uses it too); importable here
from veernet_ray.data.pipeline import build_dataset, load_items, plan_split
from veernet_ray.losses.schedule import parse_schedule
from veernet_ray.model.checkpoint import CHECKPOINT_FILE, load_payload
from veernet_ray.plan.planfile import load_plan

# Ray is imported inside the functions that start it, so importing this module (tune, the tests
# of physical_batch_for) does not load Ray; the CLI imports this module only after parsing
# arguments and loading the config. The worker loop is imported only in the worker (_train_func).


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path | None
    metrics: dict[str, Any]
    mlflow_run_id: str | None
    tracking_uri: str
    model_version: str | None


def physical_batch_for(cfg: RunConfig) -> tuple[int, int | None]:
    """(physical batch, accumulation steps or None) from the plan file when one is configured.

    The plan's accumulation holds for the worker count it was planned for; with
    another count it is recomputed from the physical batch (None here).
    """
    if not cfg.train.plan:
        return cfg.train.physical_batch, None
    return load_plan(cfg.train.plan).batch_for(cfg.scale.num_workers)


def resolve_batching(cfg: RunConfig) -> RunConfig:
    """`cfg` with the physical batch and accumulation this run will use written into it.

    Physical batch: the plan file's, else `train.physical_batch`. Accumulation: an explicit
    `train.accumulation_steps`, else the plan's (for the worker count it was planned for),
    else enough to reach `train.effective_batch`. The saved config (run folder, every
    checkpoint, MLflow) then records what the run did, not only what was asked.
    """
    physical_batch, plan_accum = physical_batch_for(cfg)
    accum = (cfg.train.accumulation_steps or plan_accum
             or accumulation_steps(cfg.train.effective_batch, physical_batch, cfg.scale.num_workers))
    return cfg.with_overrides({"train.physical_batch": physical_batch, "train.accumulation_steps": accum})


def run_training(cfg: RunConfig, *, ray_address: str | None = None, verbose: bool = True,
                 callbacks: list | None = None) -> TrainResult:
    """Plan, fit and register one run. `callbacks` go to Ray Train's RunConfig (Tune's report callback),
    with the MLflow epoch logger when tracking is on."""
    import ray
    import ray.train
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    parse_schedule(cfg.train.loss, cfg.train.epochs, cfg.train.loss_params or None)  # fail here, not in a worker
    storage = cfg.storage_path()
    run_dir = storage / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = resolve_manifest(cfg)
    if cfg.train.init_from:
        # workers run in Ray's own working folder: a relative path must be resolved here, and
        # a missing checkpoint must stop the run before Ray starts, not in a worker
        init = Path(cfg.train.init_from).expanduser().resolve()
        if not (init / CHECKPOINT_FILE if init.is_dir() else init).is_file():
            raise FileNotFoundError(f"train.init_from {init}: no {CHECKPOINT_FILE} there; train the binary stage "
                                    "first or point at its best/ folder")
        cfg = cfg.with_overrides({"train.init_from": str(init)})
    cfg = resolve_batching(cfg)
    physical_batch, accum, workers = cfg.train.physical_batch, cfg.train.accumulation_steps, cfg.scale.num_workers

    train_items = load_items(manifest, "train", cfg.data.limit)
    val_items = load_items(manifest, "val", cfg.data.limit)
    if not train_items:
        raise ValueError(f"{manifest}: the train split is empty")
    if not val_items:
        raise ValueError(f"{manifest}: the val split is empty; validation needs at least one scan")
    multiple = cfg.model.multiple  # pad for the network this run builds (2**len(model.widths))
    batching = cfg.data.batching_for(cfg.scale.use_gpu)
    cfg = cfg.with_overrides({"data.batching": batching})  # what the run did, in its saved config (inference reads it)
    grid = cost = None
    if batching == "grid":  # one grid for both splits (and the device warms each cell once)
        from veernet_ray.data.shapes import CPU_COST, GPU_COST, choose_grid

        cost = GPU_COST if cfg.scale.use_gpu else CPU_COST
        grid = choose_grid([(it.height, it.width) for it in (*train_items, *val_items)], physical_batch, cost,
                           epochs=cfg.train.epochs, multiple=multiple, seed=cfg.train.seed).grid
    train_plan = plan_split(train_items, physical_batch, multiple=multiple, num_workers=workers,
                            max_padding=cfg.data.max_padding, seed=cfg.train.seed, grid=grid, cost=cost)
    val_plan = plan_split(val_items, physical_batch, multiple=multiple, num_workers=1, max_padding=cfg.data.max_padding,
                          grid=grid, cost=cost)
    batches_per_worker = len(train_plan.batches) // workers
    steps_per_epoch = -(-batches_per_worker // accum)

    track = cfg.tracking.enabled
    tracking_uri, run_id, resumed = "", None, False
    if track:
        tracking_uri = tracking.resolve_tracking_uri(cfg.tracking.tracking_uri, storage)
        exp_id = tracking.ensure_experiment(tracking_uri, cfg.tracking.experiment, storage)
        run_id, resumed = tracking.get_or_create_run(tracking_uri, exp_id, cfg.name, tags={"veernet.stage": cfg.train.stage},
                                                     parent_run_id=cfg.tracking.parent_run_id)
    data_facts = {
        "data.manifest_resolved": str(manifest),
        "data.train_scans": len(train_items),
        "data.val_scans": len(val_items),
        "train.physical_batch_used": physical_batch,
        "data.batching_used": batching,
        "data.grid": f"{list(grid.heights)} x {list(grid.widths)}" if grid else "",
        "train.steps_per_epoch": steps_per_epoch,
    }
    plan_facts = {
        "padding_fraction": train_plan.padding.padding,
        "bucket_padding_fraction": train_plan.padding.bucket_padding,
        "batch_fill": train_plan.fill(physical_batch),
        "distinct_shapes": train_plan.distinct_shapes,
    }
    if track:
        tracking.log_params(tracking_uri, run_id, {**cfg.to_dict(), **data_facts})
        tracking.log_metrics(tracking_uri, run_id, plan_facts)
    else:  # what MLflow would have held, beside the config
        (run_dir / "run_facts.json").write_text(json.dumps({**data_facts, **plan_facts}, indent=1))
    save_config(cfg, run_dir / "config.yaml")
    if verbose:
        print(f"[veernet] run {cfg.name!r}: {len(train_items)} train / {len(val_items)} val scans, "
              f"{len(train_plan.batches)} micro-batches of <= {physical_batch}, accumulation x{accum} "
              f"over {workers} worker(s) -> effective batch {physical_batch * accum * workers}; "
              f"padding {train_plan.padding.padding:.1%} (of which batching {train_plan.padding.bucket_padding:.1%}); "
              f"{batching} batching: fill {train_plan.fill(physical_batch):.0%}, "
              f"{train_plan.distinct_shapes} distinct batch shapes")
        print(f"[veernet] MLflow run {run_id} ({'resumed' if resumed else 'new'}) at {tracking_uri}" if track else
              f"[veernet] MLflow off (tracking.enabled=false): epochs' metrics go in the checkpoints, "
              f"run facts in {run_dir / 'run_facts.json'}")

    if not ray.is_initialized():
        # keep Ray's dashboard: Train V2's placement-group cleaner polls the state API it serves
        # a given address is checked first; without one a private local cluster that dies with us
        from veernet_ray.raycluster import init_ray

        init_ray(ray_address, include_dashboard=True)
    import ray.data

    # The loop prints one line per epoch; per-operator bars relayed from workers only repeat themselves.
    ray.data.DataContext.get_current().enable_progress_bars = False
    binary = cfg.train.stage == "binary"
    train_ds = build_dataset(train_items, train_plan, binary=binary, with_truth=False, multiple=multiple,
                             decode_cpus=cfg.data.decode_cpus)
    val_ds = build_dataset(val_items, val_plan, binary=binary, with_truth=True, multiple=multiple,
                           decode_cpus=cfg.data.decode_cpus)

    resources = {"CPU": cfg.scale.cpus_per_worker}
    if cfg.scale.use_gpu:
        resources["GPU"] = cfg.scale.gpus_per_worker
    mlflow_spec = {"tracking_uri": tracking_uri, "run_id": run_id} if track else None
    if mlflow_spec:  # each epoch reaches MLflow from the controller once Ray has committed it
        from veernet_ray.train.epochs import EpochsToMlflow

        callbacks = [*(callbacks or []), EpochsToMlflow(mlflow_spec)]
    trainer = TorchTrainer(
        train_loop_per_worker=_train_func,
        train_loop_config={
            "run": cfg.to_dict(),
            "accum": accum,
            "steps_per_epoch": steps_per_epoch,
            "distinct_shapes": train_plan.distinct_shapes + val_plan.distinct_shapes if grid else None,
            "run_dir": str(run_dir),
            "mlflow": mlflow_spec,
        },
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=cfg.scale.use_gpu, resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=cfg.name,
            storage_path=str(storage / "ray"),
            callbacks=callbacks,
            failure_config=FailureConfig(max_failures=cfg.scale.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.scale.keep_checkpoints,
                checkpoint_score_attribute=cfg.scale.checkpoint_metric,
                checkpoint_score_order="max",
            ),
        ),
        datasets={"train": train_ds, "val": val_ds},
        # validation runs on rank 0 over the whole val split; only train is sharded
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
    )
    result = trainer.fit()

    best = None
    try:
        best_ckpt = result.get_best_checkpoint(cfg.scale.checkpoint_metric, "max")
    except RuntimeError:  # Ray: no checkpoint kept, or none reported the metric; fall back to the last one
        best_ckpt = None
    best_ckpt = best_ckpt or result.checkpoint
    version = None
    if best_ckpt is not None:
        best = run_dir / "best"
        if best.exists():
            shutil.rmtree(best)
        best_ckpt.to_directory(str(best))
        version = _log_final_model(cfg, tracking_uri, run_id, best) if track else None
    if track:
        if result.checkpoint is not None:  # epochs the controller could not log (MLflow was down)
            from veernet_ray.train.epochs import heal_from_checkpoint

            with result.checkpoint.as_directory() as latest:
                heal_from_checkpoint(mlflow_spec, Path(latest))
        tracking.finish_run(tracking_uri, run_id)
    metrics = dict(result.metrics or {})
    return TrainResult(run_dir, best, metrics, run_id, tracking_uri, version)


def _train_func(config: dict[str, Any]) -> None:
    # imported in the worker, so the driver never builds the model
    from veernet_ray.train.loop import train_func

    train_func(config)


def _log_final_model(cfg: RunConfig, tracking_uri: str, run_id: str, best: Path) -> str | None:
    """Log the best checkpoint's weights and config as the run's `model` and register it."""
    import torch

    payload = load_payload(best)
    slim = {k: payload[k] for k in ("model", "model_config", "config", "epoch", "history") if k in payload}
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(slim, Path(tmp) / CHECKPOINT_FILE)
        tracking.log_artifacts(tracking_uri, run_id, tmp, "model")
    if cfg.tracking.register_as:
        return tracking.register_model(tracking_uri, run_id, "model", cfg.tracking.register_as)
    return None
