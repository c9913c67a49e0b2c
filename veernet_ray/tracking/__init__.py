"""MLflow at the edges: tracking URI, runs, models.

Ray workers run in other processes and other folders, so every URI handed
out here is absolute (an http server, or sqlite:/// and file:// with absolute
paths). MLflow 3's default `sqlite:///mlflow.db` is relative to the current
folder and its default artifact root `./mlruns` too: neither is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

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


def register_model(tracking_uri: str, run_id: str, artifact_path: str, name: str) -> str:
    """Register `runs:/<run>/<artifact_path>` as a new version of `name`; returns the version.

    A plain state-dict artifact is not an MLflow "logged model", so the
    registry's low-level create_model_version is used rather than
    mlflow.register_model (which looks for one).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri)
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass  # already registered
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    return client.create_model_version(name, source=source, run_id=run_id).version


def download_model(tracking_uri: str, model_uri: str, dst: Path) -> Path:
    """`models:/name/version` (or runs:/...) -> local folder holding checkpoint.pt."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # models:/ resolves through the registry, not the tracking store
    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(dst)))
