"""Archive-scale batch inference on Ray Data: scans in, one LAS per scan out.

    list (driver, headers only) -> decode (CPU tasks) -> model (actor pool, GPU or CPU)
        -> trace + calibrate + write LAS (CPU tasks) -> qc.parquet, errors.parquet, MLflow (`results`)

Stages are sized independently (`decode_cpus`, `model_actors`/`model_cpus`,
`write_cpus`), so decoders never hold a GPU and the model actors are fed by a
stream of decoded scans. Blank scans are dropped in the decode stage, before
the accelerator. Re-running skips scans whose LAS and QC record are both
present, with no model work for them; LAS files are written atomically, so a
crash never leaves a partial one (stale `.part` files of a killed run are
removed at start: do not point two concurrent runs at one output folder).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import typing
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from veernet_ray import __version__, tracking
from veernet_ray.config import ConfigError, _coerce
from veernet_ray.infer.listing import MIN_SIDE, STATE_DIR, Item, list_inputs
# the tables' columns and the summary live with the results; importable from here too
from veernet_ray.infer.results import (ERROR_COLUMNS, QC_COLUMNS, QC_SIGNALS, _typed, _write_if_changed,  # noqa: F401
                                       format_summary, log_run, merge_tables, write_summary)
from veernet_ray.paths import output_folder_problem
from veernet_ray.trace.thresholds import QC_DEFAULTS
from veernet_ray.weights import SHIPPED as SHIPPED_WEIGHTS

# torch (checkpoints, the model stage), Ray and the sheet layout readers are imported inside the
# functions that use them: `veernet infer` answers usage errors without loading any of them.

#: smallest scan side the listing accepts: bounds below it are meaningless
MIN_SIDE_PX = MIN_SIDE
#: consecutive model-actor deaths during start-up tolerated (each replaced) before the job fails
MODEL_INIT_DEATHS = 3


class InferError(ValueError):
    """A usage problem (no checkpoint, no inputs, bad option): the CLI prints it and exits 2."""


class InferJobError(RuntimeError):
    """The Ray job itself failed (not one scan): the CLI prints the one-line reason and exits 1."""


def _first_line(exc: BaseException) -> str:
    """One line for an error: its first, plus the root cause where Ray wrapped a remote traceback
    (whose last line is "SomeError: message")."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return "(no message)"
    first, last = lines[0][:300], lines[-1]
    if len(lines) > 1 and re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*:", last):
        return f"{first} Cause: {last[:300]}"
    return first


@dataclass(frozen=True)
class InferOptions:
    """Everything `veernet infer` takes; the CLI maps flags one to one onto these fields.

    Typed and validated like the training config (`veernet_ray.config`): a wrong type or
    value raises InferError naming the flag and what is allowed, when the options are made,
    before any work. Frozen: every stage sees the options the user gave.
    """

    input: str
    output: str
    checkpoint: str | None = None
    split: str | None = None  # manifest inputs: only this split
    address: str | None = None  # Ray address; None -> $RAY_ADDRESS, else a local Ray
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 8  # scans per model batch (sub-batched by shape inside the actor)
    batching: str = "auto"  # grid | buckets | auto (grid on a GPU): how the actor forms padded batches
    decode_cpus: float = 0.5  # CPUs per decode task
    write_cpus: float = 0.5  # CPUs per trace/write task
    model_actors: int | None = None  # default: one per GPU, or CPUs // 8 (at least 1)
    model_cpus: float | None = None  # CPUs per model actor; default 1 with a GPU, else half the CPUs / actors
    max_width: int | None = None  # wider scans run in overlapping tiles along depth; None: MAX_WIDTH per device
    tile_overlap: int = 256
    max_height: int = 4096
    max_pixels: int = 64 * 2**20  # listing.MAX_PIXELS
    orientation: str = "auto"  # auto | landscape | portrait, for scans without a sidecar
    overlays: str = "flagged"  # flagged | all | none
    min_coverage: float = QC_DEFAULTS.min_coverage
    min_confidence: float = QC_DEFAULTS.min_confidence
    layout: str = "auto"  # auto | sheet | strip: whole sheets go through veernet_ray.layout first
    scales: str | None = None  # sheets: a track-scales JSON for every sheet (ID.scales.json beside one wins)
    depth_unit: str | None = None  # sheets: FT | M when the header does not say (default: FT for labels >= 100)
    ocr: str = "digits+tesseract"  # sheets: label reader(s); "a+b": b re-reads sections a left in doubt
    tracking: bool = True
    tracking_uri: str | None = None
    experiment: str = "veernet-infer"
    progress: bool = True
    verbose: bool = True
    overwrite: bool = False  # redo every scan, even those complete with the same model and options
    follow_symlinks: bool = False  # follow links that lead outside the input folder

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            try:
                object.__setattr__(self, f.name, _coerce(hints[f.name], getattr(self, f.name), f"--{_flag(f.name)}"))
            except ConfigError as exc:
                raise InferError(str(exc)) from exc
        _check(self)

    def replace(self, **changes: Any) -> "InferOptions":
        """A validated copy with some fields changed."""
        return replace(self, **changes)


