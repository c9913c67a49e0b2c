"""What the command entry points share: the run-config arguments and the smoke presets.

`veernet train`, `tune`, `plan` and `demo` all start from a run config: `--config` (a YAML
file), `--set section.key=value` overrides, often `--manifest` and a smoke flag. They add
those arguments with `add_config_args` and turn them into a `RunConfig` with
`config_from_args`, so the flags read and combine the same way everywhere.

Torch- and Ray-free, so every CLI imports it at start-up.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from veernet_ray.config import PROJECT_ROOT, RunConfig, load_config

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"

#: `veernet train --smoke-test`: 12 generated demo scans, one epoch, a tiny model (about a minute on a CPU)
SMOKE = [
    "data.generate_n=12", "data.generate_preset=demo", "train.epochs=1", "train.physical_batch=2",
    "train.effective_batch=4", "train.loss=sce", "model.stem_width=8", "model.widths=[8,16,16,32,32]",
    "train.val_overlays=1",
]
#: the smoke run's model and loss alone (`veernet plan --smoke-test` plans for the smoke model)
SMOKE_MODEL = [o for o in SMOKE if o.startswith(("model.", "train.loss="))]
#: `veernet tune --smoke`: the train smoke's tiny model and data, 2 epochs (a "sce->lovasz" schedule needs
#: two to switch), fractional CPUs so two trials and their Ray Data decode tasks fit on 2 cores, no retries
TUNE_SMOKE = [
    "data.generate_n=12", "data.generate_preset=demo", "train.epochs=2", "train.physical_batch=2",
    "train.effective_batch=4", "model.stem_width=8", "model.widths=[8,16,16,32,32]", "train.val_overlays=1",
    "scale.num_workers=1", "scale.cpus_per_worker=0.5", "data.decode_cpus=0.25", "scale.max_failures=0",
    "data.limit=4",  # 4 train and <= 4 val scans: each trial is then mostly Ray start-up, a few seconds of training
]
#: `veernet tune capacity --smoke`: two widths at the two default depths
TUNE_SMOKE_CAPACITY = {"mults": (1.0, 2.0), "depths": (4, 5)}


def add_config_args(p: argparse.ArgumentParser, *, config_help: str = "YAML run config",
                    set_help: str = "override config fields, e.g. train.epochs=3 data.manifest=/data/manifest.parquet",
                    manifest_help: str | None = None, smoke_flag: str | None = None,
                    smoke_help: str = "") -> argparse.ArgumentParser:
    """Add --config, --set and, when their help is given, --manifest and the smoke flag."""
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help=f"{config_help} (default: %(default)s)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help=set_help)
    if manifest_help is not None:
        p.add_argument("--manifest", help=manifest_help)
    if smoke_flag is not None:
        p.add_argument(smoke_flag, action="store_true", help=smoke_help)
    return p


def config_from_args(args: argparse.Namespace, *, smoke: Sequence[str] = (), after: Sequence[str] = (),
                     manifest_to_config: bool = True) -> RunConfig:
    """The run config the arguments name: --config, then `smoke` (when the smoke flag is set),
    then --set, then `after` (flags that name one field, e.g. --name), then --manifest.

    Later overrides win, so a user's --set refines a smoke preset. Raises ConfigError.
    """
    overrides = list(smoke) if _smoke_on(args) else []
    overrides += list(args.set) + list(after)
    if manifest_to_config and getattr(args, "manifest", None):
        overrides.append(f"data.manifest={args.manifest}")
    return load_config(args.config, overrides)


def _smoke_on(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "smoke_test", False) or getattr(args, "smoke", False))
