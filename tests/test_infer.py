"""End-to-end inference: `ray job submit` against a head on 127.0.0.1, bad inputs, idempotence, kill and restart.

A tiny VeerNet is trained in-process (no Ray) for a fixed number of steps on
random 512-px crops of the demo train split, so its quality does not depend
on how busy the machine is; it is graded on the val and test splits it never saw.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import BIN, ROOT

TRAIN_STEPS = 80
# measured for this 80-step model on the held-out scans, through the LAS files:
# median Pearson 0.71, median R^2 0.42 (one curve per scan is often traced well,
# R^2 0.95-0.996; the tiny model still swaps curve identity on some scans).
# The thresholds leave a margin under those figures.
MIN_CURVE1_R2_MEDIAN = 0.6


def _ray() -> str:
    return str(BIN / "ray")


@pytest.fixture(scope="module")
def trained_ckpt(demo_data, tmp_path_factory) -> Path:
    import torch

    from veernet_ray.data.collate import pad_collate, to_tensors
    from veernet_ray.data.pipeline import load_items
    from veernet_ray.io import read_image
    from veernet_ray.losses import build_loss
    from veernet_ray.model import VeerNet, VeerNetConfig
    from veernet_ray.model.checkpoint import save_checkpoint
    from veernet_ray.train.loop import accumulate_gradients

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    items = load_items(demo_data, "train")
    imgs = [read_image(it.image) for it in items]
    masks = [read_image(it.mask) for it in items]
    model = VeerNet(VeerNetConfig(stem_width=8, widths=(8, 16, 16, 32, 32)))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss = build_loss("sce")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in range(TRAIN_STEPS):
            crops, cmasks = [], []
            for i in rng.choice(len(imgs), 4):
                x = int(rng.integers(0, max(1, imgs[i].shape[1] - 512)))
                crops.append(imgs[i][:, x : x + 512])
                cmasks.append(masks[i][:, x : x + 512])
            opt.zero_grad()
            accumulate_gradients(model, loss, [to_tensors(pad_collate(crops, cmasks))], device="cpu")
            opt.step()
    finally:
        torch.set_num_threads(threads)
    d = tmp_path_factory.mktemp("model")
    return save_checkpoint(d, model=model)


def _bad_input_manifest(demo_data: Path, root: Path) -> tuple[Path, dict[str, str], list[str]]:
    """Good held-out scans plus one of every bad input, in one manifest.

    Returns (manifest, expected error kind per id, ids expected to be digitised).
    """
    import tifffile

    from veernet_ray.data.manifest import read_manifest, write_manifest
    from veernet_ray.io import read_image, write_tiff

    src = read_manifest(demo_data)
    good = src[src["split"].isin(["val", "test"])]
    rows, expected, done = [], {}, []

    def add(scan_id: str, image: Path, sidecar: Path | None = None, las: str | None = None) -> None:
        rows.append({"id": scan_id, "image": os.path.relpath(image, root), "mask": None,
                     "las": None if las is None else os.path.relpath(las, root),
                     "calibration": None if sidecar is None else os.path.relpath(sidecar, root),
                     "width": 1, "height": 1, "split": "test", "source": "synthetic"})

    for r in good.itertuples(index=False):
        add(r.id, Path(r.image), Path(r.calibration), r.las)
        done.append(r.id)
    first = good.iloc[0]
    img = read_image(first["image"])
    side = Path(first["calibration"])
    # converted, then digitised
    tifffile.imwrite(root / "rgb.tif", np.repeat(img[..., None], 3, axis=2))
    add("rgb", root / "rgb.tif", side, first["las"])
    tifffile.imwrite(root / "deep.tif", img.astype(np.uint16) * 257)
    add("deep16", root / "deep.tif", side, first["las"])
    # a huge scan: 60,000 px along depth, digitised in overlapping tiles
    huge = np.full((64, 60_000), 250, np.uint8)
    x = np.arange(60_000)
    huge[(32 + 20 * np.sin(x / 300.0)).astype(int), x] = 0
    write_tiff(root / "huge.tif", huge)
    add("huge", root / "huge.tif")
    done += ["rgb", "deep16", "huge"]
    # bad inputs
    data = Path(first["image"]).read_bytes()
    (root / "trunc.tif").write_bytes(data[: len(data) // 2])
    add("trunc", root / "trunc.tif")
    (root / "zero.tif").write_bytes(b"")
    add("zero", root / "zero.tif")
    (root / "text.tif").write_text("this is a text file, not a TIFF\n" * 10)
    add("text", root / "text.tif")
    nan = img.astype(np.float32) / 255
    nan[5, 5] = np.nan
    tifffile.imwrite(root / "nan.tif", nan)
    add("nan", root / "nan.tif")
    write_tiff(root / "tiny.tif", np.full((16, 300), 200, np.uint8))
    add("tiny", root / "tiny.tif")
    write_tiff(root / "blank.tif", np.full((100, 800), 255, np.uint8))
    add("blank", root / "blank.tif")
    shutil.copy(first["image"], root / "badjson.tif")
    (root / "badjson.json").write_text('{"orientation": "depth_along_width", "depth": ')
    add("badjson", root / "badjson.tif", root / "badjson.json")
    shutil.copy(first["image"], root / "binjson.tif")
    (root / "binjson.json").write_bytes(b"\xff\xfe\x00garbage\x80")
    add("binjson", root / "binjson.tif", root / "binjson.json")
    shutil.copy(first["image"], root / "escape.tif")
    add("../../escape", root / "escape.tif")
    expected = {"trunc": "unreadable", "zero": "empty_file", "text": "unreadable", "nan": "non_finite",
                "tiny": "too_small", "blank": "blank", "badjson": "bad_sidecar", "binjson": "bad_sidecar",
                "../../escape": "unsafe_output_name"}
    manifest = root / "manifest.parquet"
    write_manifest(pd.DataFrame(rows), manifest)
    return manifest, expected, done


def _job(ray_head, env_base, args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [_ray(), "job", "submit", "--address", ray_head["address"], "--working-dir", str(ROOT), "--",
           sys.executable, "jobs/infer.py", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env_base, timeout=timeout)


def _direct(ray_head, env_base, args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    """The job script run as a driver that joins the head directly (no job-submission round trip)."""
    cmd = [sys.executable, str(ROOT / "jobs" / "infer.py"), "--address", ray_head["gcs"], *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env_base, timeout=timeout, cwd=ROOT)


def _las_state(out: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(out.glob("*.las"))}


def test_ray_job_submit_end_to_end_with_bad_inputs_then_idempotent(
        ray_head, mlflow_server, env_base, demo_data, trained_ckpt, tmp_path):
    import lasio

    from veernet_ray.infer.score import score_outputs
    from veernet_ray.model.checkpoint import weights_hash

    root = tmp_path / "inputs"
    root.mkdir()
    manifest, expected, done = _bad_input_manifest(demo_data, root)
    out = tmp_path / "out"
    args = ["--input", str(manifest), "--output", str(out), "--checkpoint", str(trained_ckpt),
            "--tracking-uri", mlflow_server, "--experiment", "infer-test", "--no-progress"]
    # the default batching: this 80-step model's curves are scored below, and each scan's region goes
    # with its batch (`ModelStage.valid_sizes`), so they are the curves it gets alone. Before that,
    # GroupNorm's statistics took in a batch's padding and one scan scored curve-1 R^2 0.80 alone and
    # -3.6 in this job's batches of 4, and this test ran at batch 1.
    t0 = time.time()
    res = _job(ray_head, env_base, args)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    first_s = time.time() - t0

    # one LAS per digitised scan, nothing outside the output folder
    assert sorted(p.stem for p in out.glob("*.las")) == sorted(done), log[-3000:]
    assert not (tmp_path / "escape.las").exists() and not list(tmp_path.glob("**/escape.las"))
    assert not list(out.rglob("*.part"))
    digest = weights_hash(trained_ckpt)
    for sid in done:
        las = lasio.read(str(out / f"{sid}.las"))
        depth = las.index
        assert las.well["STRT"].value == pytest.approx(depth[0]) and las.well["STOP"].value == pytest.approx(depth[-1])
        step = las.well["STEP"].value
        assert step == pytest.approx(np.diff(depth).mean(), rel=1e-6) and np.allclose(np.diff(depth), step, rtol=1e-4)
        assert las.params["CKPT"].value == digest and "VeerNet" in str(las.params["MODEL"].value)
        mnems = [c.mnemonic for c in las.curves]
        if sid == "huge":  # no sidecar: normalised output
            assert mnems == ["DEPT", "CURVE1", "CURVE1_CONF", "CURVE2", "CURVE2_CONF"]
            assert las.curves[0].unit == "PX" and len(depth) == 60_000
        else:
            assert mnems[0] == "DEPT" and len(mnems) == 5 and mnems[2].endswith("_CONF")

    # sidecar mnemonics for a calibrated scan
    from veernet_ray.data.manifest import read_manifest

    m = read_manifest(manifest).set_index("id")
    side = json.loads(Path(m.loc[done[0], "calibration"]).read_text())
    las = lasio.read(str(out / f"{done[0]}.las"))
    assert [c.mnemonic for c in las.curves][1::2] == [c["mnemonic"] for c in sorted(side["curves"],
                                                                                    key=lambda c: c["class_id"])]

    errors = pd.read_parquet(out / "errors.parquet")
    assert dict(zip(errors["id"], errors["kind"])) == expected, errors.to_string()
    assert set(errors[errors["kind"] == "blank"]["status"]) == {"skipped"}
    qc = pd.read_parquet(out / "qc.parquet")
    assert sorted(set(qc["scan_id"])) == sorted(done) and len(qc) == 2 * len(done)
    assert {"coverage", "mean_confidence", "flagged", "reason"} <= set(qc.columns)
    assert "[veernet] infer:" in log and "scans/s" in log

    # curves close to the truth on held-out scans
    score = score_outputs(out, manifest, "test")
    assert score["scans"] == len(done) - 1 and score["missing"] == 0  # all but the huge scan have truth
    print("held-out curve scores:", {k: v for k, v in score.items() if k != "per_scan"}, score["per_scan"])
    # The test's model trains for 80 tiny steps: it finds curve 1 well (R^2 ~0.95 on most scans)
    # but not yet curve 2, so closeness is asserted on curve 1 and coverage on both.
    curve1_r2 = [s["r2"][0] for s in score["per_scan"]]
    assert np.median(curve1_r2) > MIN_CURVE1_R2_MEDIAN, curve1_r2
    assert score["curve_coverage"] > 0.8

    # MLflow recorded the run
    import mlflow

    client = mlflow.MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("infer-test")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.data.metrics["done"] == len(done) and run.data.metrics["scans_per_s"] > 0
    assert run.data.params["checkpoint_hash"] == digest
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"qc.parquet", "errors.parquet"}

    # second run: nothing new written, no model batches, same exit code
    before = _las_state(out)
    tables = {n: (out / n).stat().st_mtime_ns for n in ("qc.parquet", "errors.parquet")}
    res2 = _direct(ray_head, env_base, args)
    assert res2.returncode == 0, (res2.stdout + res2.stderr)[-3000:]
    summary = json.loads((out / ".veernet" / "last_summary.json").read_text())
    assert summary["done"] == 0 and summary["complete"] == len(done) and summary["model_batches"] == 0
    assert _las_state(out) == before
    assert {n: (out / n).stat().st_mtime_ns for n in tables} == tables
    print(f"first run {first_s:.1f} s; second run summary {summary['wall_s']:.1f} s")


def test_all_failed_exits_non_zero(ray_head, env_base, trained_ckpt, tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    (src / "a.tif").write_bytes(b"")
    (src / "b.png").write_text("not a png")
    res = _direct(ray_head, env_base, ["--input", str(src), "--output", str(tmp_path / "out"),
                                       "--checkpoint", str(trained_ckpt), "--no-tracking", "--no-progress"])
    assert res.returncode == 1, res.stdout + res.stderr
    assert "2 errors" in res.stdout and "every scan failed" in res.stderr
    assert len(pd.read_parquet(tmp_path / "out" / "errors.parquet")) == 2


def test_killed_run_restarts_without_partial_or_duplicate_files(ray_head, env_base, demo_data, trained_ckpt, tmp_path):
    from veernet_ray.data.manifest import read_manifest

    src = tmp_path / "scans"
    src.mkdir()
    df = read_manifest(demo_data)
    ids = list(df["id"][:8])
    for r in df.head(8).itertuples(index=False):  # a folder input: sidecars picked up beside the scans
        shutil.copy(r.image, src / f"{r.id}.tif")
        shutil.copy(r.calibration, src / f"{r.id}.json")
    out = tmp_path / "out"
    args = ["--input", str(src), "--output", str(out), "--checkpoint", str(trained_ckpt), "--no-tracking",
            "--no-progress", "--batch-size", "1", "--overlays", "none"]
    cmd = [sys.executable, str(ROOT / "jobs" / "infer.py"), "--address", ray_head["gcs"], *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env_base, cwd=ROOT,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not list(out.glob("*.las")) and proc.poll() is None:
        time.sleep(0.2)
    killed_with = len(list(out.glob("*.las")))
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(2)  # the head reaps the dead driver's workers
    assert killed_with >= 1, proc.stdout.read().decode()[-3000:]

    res = _direct(ray_head, env_base, args)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    summary = json.loads((out / ".veernet" / "last_summary.json").read_text())
    assert summary["done"] + summary["complete"] == len(ids)
    assert sorted(p.stem for p in out.glob("*.las")) == sorted(ids)
    assert not list(out.rglob("*.part"))
    qc = pd.read_parquet(out / "qc.parquet")
    assert len(qc) == 2 * len(ids) and not qc.duplicated(["scan_id", "class_id"]).any()