def _flag(name: str) -> str:
    return name.replace("_", "-")


# --------------------------------------------------------------- checkpoint
def resolve_checkpoint(spec: str | None, *, tracking_uri: str | None, state_dir: Path) -> tuple[Path, str]:
    """(local checkpoint.pt, how it was named) for a path, a folder, `models:/...`/`runs:/...`, or None."""
    from veernet_ray.model.checkpoint import CHECKPOINT_FILE

    if not spec:
        if SHIPPED_WEIGHTS.is_file():
            return SHIPPED_WEIGHTS, "shipped"
        raise InferError("no model: pass --checkpoint PATH|models:/name/version; train one with `veernet train`")
    if spec.startswith(("models:/", "runs:/")):
        uri = tracking.resolve_tracking_uri(tracking_uri, state_dir)
        dst = state_dir / "model" / "".join(c if c.isalnum() else "_" for c in spec)
        dst.mkdir(parents=True, exist_ok=True)
        from mlflow.exceptions import MlflowException

        try:
            local = tracking.download_model(uri, spec, dst)
        except (MlflowException, OSError) as exc:  # not registered / no such run / server unreachable
            raise InferError(f"cannot fetch {spec} from {uri}: {type(exc).__name__}: {exc}") from exc
        found = [local] if local.is_file() else sorted(local.rglob(CHECKPOINT_FILE))
        if not found:
            raise InferError(f"{spec} holds no {CHECKPOINT_FILE}; was it logged by veernet train?")
        return found[0], spec
    path = Path(spec).expanduser().resolve()
    if path.is_dir():
        for cand in (path / CHECKPOINT_FILE, path / "best" / CHECKPOINT_FILE):
            if cand.is_file():
                return cand, spec
        raise InferError(f"{path} holds no {CHECKPOINT_FILE}; pass a checkpoint.pt or a Ray Train checkpoint folder")
    if not path.is_file():
        raise InferError(f"checkpoint {path} not found; train one with `veernet train`")
    return path, spec


