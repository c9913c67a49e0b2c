"""Review counts in MLflow, beside the inference run that made the output folder.

`veernet infer` records its MLflow run and tracking URI in `OUT/.veernet/last_summary.json`;
the counts (accepted, corrected, rejected, left, actions) go to that run as metrics,
step = actions so far, so the run's charts show the review's progress. Without a
recorded run (inference ran with --no-tracking), a run named `review-<folder>` is
made in the `veernet-infer` experiment of the URI given (or $MLFLOW_TRACKING_URI, or
the sqlite store inference would use in `OUT/.veernet/`). URIs are made absolute
(veernet_ray.tracking.resolve_tracking_uri), or an http server.

Logging runs on a background thread and is coalesced: a burst of clicks makes one
MLflow call, and a slow or unreachable tracking server never slows the page.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from veernet_ray.review.store import STATE_DIR

#: seconds to wait for more actions before logging (one MLflow call per burst)
DEBOUNCE_S = 1.0
METRIC_KEYS = ("accepted", "corrected", "rejected", "left", "flagged", "actions")


def inference_run(out: Path) -> tuple[str | None, str | None]:
    """(run id, tracking URI) that `veernet infer` recorded for this output folder, or (None, None)."""
    summary = Path(out) / STATE_DIR / "last_summary.json"
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    return data.get("mlflow_run_id") or None, data.get("tracking_uri") or None


def resolve_run(out: Path, tracking_uri: str | None = None) -> tuple[str, str]:
    """(tracking URI, run id) the counts go to; see the module docstring."""
    from veernet_ray import tracking

    out = Path(out).resolve()
    run_id, recorded_uri = inference_run(out)
    uri = tracking.resolve_tracking_uri(tracking_uri or recorded_uri, out / STATE_DIR)
    if run_id and tracking.run_exists(uri, run_id):
        return uri, run_id
    # no recorded run, or not in this store (another URI given): a review run there instead
    exp = tracking.ensure_experiment(uri, "veernet-infer", out / STATE_DIR)
    run_id, _ = tracking.get_or_create_run(uri, exp, f"review-{out.name}", tags={"veernet.stage": "review"})
    return uri, run_id


def log_counts(uri: str, run_id: str, counts: dict[str, int]) -> None:
    from veernet_ray import tracking

    step = int(counts.get("actions", 0))
    tracking.log_metrics(uri, run_id, {f"review_{k}": float(counts.get(k, 0)) for k in METRIC_KEYS}, step=step)
    tracking.set_tag(uri, run_id, "veernet.reviewed", "yes")


class CountLogger:
    """Logs the latest counts on a background thread, at most once per DEBOUNCE_S burst."""

    def __init__(self, out: Path, tracking_uri: str | None = None, say=print):
        self.out, self.tracking_uri, self.say = Path(out), tracking_uri, say
        self._pending: dict[str, int] | None = None
        self._cv = threading.Condition()
        self._stop = False
        self._target: tuple[str, str] | None = None
        self.logged = 0
        self.thread = threading.Thread(target=self._run, name="review-mlflow", daemon=True)
        self.thread.start()

    def __call__(self, counts: dict[str, int]) -> None:
        with self._cv:
            self._pending = dict(counts)
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait()
                if self._pending is None and self._stop:
                    return
            time.sleep(0 if self._stop else DEBOUNCE_S)
            with self._cv:
                counts, self._pending = self._pending, None
            if counts is not None:
                self._log(counts)

    def _log(self, counts: dict[str, Any]) -> None:
        try:
            if self._target is None:
                self._target = resolve_run(self.out, self.tracking_uri)
                self.say(f"[veernet] review counts go to MLflow run {self._target[1]} at {self._target[0]}")
            log_counts(*self._target, counts)
            self.logged += 1
        except Exception as exc:  # tracking must never stop a review; say so once per failure
            self.say(f"[veernet] review: could not log counts to MLflow ({type(exc).__name__}: {exc})")

    def close(self, timeout: float = 30.0) -> None:
        """Log what is pending, then stop the thread."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self.thread.join(timeout)


__all__ = ["CountLogger", "inference_run", "log_counts", "resolve_run"]
