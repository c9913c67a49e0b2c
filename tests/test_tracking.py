"""veernet_ray.tracking, the one module that talks to MLflow, against a local sqlite store."""

from __future__ import annotations

import json
import math

import mlflow

from veernet_ray import tracking


def _run(tmp_path, name="r1"):
    uri = tracking.resolve_tracking_uri(None, tmp_path)
    exp = tracking.ensure_experiment(uri, "t", tmp_path)
    run_id, resumed = tracking.get_or_create_run(uri, exp, name)
    return uri, exp, run_id, resumed


def test_metrics_tags_artifacts_and_finishing(tmp_path):
    uri, exp, run_id, resumed = _run(tmp_path)
    assert not resumed and tracking.get_or_create_run(uri, exp, "r1") == (run_id, True)
    tracking.log_metrics(uri, run_id, {"a": 1, "nan": math.nan, "epoch": 3, "name": "x"}, step=2)
    tracking.set_tag(uri, run_id, "k", "v")
    (tmp_path / "f.txt").write_text("hi")
    tracking.log_artifact(uri, run_id, tmp_path / "f.txt", "files")
    tracking.finish_run(uri, run_id, "FAILED")
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.data.metrics == {"a": 1.0} and run.data.tags["k"] == "v" and run.info.status == "FAILED"
    assert tracking.logged_steps(uri, run_id, "a") == {2}
    assert tracking.find_run(uri, exp, "r1").info.run_id == run_id and tracking.find_run(uri, exp, "r2") is None
    assert [a.path for a in tracking.reader(uri).list_artifacts(run_id, "files")] == ["files/f.txt"]


def test_epoch_logger_heals_epochs_the_checkpoint_has_and_mlflow_lacks(tmp_path):
    uri, _, run_id, _ = _run(tmp_path)
    spec = {"tracking_uri": uri, "run_id": run_id}
    tracking.EpochLogger(spec, []).log_epoch({"epoch": 0, "train_loss": 0.9}, 0, None)
    history = [{"epoch": 0, "train_loss": 0.9}, {"epoch": 1, "train_loss": 0.7}]  # epoch 1 never reached MLflow
    logger = tracking.EpochLogger(spec, history)
    assert tracking.logged_steps(uri, run_id, "train_loss") == {0, 1}
    (tmp_path / "ov").mkdir()
    (tmp_path / "ov" / "val_0.png").write_bytes(b"png")
    logger.log_epoch({"epoch": 2, "train_loss": 0.5}, 2, tmp_path / "ov")
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.9), (1, 0.7), (2, 0.5)]
    assert tracking.reader(uri).list_artifacts(run_id, "overlays/epoch_0002")[0].path.endswith("val_0.png")
    tracking.EpochLogger(None, history=[]).log_epoch({"train_loss": 1.0}, 0, None)  # no MLflow: a no-op


def test_the_controller_logs_an_epoch_with_the_overlays_its_checkpoint_carries(tmp_path):
    """`EpochsToMlflow` is what Ray Train's controller calls once every rank has reported an epoch:
    rank 0's metrics at the epoch's step, the overlays from the committed checkpoint; the other
    ranks' empty reports and a report without an epoch log nothing."""
    import ray.train

    from veernet_ray.model.checkpoint import OVERLAYS_DIR
    from veernet_ray.train.epochs import EpochsToMlflow

    uri, _, run_id, _ = _run(tmp_path, "controller")
    ckpt = tmp_path / "epoch_0003"
    (ckpt / OVERLAYS_DIR).mkdir(parents=True)
    (ckpt / OVERLAYS_DIR / "val_0.png").write_bytes(b"png")
    callback = EpochsToMlflow({"tracking_uri": uri, "run_id": run_id})
    callback.after_report(None, [{"epoch": 3, "train_loss": 0.25, "val_miou_fg": float("-inf")}, {}],
                          ray.train.Checkpoint.from_directory(str(ckpt)))
    callback.after_report(None, [{}, {}], None)
    callback.after_report(None, [{"epoch": 4, "train_loss": 0.2}], None)
    client = mlflow.MlflowClient(uri)
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "train_loss")] == [(3, 0.25), (4, 0.2)]
    assert client.get_metric_history(run_id, "val_miou_fg") == []  # -inf (no validation metric) is left out
    assert [a.path for a in tracking.reader(uri).list_artifacts(run_id, "overlays/epoch_0003")] == [
        "overlays/epoch_0003/val_0.png"]
    assert tracking.reader(uri).list_artifacts(run_id, "overlays/epoch_0004") == []


def test_mlflow_down_costs_the_controller_a_warning_and_the_run_end_logs_the_epoch(tmp_path, monkeypatch, capsys):
    """A server that does not answer must not stop the training: the controller warns, and the driver
    logs the epochs the final checkpoint holds and MLflow lacks (`heal_from_checkpoint`)."""
    import torch

    from veernet_ray.model.checkpoint import CHECKPOINT_FILE
    from veernet_ray.train.epochs import EpochsToMlflow, heal_from_checkpoint

    uri, _, run_id, _ = _run(tmp_path, "healed")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    EpochsToMlflow({"tracking_uri": "http://127.0.0.1:9", "run_id": run_id}).after_report(
        None, [{"epoch": 1, "train_loss": 0.5}], None)
    mlflow.set_tracking_uri(uri)  # EpochLogger sets the process's URI (artifact URIs resolve through it)
    assert "MLflow did not take epoch 1" in capsys.readouterr().err

    tracking.log_metrics(uri, run_id, {"train_loss": 0.9}, step=0)
    ckpt = tmp_path / "epoch_0001"
    ckpt.mkdir()
    history = [{"epoch": 0, "train_loss": 0.9}, {"epoch": 1, "train_loss": 0.5}]
    torch.save({"history": json.dumps(history)}, ckpt / CHECKPOINT_FILE)
    heal_from_checkpoint({"tracking_uri": uri, "run_id": run_id}, ckpt)
    logged = mlflow.MlflowClient(uri).get_metric_history(run_id, "train_loss")
    assert sorted((m.step, m.value) for m in logged) == [(0, 0.9), (1, 0.5)]