def model_provenance(checkpoint: Path, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(~P entries for every LAS, model facts) after checking the checkpoint loads (weights_only)."""
    from veernet_ray.model.checkpoint import load_model, weights_hash

    try:
        model, payload = load_model(checkpoint)
    except (ValueError, FileNotFoundError, RuntimeError, TypeError) as exc:
        raise InferError(f"{checkpoint}: cannot load the model ({exc})") from exc
    cfg = model.cfg
    name = f"VeerNet c{cfg.num_classes} stem{cfg.stem_width} w{'-'.join(map(str, cfg.widths))} attn{cfg.attn_layers}"
    digest = weights_hash(checkpoint)
    provenance = {
        "MODEL": (name, "", "model architecture"),
        "CKPT": (digest, "", "checkpoint sha256[:12]"),
        "CKPT_SRC": (source if source.startswith(("models:/", "runs:/", "shipped")) else checkpoint.name, "",
                     "checkpoint source"),
    }
    facts = {"model_name": name, "checkpoint_hash": digest, "num_classes": cfg.num_classes,
             "parameters": int(sum(p.numel() for p in model.parameters())), "multiple": int(model.multiple),
             # how the model's training batches were padded (grid cells, or buckets of <= 3% padding)
             "trained_batching": "grid" if ((payload.get("config") or {}).get("data") or {}).get("batching")
                                     == "grid" else "buckets"}
    return provenance, facts


# ---------------------------------------------------------------- the run
def run_inference(opts: InferOptions) -> dict[str, Any]:
    """Digitise every scan named by `opts.input` into `opts.output`; returns the summary dict.

    Summary keys: done, complete (already done by an earlier run), skipped
    (blank), errors, flagged, scans, wall_s, pipeline_s, scans_per_s,
    model_batches, output paths, checkpoint facts, mlflow_run_id, exit_code.
    """
    t_start = time.perf_counter()  # opts were validated when made (InferOptions.__post_init__)
    problem = output_folder_problem(opts.output, "--output")
    if problem:
        raise InferError(problem)
    output = Path(opts.output).expanduser().resolve()
    state = output / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_parts(output)
    ckpt, source = resolve_checkpoint(opts.checkpoint, tracking_uri=opts.tracking_uri, state_dir=state)
    provenance, facts = model_provenance(ckpt, source)
    try:
        listing = list_inputs(opts.input, output, split=opts.split, orientation=opts.orientation,
                              max_height=opts.max_height, max_pixels=opts.max_pixels,
                              follow_symlinks=opts.follow_symlinks, run_key=run_key(opts, facts["checkpoint_hash"]),
                              checkpoint_hash=facts["checkpoint_hash"], overwrite=opts.overwrite,
                              multiple=facts["multiple"])
    except (FileNotFoundError, ValueError) as exc:
        raise InferError(str(exc)) from exc
    n_listed = len(listing.items) + len(listing.complete) + len(listing.errors)
    if n_listed == 0:
        raise InferError(f"--input {opts.input!r} names no scans (.tif, .tiff, .png, .jpg, .jpeg)")
    _say(opts, f"[veernet] infer: {n_listed} scans listed: {len(listing.items)} to digitise, "
               f"{len(listing.complete)} already complete, {len(listing.errors)} refused from headers"
               + (f"; redoing {listing.other_model} made by another model" if listing.other_model else "")
               + (f"; redoing {listing.other_options} made with other calibration or options"
                  if listing.other_options else "")
               + (f"; removed {removed} stale .part file(s)" if removed else ""))

    rows: list[dict[str, Any]] = []
    pipeline_s = ray_init_s = 0.0
    resources: dict[str, Any] = {}
    if listing.items:
        t0 = time.perf_counter()
        _init_ray(opts)
        ray_init_s = time.perf_counter() - t0
        from ray.data.exceptions import ExecutionTimeoutError, SystemException
        from ray.exceptions import RayError

        t1 = time.perf_counter()
        try:
            rows, resources = _run_dataset(opts, listing.items, ckpt, provenance, output, multiple=facts["multiple"],
                                           trained_batching=facts["trained_batching"])
        except (RayError, SystemException, ExecutionTimeoutError, OSError) as exc:
            # the Ray job failed (a task or actor error, a lost node, the disk): one line; finished scans
            # are kept and a re-run resumes. Bugs in this driver code surface with their traceback.
            raise InferJobError(f"the Ray Data job stopped: {type(exc).__name__}: {_first_line(exc)}; the scans "
                                "finished so far are kept and a re-run of the same command resumes") from exc
        pipeline_s = time.perf_counter() - t1

    try:
        summary = merge_tables(output, listing, rows, facts)
    except OSError as exc:  # e.g. the output disk is full: the LAS files written so far are complete
        raise InferJobError(f"cannot write qc.parquet / errors.parquet in {output} ({exc.strerror or exc}); "
                            "free space and re-run the same command: finished scans are kept") from exc
    summary.update(ckpt_path=str(ckpt), checkpoint=source, ray_init_s=ray_init_s, pipeline_s=pipeline_s,
                   wall_s=time.perf_counter() - t_start, stale_parts_removed=removed, **resources)
    summary["scans_per_s"] = summary["done"] / pipeline_s if pipeline_s > 0 else 0.0
    if opts.tracking:
        summary["mlflow_run_id"], summary["tracking_uri"] = log_run(opts, output, summary)
    try:
        write_summary(output, summary)
    except OSError as exc:
        _say(opts, f"[veernet] infer: could not write {STATE_DIR}/last_summary.json ({exc.strerror or exc})")
    return summary


def run_key(opts: InferOptions, checkpoint_hash: str) -> str:
    """What, besides a scan's own sidecar and orientation, decides its LAS and QC rows.

    A re-run skips a scan only when this key (hashed with the scan's sidecar) matches the one
    its QC record was written with. Left out on purpose: batch size, actors, CPUs, device and
    overlays (they change how fast, not what).
    """
    return json.dumps({"ckpt": checkpoint_hash, "version": __version__, "max_width": opts.max_width,
                       "tile_overlap": opts.tile_overlap, "min_coverage": opts.min_coverage,
                       "min_confidence": opts.min_confidence}, sort_keys=True)


def remove_stale_parts(output: Path) -> int:
    """Delete `.<name>.*.part` files a killed run left behind (atomic_path's temporaries)."""
    n = 0
    for folder in (output, output / "overlays", output / "layout", output / STATE_DIR / "qc"):
        if folder.is_dir():
            for p in folder.glob(".*.part"):
                p.unlink(missing_ok=True)
                n += 1
    return n


def _check(opts: InferOptions) -> None:
    if opts.overlays not in ("flagged", "all", "none"):
        raise InferError(f"--overlays must be flagged, all or none; got {opts.overlays!r}")
    if opts.device not in ("auto", "cpu", "cuda"):
        raise InferError(f"--device must be auto, cpu or cuda; got {opts.device!r}")
    if opts.orientation not in ("auto", "landscape", "portrait"):
        raise InferError(f"--orientation must be auto, landscape or portrait; got {opts.orientation!r}")
    if opts.batch_size < 1:
        raise InferError(f"--batch-size must be >= 1; got {opts.batch_size}")
    if opts.max_width is not None and opts.max_width < 512:
        raise InferError(f"--max-width must be >= 512 columns; got {opts.max_width}")
    if opts.max_height < MIN_SIDE_PX or opts.max_pixels < MIN_SIDE_PX ** 2:
        raise InferError(f"--max-height must be >= {MIN_SIDE_PX} and --max-pixels >= {MIN_SIDE_PX ** 2}")
    if not (0.0 <= opts.min_coverage <= 1.0 and 0.0 <= opts.min_confidence <= 1.0):
        raise InferError("--min-coverage and --min-confidence must lie in [0, 1]")
    if opts.model_cpus is not None and not opts.model_cpus > 0:
        raise InferError(f"--model-cpus must be > 0; got {opts.model_cpus}")
    if not 0 <= opts.tile_overlap < (opts.max_width or min(MAX_WIDTH.values())) // 2:
        raise InferError(f"--tile-overlap must lie in [0, max_width / 2); got {opts.tile_overlap}")
    for name in ("decode_cpus", "write_cpus"):
        if not getattr(opts, name) > 0:
            raise InferError(f"--{name.replace('_', '-')} must be > 0")
    if opts.model_actors is not None and opts.model_actors < 1:
        raise InferError(f"--model-actors must be >= 1; got {opts.model_actors}")
    _check_layout(opts)


def _check_layout(opts: InferOptions) -> None:
    from veernet_ray.layout.digits import READERS
    from veernet_ray.layout.sheet import ScalesError, load_scales
    from veernet_ray.layout.stages import MODES

    if opts.batching not in ("auto", "grid", "buckets"):
        raise InferError(f"--batching must be auto, grid or buckets; got {opts.batching!r}")
    if opts.layout not in MODES:
        raise InferError(f"--layout must be one of {', '.join(MODES)}; got {opts.layout!r}")
    if opts.depth_unit is not None and opts.depth_unit not in ("FT", "M"):
        raise InferError(f"--depth-unit must be FT or M; got {opts.depth_unit!r}")
    if not all(part in READERS for part in opts.ocr.split("+")):
        raise InferError(f"--ocr must be a reader or two joined by '+' ({', '.join(sorted(READERS))}); "
                         f"got {opts.ocr!r}")
    if opts.scales:
        try:
            load_scales(opts.scales)
        except ScalesError as exc:
            raise InferError(f"--scales: {exc}") from exc


def _init_ray(opts: InferOptions) -> None:
    from veernet_ray.raycluster import RayUnavailable, init_ray

    try:  # a given address must answer within seconds; without one, a private local cluster
        # workers' own stderr stays in the Ray session's logs: every scan's failure is an errors.parquet
        # row and a job's is one line, so Ray's forwarded worker tracebacks would only repeat them
        init_ray(opts.address, include_dashboard=False, log_to_driver=False)
    except RayUnavailable as exc:
        raise InferError(str(exc)) from exc


class _OneLine(logging.Filter):
    """Ray Data's "an actor died during initialization and will be replaced" warning, without the
    dead actor's traceback: the replacement is routine, and its cause fits on the same line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            cause = str(record.exc_info[1]).strip().splitlines()
            record.msg = f"{record.getMessage()} Cause: {cause[-1] if cause else type(record.exc_info[1]).__name__}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


#: the widest scan run whole, per device: wider ones go through overlapping tiles. A GPU runs every
#: seed-size log (up to 12,800 px) whole, in the shape grid; tiled, on an H200, half of them went one
#: at a time through new tile shapes, each autotuned (bench/RESULTS.md, 2026-11-27)
MAX_WIDTH = {"cpu": 8192, "cuda": 16384}


def max_width(opts: InferOptions, device: str) -> int:
    """`--max-width`, or the device's default."""
    return opts.max_width or MAX_WIDTH[device]


def _plan_resources(opts: InferOptions) -> dict[str, Any]:
    """Actor count, CPUs and GPUs per model actor, from the cluster and the options."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 1)), int(total.get("GPU", 0))
    use_gpu = opts.device == "cuda" or (opts.device == "auto" and gpus > 0)
    if opts.device == "cuda" and gpus == 0:
        raise InferError("--device cuda, but the Ray cluster has no GPU")
    if use_gpu:
        actors = opts.model_actors or gpus
        model_cpus = opts.model_cpus or 1.0
    else:
        # CPU inference: about half the cores run the model, the rest decode and write
        actors = opts.model_actors or max(1, int(cpus // 8))
        model_cpus = opts.model_cpus or max(1.0, float(int(cpus * 0.5 // actors)))
        # every actor holds its CPUs for the whole job: leave one decode and one write task room to run
        model_cpus = min(model_cpus, max(0.25, (cpus - opts.decode_cpus - opts.write_cpus) / actors))
    # more actors than GPUs share them (Ray's fractional GPUs): one actor's host work (collate, copies)
    # then overlaps another's kernels
    model_gpus = (1.0 if actors <= gpus else gpus / actors) if use_gpu else 0
    return {"device": "cuda" if use_gpu else "cpu", "model_actors": int(actors), "model_cpus": float(model_cpus),
            "model_gpus": model_gpus, "cluster_cpus": cpus, "cluster_gpus": gpus}


def _shape_grid(opts: InferOptions, items: list[Item], device: str, multiple: int, trained_batching: str):
    """The fixed grid of batch shapes the model actor pads to (training's `data.shapes.choose_grid`),
    from the listing's canonical shapes of scans narrow enough to run whole; None for bucketing.

    "auto" takes the grid on a GPU only for a model trained on grid-padded batches: VeerNet's
    GroupNorm statistics and attention see the padding, so a model trained with at most 3% padding
    changes about 0.5% of its pixel classes when padded 10-30% more (bench/RESULTS.md).
    """
    batching = opts.batching if opts.batching != "auto" else (
        "grid" if device == "cuda" and trained_batching == "grid" else "buckets")
    from veernet_ray.infer.stages import INFER_MARGIN

    # the model actor pads every scan with INFER_MARGIN more rows and columns: the cells must hold them
    shapes = [(it.height + INFER_MARGIN, it.width + INFER_MARGIN) for it in items
              if it.width <= max_width(opts, device)]
    if batching != "grid" or not shapes:
        return None
    from veernet_ray.data.shapes import CPU_COST, GPU_COST, choose_grid

    return choose_grid(shapes, opts.batch_size, GPU_COST if device == "cuda" else CPU_COST, multiple=multiple).grid


def _run_dataset(opts: InferOptions, items: list[Item], ckpt: Path, provenance: dict, output: Path, *,
                 multiple: int, trained_batching: str = "buckets") -> tuple[list[dict], dict[str, Any]]:
    import ray
    import ray.data

    from veernet_ray.infer.stages import ModelStage, decode_row, write_row

    res = _plan_resources(opts)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = bool(opts.progress)
    # a model actor that dies while it starts (out of memory under load, a node lost) is replaced up
    # to MODEL_INIT_DEATHS times in a row before the job fails (Ray Data's default is 0). Set before the
    # dataset is made: a Dataset copies the current DataContext when it is created.
    ctx.max_consecutive_actor_init_deaths = MODEL_INIT_DEATHS
    # an error raised while the model loads is first retried inside the same actor (Ray Data's
    # actor_init_max_retries, 3): no actor dies, so no Ray task-failure report reaches the terminal
    ctx.actor_init_retry_on_errors = True
    pool_log = logging.getLogger("ray.data._internal.execution.operators.actor_pool_map_operator")
    if not any(isinstance(f, _OneLine) for f in pool_log.filters):
        pool_log.addFilter(_OneLine())
    ckpt_ref = ray.put(ckpt.read_bytes())  # actors on other nodes need not see the driver's disk
    grid = _shape_grid(opts, items, res["device"], multiple, trained_batching)
    # blocks of one grid cell's scans make whole model batches; height buckets mix more, so half
    rows_per_block = max(1, opts.batch_size if grid is not None else opts.batch_size // 2)
    if grid is not None:  # scans of one grid cell side by side, so the actor's batches fill
        def cell(it: Item) -> tuple[int, int]:
            try:
                return grid.cell(it.height, it.width)
            except ValueError:  # wider than --max-width: tiled, after the rest
                return (1 << 30, 1 << 30)

        items = sorted(items, key=lambda it: (cell(it), it.width, it.id))
        res["batching"] = "grid"
        res["grid"] = f"{list(grid.heights)} x {list(grid.widths)}"
    else:  # items are sorted by (padded height, width): consecutive blocks hold similar shapes
        res["batching"] = "buckets"
    ds = ray.data.from_items([it.row() for it in items],
                             override_num_blocks=max(1, math.ceil(len(items) / rows_per_block)))
    write_fn: Any = write_row
    if opts.layout == "strip":
        ds = ds.map(decode_row, num_cpus=opts.decode_cpus)
    else:  # sheets: layout, OCR and depth fit on CPU tasks, one row per track crop (veernet_ray.layout.stages)
        from veernet_ray.layout.sheet import load_scales
        from veernet_ray.layout.stages import prepare_rows, write_any

        ds = ds.flat_map(prepare_rows, num_cpus=opts.decode_cpus,
                         fn_kwargs={"mode": opts.layout, "output": str(output), "reader": opts.ocr,
                                    "scales": load_scales(opts.scales) if opts.scales else None,
                                    "depth_unit": opts.depth_unit, "overlays": opts.overlays})
        write_fn = write_any
    ds = ds.map_batches(
        ModelStage,
        fn_constructor_kwargs={"checkpoint": ckpt_ref, "device": res["device"], "batch_size": opts.batch_size,
                               "max_width": max_width(opts, res["device"]), "overlap": opts.tile_overlap,
                               "num_threads": max(1, int(res["model_cpus"])),
                               "grid": (grid.heights, grid.widths) if grid is not None else None},
        compute=ray.data.ActorPoolStrategy(size=res["model_actors"]), batch_size=opts.batch_size,
        batch_format="numpy",
        num_cpus=res["model_cpus"], num_gpus=res["model_gpus"],
    )
    ds = ds.map(write_fn, num_cpus=opts.write_cpus,
                fn_kwargs={"provenance": provenance, "output": str(output), "min_coverage": opts.min_coverage,
                           "min_confidence": opts.min_confidence, "overlays": opts.overlays})
    rows = [_plain(r) for r in ds.iter_rows()]
    if opts.layout != "strip":  # one LAS per sheet from its tracks' curves (driver: small arrays only)
        from veernet_ray.layout.stages import merge_sheets

        rows = merge_sheets(rows, output=str(output), provenance=provenance, min_coverage=opts.min_coverage,
                            min_confidence=opts.min_confidence, overlays=opts.overlays)
    return rows, res


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def _say(opts: InferOptions, msg: str) -> None:
    if opts.verbose:
        print(msg, flush=True)


# ---------------------------------------------------------------- demo hook
def digitise_manifest_split(manifest: str | os.PathLike, split: str, output: str | os.PathLike,
                            checkpoint: str | None, **options: Any) -> dict[str, Any]:
    """Digitise one split of a dataset manifest (the demo's last step); returns the run summary.

    `options` are InferOptions fields (address, overlays, tracking_uri, ...).
    Score the result with `veernet_ray.infer.score.score_outputs(output, manifest, split)`.
    """
    opts = InferOptions(input=str(manifest), output=str(output), checkpoint=checkpoint, split=split, **options)
    return run_inference(opts)
