"""Each epoch reaches MLflow once Ray Train has committed it, and only then.

Rank 0 used to log an epoch right after its `ray.train.report`. That call
returns when the checkpoint is uploaded, but the epoch is committed only when
the controller has a report from every worker. A worker killed in between
(CI's stop 29 run) left MLflow holding an epoch that Ray then trained again
from the previous checkpoint: two values at one step. `EpochsToMlflow` runs on
the Ray Train controller, after the checkpoint manager has registered the
report, so MLflow sees exactly the epochs a resume starts after. The overlays
travel inside the checkpoint (`OVERLAYS_DIR`), so they are logged from storage at
the same moment. Epochs committed but never logged (the controller lost in
between) are healed by rank 0 on resume (`tracking.EpochLogger`). MLflow failing
(a server down) costs a warning, not the training run: the driver logs what the
final checkpoint holds and MLflow lacks when the fit ends (`heal_from_checkpoint`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import ray.train

from veernet_ray import tracking
from veernet_ray.model.checkpoint import OVERLAYS_DIR, load_payload


class EpochsToMlflow(ray.train.UserCallback):
    """Log rank 0's reported epoch metrics (and the checkpoint's overlays) into the run's MLflow run."""

    def __init__(self, spec: dict[str, str]):
        self.spec = dict(spec)

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        reported = metrics[0] if metrics else {}
        if "epoch" not in reported:  # a report without an epoch (none today) has nothing to log
            return
        epoch = int(reported["epoch"])
        try:
            logger = tracking.EpochLogger(self.spec)
            if checkpoint is None:
                logger.log_epoch(reported, epoch, None)
                return
            with checkpoint.as_directory() as folder:  # storage's own folder when it is a local path
                logger.log_epoch(reported, epoch, Path(folder) / OVERLAYS_DIR)
        except Exception as exc:  # MLflow down must not stop the training; the checkpoint keeps the epoch
            print(f"[veernet] warning: MLflow did not take epoch {epoch} ({type(exc).__name__}: {exc}); its "
                  "checkpoint keeps the metrics, and the driver logs them when the run ends", file=sys.stderr)


def heal_from_checkpoint(spec: dict[str, str], checkpoint_dir: Path) -> None:
    """Log the epochs a checkpoint's history holds and MLflow lacks (the driver, after the fit)."""
    history = json.loads(load_payload(checkpoint_dir).get("history", "[]"))
    tracking.EpochLogger(spec, history)
