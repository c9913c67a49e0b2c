"""Typed run configuration: frozen dataclasses composed into one `RunConfig`.

Loaded from YAML (`configs/*.yaml`) with dotted command-line overrides
(`train.epochs=3`). Unknown keys and wrong types fail loudly with the valid
choices, so a typo never silently does nothing. The resolved config is saved
in every checkpoint and logged to MLflow (`to_dict`), and Ray Tune overrides
these fields through `with_overrides`, not a parallel dict.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# the `model:` section is VeerNet's own architecture config (torch-free), re-exported here
from veernet_ray.model.config import ModelConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and what is valid."""


@dataclass(frozen=True)
class DataConfig:
    manifest: str | None = None  # manifest.parquet; None = generate `generate_*` into the run folder first
    generate_n: int = 48
    generate_preset: str = "demo"
    generate_seed: int = 0
    generate_las_dir: str | None = None  # real-curve source for generation (None = stochastic only)
    max_padding: float = 0.03  # most padding a micro-batch may add beyond each scan's own rounding to model.multiple
    shuffle_buffer: int = 4  # pre-collated batches held per worker for the per-epoch shuffle
    decode_cpus: float = 0.25  # CPUs reserved by each Ray Data decode task (fractional: 2-core laptops)
    limit: int | None = None  # use only the first N items of each split (smoke runs)
    # "grid": pad to a fixed grid of shapes chosen by a cost model, full micro-batches (few shapes:
    # a GPU warms each once); "buckets": height buckets capped at max_padding (least padding: a CPU);
    # "auto": grid on a GPU run (scale.use_gpu), buckets otherwise
    batching: str = "auto"

    def __post_init__(self):
        if self.batching not in ("auto", "grid", "buckets"):
            raise ValueError(f"data.batching must be auto, grid or buckets; got {self.batching!r}")

    def batching_for(self, use_gpu: bool) -> str:
        return self.batching if self.batching != "auto" else ("grid" if use_gpu else "buckets")


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "multiclass"  # "binary" (curves merged) or "multiclass"
    epochs: int = 10
    effective_batch: int = 16
    physical_batch: int = 4  # micro-batch per worker; a plan file overrides it
    # micro-batches per optimiser step; None = the plan's, else effective_batch / (physical_batch x workers).
    # The config saved with a run records the values the run used for both.
    accumulation_steps: int | None = None
    plan: str | None = None  # plan.json from `veernet plan`
    loss: str = "sce->tversky"  # a loss name or a schedule "a->b" / "a->b@epoch"
    loss_params: dict[str, Any] = field(default_factory=dict)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    amp: str = "auto"  # "auto" (bf16 on GPU), "bf16", "off"
    channels_last: str = "auto"  # "auto" (on GPU), "on", "off"
    compile: bool = False
    init_from: str | None = None  # a checkpoint (binary stage) to start the backbone from
    init_scope: str = "backbone"  # what init_from loads: "backbone" (encoder + bottleneck) or "all" that fits
    seed: int = 0
    val_overlays: int = 3  # overlay PNGs per validation

    def __post_init__(self):
        _choice("train.stage", self.stage, ("binary", "multiclass"))
        _choice("train.amp", self.amp, ("auto", "bf16", "off"))
        _choice("train.init_scope", self.init_scope, ("backbone", "all"))
        _choice("train.channels_last", self.channels_last, ("auto", "on", "off"))
        for name in ("epochs", "effective_batch", "physical_batch", "accumulation_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")

    @property
    def num_classes(self) -> int:
        return 2 if self.stage == "binary" else 3


@dataclass(frozen=True)
class ScaleConfig:
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 0.5  # fractional so Ray Data decode tasks still schedule on 2 cores
    # torch threads per CPU worker; None = the worker's whole CPUs (at least 1). Ray Data budgets
    # decode tasks from the CPUs Train does not reserve, so a 2-core laptop reserves 1 and runs 2.
    torch_threads: int | None = None
    gpus_per_worker: float = 1.0
    gpu_memory_gb: float | None = None  # enforce a smaller card's memory ceiling on a bigger one (tiers)
    max_failures: int = 2
    keep_checkpoints: int = 2
    checkpoint_metric: str = "val_miou_fg"

    def __post_init__(self):
        if self.num_workers < 1:
            raise ConfigError(f"scale.num_workers must be at least 1, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise ConfigError("scale.cpus_per_worker must be positive (fractions such as 0.5 are fine)")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigError(f"scale.torch_threads must be at least 1 (or null), got {self.torch_threads}")


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = True  # false: no MLflow (a machine without it, e.g. a lent GPU); metrics stay in the checkpoints
    experiment: str = "veernet-train"
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<runs>/mlflow.db (absolute)
    register_as: str | None = "veernet"  # registered model name; None = do not register
    parent_run_id: str | None = None  # log as a child of this run (a Tune sweep's parent run)


@dataclass(frozen=True)
class RunConfig:
    name: str = "demo"
    storage: str = "runs"  # run folder: checkpoints, data, mlflow.db (relative to the project root)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def storage_path(self) -> Path:
        p = Path(self.storage).expanduser()
        return p if p.is_absolute() else (Path.cwd() / p).resolve()

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> "RunConfig":
        """A copy with dotted-key overrides applied ({"train.loss": "dice"} or ["train.loss=dice"])."""
        data = self.to_dict()
        items = overrides.items() if isinstance(overrides, dict) else (_split_override(o) for o in overrides)
        for key, value in items:
            _set_dotted(data, key, value)
        return from_dict(data)


def from_dict(data: dict[str, Any]) -> RunConfig:
    return _build(RunConfig, data, "")


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (None = all defaults) and apply `key=value` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            candidates = sorted(p.name for p in (PROJECT_ROOT / "configs").glob("*.yaml"))
            raise ConfigError(f"config {path} not found; shipped configs: {candidates} in {PROJECT_ROOT / 'configs'}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for key, value in (_split_override(o) for o in overrides or []):
        _set_dotted(data, key, value)
    return from_dict(data)


def save_config(cfg: RunConfig, path: str | os.PathLike) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


# ------------------------------------------------------------------ internals
def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{name} must be one of {list(valid)}, got {value!r}")


def _split_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value (e.g. train.epochs=3)")
    key, raw = item.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if tp is Any:
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):  # YAML 1.1 reads a bare on/off as a boolean
            return "on" if value else "off"
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj
