"""MLflow at the edges: the one module that talks to MLflow's client.

Training (the driver, and `EpochLogger` on the Ray Train controller and rank 0), inference, tuning and the demo log
through the named functions here: tracking URI, experiments, runs, params,
metrics, tags, artifacts, models. `mlflow` is imported inside each function, so
importing this module costs nothing at CLI start-up.

Ray workers run in other processes and other folders, so every URI handed
out here is absolute (an http server, or sqlite:/// and file:// with absolute
paths). MLflow 3's default `sqlite:///mlflow.db` is relative to the current
folder and its default artifact root `./mlruns` too: neither is used.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

RUN_NAME_TAG = "veernet.run_name"


def resolve_tracking_uri(configured: str | None, storage: Path) -> str:
    """configured > $MLFLOW_TRACKING_URI > sqlite:///<storage>/mlflow.db, made absolute."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"sqlite:///{(Path(storage).resolve() / 'mlflow.db')}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    if uri.startswith("file:") or "://" not in uri:
        path = uri[len("file://"):] if uri.startswith("file://") else uri[len("file:"):] if uri.startswith("file:") else uri
        return Path(path).resolve().as_uri()
    return uri


def artifact_root(tracking_uri: str, storage: Path) -> str | None:
    """Where a new experiment keeps artifacts: beside a local database, absolute; the server's default otherwise."""
    if tracking_uri.startswith(("sqlite:", "file:")):
        return (Path(storage).resolve() / "mlartifacts").as_uri()
    return None


def ensure_experiment(tracking_uri: str, name: str, storage: Path) -> str:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root(tracking_uri, storage))


def get_or_create_run(tracking_uri: str, experiment_id: str, run_name: str, *, tags: Mapping[str, str] | None = None,
                      parent_run_id: str | None = None, resume: bool = True) -> tuple[str, bool]:
    """(run_id, resumed): the run tagged with this name in the experiment, or a new one."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    if resume:
        found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
                                   order_by=["attributes.start_time DESC"], max_results=1)
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                client.update_run(run_id, status="RUNNING")
            return run_id, True
    all_tags = {RUN_NAME_TAG: run_name, "mlflow.runName": run_name, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, tags=all_tags, run_name=run_name)
    return run.info.run_id, False


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)[:500]  # MLflow caps a param value's length
    return out


def log_params(tracking_uri: str, run_id: str, params: Mapping[str, Any]) -> None:
    """Log params once; a resumed run keeps the values it started with (MLflow forbids changing them)."""
    import mlflow
    from mlflow.entities import Param

    client = mlflow.MlflowClient(tracking_uri)
    existing = client.get_run(run_id).data.params
    new = [Param(k, v) for k, v in flatten(params).items() if k not in existing]
    for i in range(0, len(new), 100):
        client.log_batch(run_id, params=new[i : i + 100])


def log_metrics(tracking_uri: str, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
    """Log numeric metrics at `step` in one batch; non-numbers, the `epoch` key and NaN/inf are left out."""
    import mlflow
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()
             if isinstance(v, (int, float)) and k != "epoch" and math.isfinite(float(v))]
    if batch:
        mlflow.MlflowClient(tracking_uri).log_batch(run_id, metrics=batch)


def logged_steps(tracking_uri: str, run_id: str, key: str) -> set[int]:
    """The steps at which `key` has been logged in the run."""
    import mlflow

    return {m.step for m in mlflow.MlflowClient(tracking_uri).get_metric_history(run_id, key)}


def set_tag(tracking_uri: str, run_id: str, key: str, value: str) -> None:
    import mlflow

    mlflow.MlflowClient(tracking_uri).set_tag(run_id, key, value)


def log_artifact(tracking_uri: str, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """One file into the run's artifacts (under `artifact_path`)."""
    import mlflow

    mlflow.MlflowClient(tracking_uri).log_artifact(run_id, str(path), artifact_path)


def log_artifacts(tracking_uri: str, run_id: str, folder: str | Path, artifact_path: str | None = None) -> None:
    """A folder's files into the run's artifacts (under `artifact_path`)."""
    import mlflow

    mlflow.MlflowClient(tracking_uri).log_artifacts(run_id, str(folder), artifact_path)


def finish_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Close a run: FINISHED, FAILED or KILLED."""
    import mlflow

    mlflow.MlflowClient(tracking_uri).set_terminated(run_id, status)


def find_run(tracking_uri: str, experiment_id: str, run_name: str):
    """The latest run tagged with this run name in the experiment (an MLflow Run), or None."""
    import mlflow

    found = mlflow.MlflowClient(tracking_uri).search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def run_exists(tracking_uri: str, run_id: str) -> bool:
    """Whether the store at `tracking_uri` holds run `run_id`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient(tracking_uri).get_run(run_id)
        return True
    except MlflowException:
        return False


def reader(tracking_uri: str):
    """An MLflow client for read-only queries (searching runs and experiments: `veernet compare`)."""
    import mlflow

    return mlflow.MlflowClient(tracking_uri)


class EpochLogger:
    """Per-epoch logging into the run the driver created (the same run after a restart).

    spec: {"tracking_uri", "run_id"} from the driver, or None (nothing is logged).
    history: the epochs a resumed checkpoint holds, all committed by Ray Train; those MLflow
    lacks (the controller lost between the commit and its logging) are logged now, so a
    resumed run heals its metrics. The controller's `EpochsToMlflow` passes none.
    """

    def __init__(self, spec: Mapping[str, str] | None, history: Sequence[Mapping[str, float]] = ()):
        self.uri = self.run_id = None
        if not spec:
            return
        import mlflow

        mlflow.set_tracking_uri(spec["tracking_uri"])
        self.uri, self.run_id = spec["tracking_uri"], spec["run_id"]
        if not history:
            return
        logged = logged_steps(self.uri, self.run_id, "train_loss")
        for h in history:
            if int(h["epoch"]) not in logged:
                log_metrics(self.uri, self.run_id, h, step=int(h["epoch"]))

    def log_epoch(self, metrics: Mapping[str, Any], epoch: int, overlay_dir: Path | None) -> None:
        if self.run_id is None:
            return
        log_metrics(self.uri, self.run_id, metrics, step=epoch)
        if overlay_dir is not None and overlay_dir.exists():
            log_artifacts(self.uri, self.run_id, overlay_dir, f"overlays/epoch_{epoch:04d}")


def register_model(tracking_uri: str, run_id: str, artifact_path: str, name: str) -> str:
    """Register `runs:/<run>/<artifact_path>` as a new version of `name`; returns the version.

    A plain state-dict artifact is not an MLflow "logged model", so the
    registry's low-level create_model_version is used rather than
    mlflow.register_model (which looks for one).
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    client = mlflow.MlflowClient(tracking_uri)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise  # anything but "already registered" is a real failure
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    return client.create_model_version(name, source=source, run_id=run_id).version


def download_model(tracking_uri: str, model_uri: str, dst: Path) -> Path:
    """`models:/name/version` (or runs:/...) -> local folder holding checkpoint.pt."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # models:/ resolves through the registry, not the tracking store
    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(dst)))
