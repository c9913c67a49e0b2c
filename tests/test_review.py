"""`veernet review`: the edit operations, the LAS rewrite, the store's saving and versioning, the HTTP
server's refusals, export to the dataset contract, MLflow counts, and the page in a real headless Chromium.

Test data: one generated seed-size scan (the project's generator), digitised with the shipped weights
through the inference stages (`decode_row` -> `ModelStage` -> `write_row`, the code Ray Data runs),
without starting Ray. The shipped model flags both curves of it (it traces curve 2 on curve 1's ink).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT

# Debian's chromium and chromium-driver (the Makefile installs them); never a downloaded browser
CHROMIUM = Path(shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
#: the README's screenshot: the browser test writes it only when asked (VEERNET_SCREENSHOTS=1), never
#: as a side effect of a test run; otherwise it goes to the test's own temp folder
SCREENSHOT = ROOT / "docs" / "review.png"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def inferred(tmp_path_factory) -> dict:
    """A generated scan digitised with the shipped weights: {root, out, data, scan_id}."""
    from veernet_ray.infer.listing import list_inputs
    from veernet_ray.infer.pipeline import QC_COLUMNS, model_provenance
    from veernet_ray.infer.stages import ModelStage, _objects, decode_row, write_row
    from veernet_ray.synth import generate_dataset
    from veernet_ray.weights import SHIPPED

    root = tmp_path_factory.mktemp("review")
    generate_dataset(root / "data", n=1, seed=5, preset="seed", width=(1500, 1700), workers=1, progress=False,
                     split=(1, 0, 0))
    out = root / "out"
    listing = list_inputs(str(root / "data"), out)
    provenance, _ = model_provenance(SHIPPED, "shipped")
    stage = ModelStage(SHIPPED.read_bytes(), batch_size=1)
    qc = []
    for item in listing.items:
        row = decode_row(item.row())
        batch = {k: np.array([row[k]], dtype=object) for k in row if k not in ("image", "probs")}
        batch["image"] = _objects([row["image"]])
        row.update(probs=stage(batch)["probs"][0])
        res = write_row(row, provenance=provenance, output=str(out), overlays="none")
        assert res["status"] == "done", res["message"]
        qc += json.loads(res["qc"])
    table = pd.DataFrame(qc, columns=QC_COLUMNS)
    # the tests step through two flagged curves; whether QC flags them depends on the shipped
    # model and QC's thresholds, which change as they improve, so a curve QC passed is flagged here
    passed = ~table["flagged"].astype(bool)
    table.loc[passed, "flagged"] = True
    table.loc[passed, "reason"] = "flagged by the review tests (QC passed it)"
    table.to_parquet(out / "qc.parquet", index=False)
    return {"root": root, "out": out, "data": root / "data", "scan_id": listing.items[0].id}


@pytest.fixture()
def out(inferred, tmp_path) -> Path:
    """A fresh copy of the inference output for one test."""
    dst = tmp_path / "out"
    shutil.copytree(inferred["out"], dst)
    return dst


def _store(out: Path, who: str = "tester"):
    from veernet_ray.review.store import ReviewStore

    return ReviewStore(out, reviewer=who)


def _las_data(path: Path) -> list[str]:
    return path.read_text().split("\n~A", 1)[1].splitlines()[1:]


def _ink_centres(data: Path, scan_id: str, class_id: int, other: int) -> list[tuple[int, float]]:
    """(column, row of curve `class_id`'s ink centre) from the generator's mask, where the other curve is far."""
    from veernet_ray.io import read_image

    mask = read_image(next(data.rglob(f"{scan_id}.mask.tif")))
    out = []
    for c in range(180, 620, 3):
        own = np.flatnonzero(mask[:, c] == class_id)
        far = np.flatnonzero(mask[:, c] == other)
        if 1 <= own.size <= 8 and np.ptp(own) <= 8 and (far.size == 0 or np.min(np.abs(far - own.mean())) > 30):
            out.append((c, float(own.mean())))
    return out


# ------------------------------------------------------------------ edit operations (pure)
def test_snap_to_ink_lands_on_the_nearest_stroke_centre():
    from veernet_ray.review.edits import EditError, snap_to_ink

    ink = np.zeros((60, 10), np.float32)
    ink[20:24, 5] = [0.5, 1.0, 1.0, 0.5]  # a 4-row stroke centred on 21.5
    ink[40:42, 5] = 1.0  # another stroke, centre 40.5
    assert snap_to_ink(ink, 5, 25.0) == pytest.approx(21.5)
    assert snap_to_ink(ink, 5, 19.0) == pytest.approx(21.5)
    assert snap_to_ink(ink, 5, 37.0) == pytest.approx(40.5)  # nearer the second stroke
    assert snap_to_ink(ink, 5, 31.0, radius=5) == 31.0  # no ink within reach: the click stands
    assert snap_to_ink(ink, 4, 21.0) == 21.0  # no ink in that column
    with pytest.raises(EditError, match="outside the scan"):
        snap_to_ink(ink, 12, 5.0)


def test_redraw_interpolates_through_the_points_and_marks_them_reviewed():
    from veernet_ray.review.edits import REVIEWED_CONF, EditError, redraw

    cols = np.arange(10, dtype=float)
    rows, conf = np.full(10, 50.0), np.full(10, 0.3)
    new_rows, new_conf, idx = redraw(rows, conf, cols, [(6, 30.0), (2, 10.0)])  # any order
    assert idx.tolist() == [2, 3, 4, 5, 6]
    assert new_rows.tolist() == [50, 50, 10, 15, 20, 25, 30, 50, 50, 50]
    assert new_conf[idx].tolist() == [REVIEWED_CONF] * 5 and new_conf[0] == 0.3
    assert rows.tolist() == [50.0] * 10  # inputs untouched
    with pytest.raises(EditError, match="at least two"):
        redraw(rows, conf, cols, [(2, 10.0)])
    with pytest.raises(EditError, match="share a column"):
        redraw(rows, conf, cols, [(2, 10.0), (2, 12.0)])
    with pytest.raises(EditError, match="no LAS depth"):
        redraw(rows, conf, cols, [(2.2, 10.0), (2.8, 12.0)])


def test_swap_exchanges_positions_and_absent_and_reject_write_null():
    from veernet_ray.review.edits import mark_absent, reject, span, swap

    cols = np.array([0.0, 1.5, 3.0, 4.5, 6.0])
    a, ca = np.array([1.0, 2, 3, 4, 5]), np.full(5, 0.9)
    b, cb = np.array([10.0, 20, 30, 40, 50]), np.full(5, 0.2)
    assert span(cols, 4.5, 1.0).tolist() == [1, 2, 3]
    ra, rca, rb, rcb, idx = swap(a, ca, b, cb, cols, 1.0, 4.5)
    assert ra.tolist() == [1, 20, 30, 40, 5] and rb.tolist() == [10, 2, 3, 4, 50]
    assert rca.tolist() == [0.9, 0.2, 0.2, 0.2, 0.9] and idx.tolist() == [1, 2, 3]
    assert a.tolist() == [1, 2, 3, 4, 5]
    r, c, idx = mark_absent(a, ca, cols, 3.0, 6.0)
    assert np.isnan(r[2:]).all() and r[:2].tolist() == [1, 2] and c[2:].tolist() == [0, 0, 0]
    r, c, idx = reject(a, ca)
    assert np.isnan(r).all() and (c == 0).all() and idx.tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ LAS rewrite and the store
def test_las_table_round_trips_byte_for_byte(inferred, tmp_path):
    from veernet_ray.review.scan import read_las_table, write_las_table

    src = inferred["out"] / f"{inferred['scan_id']}.las"
    write_las_table(tmp_path / "copy.las", read_las_table(src))
    assert (tmp_path / "copy.las").read_bytes() == src.read_bytes()


def test_redraw_rewrites_the_las_records_the_review_and_updates_qc(out, inferred):
    from veernet_ray.review.scan import read_las_table

    sid = inferred["scan_id"]
    store = _store(out)
    las = out / f"{sid}.las"
    before_lines = _las_data(las)
    state = store.scan_state(sid)
    flagged = store.queue()["items"][0]
    curve = flagged["curve"]
    pts = [[300.0, 200.0], [420.0, 260.0], [520.0, 240.0]]
    new = store.apply({"scan_id": sid, "curve": curve, "action": "redraw", "version": state["version"],
                       "points": pts, "who": "ana"})
    assert new["version"] == 1
    review = pd.read_parquet(out / "reviews.parquet")
    assert len(review) == 1
    r = review.iloc[0]
    assert (r["who"], r["action"], r["curve"], r["version"]) == ("ana", "redraw", curve, 1)
    assert pd.Timestamp(r["at"]).tzinfo is not None and abs(time.time() - pd.Timestamp(r["at"]).timestamp()) < 120
    snapped = np.array(json.loads(r["points"]))
    assert snapped[:, 0].tolist() == [300.0, 420.0, 520.0]
    # the LAS: values inside the stretch on the line through the snapped points, CONF 1; outside, same bytes
    table = read_las_table(las)
    _, geo, _ = store._open(sid)
    inside = (geo.cols >= 300) & (geo.cols <= 520)
    rows = geo.rows_of(curve, table.values(curve))
    np.testing.assert_allclose(rows[inside], np.interp(geo.cols[inside], snapped[:, 0], snapped[:, 1]), atol=0.01)
    assert (table.conf(curve)[inside] == 1.0).all()
    after_lines = _las_data(las)
    assert len(after_lines) == len(before_lines)
    changed = [i for i, (x, y) in enumerate(zip(before_lines, after_lines)) if x != y]
    assert changed and set(changed) <= set(np.flatnonzero(inside).tolist())
    # before/after in the review row are the LAS rows of the stretch
    b, a = json.loads(r["before"]), json.loads(r["after"])
    lo, hi = b["rows"]
    assert (lo, hi) == (int(np.flatnonzero(inside)[0]), int(np.flatnonzero(inside)[-1]) + 1)
    np.testing.assert_allclose(a["curves"][curve][curve], table.values(curve)[lo:hi])
    # ~P provenance: reviewed, with what, by whom
    p = table.params
    assert p["REVIEWED"][0] == "yes" and p["REVIEW_BY"][0] == "ana" and p["REVIEW_N"][0] == "1"
    assert p["REVIEW_TOOL"][0].startswith("veernet review") and p[f"{curve}_REV"][0] == "corrected"
    assert p["CKPT"][0] and p["MODEL"][0].startswith("VeerNet")  # inference provenance kept
    qc = pd.read_parquet(out / "qc.parquet")
    row = qc[(qc["scan_id"] == sid) & (qc["curve"] == curve)].iloc[0]
    assert row["review"] == "corrected" and row["reviewed_by"] == "ana" and bool(row["flagged"])
    assert store.queue()["counts"]["left"] == store.queue()["counts"]["flagged"] - 1


def test_swap_absent_reject_and_undo_back_to_the_original_bytes(out, inferred):
    sid = inferred["scan_id"]
    store = _store(out)
    las = out / f"{sid}.las"
    original = las.read_bytes()
    a, b = [c["mnemonic"] for c in store.scan_state(sid)["curves"]]
    _, geo, _ = store._open(sid)
    old = {m: geo.rows_of(m, store._open(sid)[0].values(m)) for m in (a, b)}

    s = store.apply({"scan_id": sid, "curve": b, "action": "swap", "version": 0, "from_col": 100, "to_col": 400})
    table = store._open(sid)[0]
    inside = (geo.cols >= 100) & (geo.cols <= 400)
    # positions swap, each read off its own axis (one curve may be log, the other linear)
    np.testing.assert_allclose(geo.rows_of(a, table.values(a))[inside], old[b][inside], atol=0.02)
    np.testing.assert_allclose(geo.rows_of(b, table.values(b))[inside], old[a][inside], atol=0.02)
    assert {c["mnemonic"]: c["status"] for c in s["curves"]} == {a: "corrected", b: "corrected"}

    store.apply({"scan_id": sid, "curve": a, "action": "absent", "version": 1, "from_col": 600, "to_col": 700})
    v = store._open(sid)[0].values(a)
    assert np.isnan(v[(geo.cols >= 600) & (geo.cols <= 700)]).all()
    assert np.isfinite(v[geo.cols < 590]).mean() > 0.9

    s = store.apply({"scan_id": sid, "curve": b, "action": "reject", "version": 2})
    assert np.isnan(store._open(sid)[0].values(b)).all()
    assert {c["mnemonic"]: c["status"] for c in s["curves"]}[b] == "rejected"
    qc = pd.read_parquet(out / "qc.parquet")
    assert qc.loc[qc["curve"] == b, "coverage"].item() == 0.0
    assert qc.loc[qc["curve"] == b, "review"].item() == "rejected"

    for version in (3, 4, 5):
        store.apply({"scan_id": sid, "curve": a, "action": "undo", "version": version})
    assert las.read_bytes().split(b"\n~A")[1] == original.split(b"\n~A")[1]
    with pytest.raises(Exception, match="nothing to undo"):
        store.apply({"scan_id": sid, "curve": a, "action": "undo", "version": 6})
    review = pd.read_parquet(out / "reviews.parquet")
    assert review["action"].tolist() == ["swap", "absent", "reject", "undo", "undo", "undo"]
    assert review["undoes"].tolist() == [-1, -1, -1, 3, 2, 1]
    assert store.queue()["counts"]["left"] == store.queue()["counts"]["flagged"]  # every status back to none


def test_a_stale_version_is_refused_and_changes_nothing(out, inferred):
    from veernet_ray.review.store import StaleError

    sid = inferred["scan_id"]
    tab1, tab2 = _store(out, "tab1"), _store(out, "tab2")
    curve = tab1.scan_state(sid)["curves"][0]["mnemonic"]
    v = tab2.scan_state(sid)["version"]
    tab1.apply({"scan_id": sid, "curve": curve, "action": "reject", "version": v})
    las = (out / f"{sid}.las").read_bytes()
    with pytest.raises(StaleError, match=r"changed since this page loaded it.*by tab1 \(reject"):
        tab2.apply({"scan_id": sid, "curve": curve, "action": "accept", "version": v})
    assert (out / f"{sid}.las").read_bytes() == las
    assert len(pd.read_parquet(out / "reviews.parquet")) == 1

    # two writers at the same moment on the same version: exactly one wins
    results: list[str] = []

    def go(store):
        try:
            store.apply({"scan_id": sid, "curve": curve, "action": "accept", "version": 1})
            results.append("ok")
        except StaleError:
            results.append("stale")

    threads = [threading.Thread(target=go, args=(s,)) for s in (tab1, tab2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "stale"]
    assert len(pd.read_parquet(out / "reviews.parquet")) == 2


def test_queue_is_worst_first_with_reasons():
    from veernet_ray.review.store import reason_categories, severity

    assert reason_categories("low coverage 0.41 < 0.60; rides a grid line: share 0.52 > 0.30; uncalibrated") == [
        "low coverage", "rides a grid line", "uncalibrated"]
    # a rule whose name holds a number keeps it (it was cut to "implausible jumps per")
    assert reason_categories("implausible jumps per 1000 columns 2.00 > 1.00; curves hard to tell apart: pen contrast"
                             " -0.10 < 0.05") == ["implausible jumps per 1000 columns", "curves hard to tell apart"]
    worse = {"reason": "a 1 < 2; b 3 > 1", "coverage": 0.9, "mean_confidence": 0.9}
    better = {"reason": "a 1 < 2", "coverage": 0.2, "mean_confidence": 0.2}
    assert severity(worse) > severity(better)


# ------------------------------------------------------------------ the HTTP server's refusals
def _request(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture()
def served(out):
    from veernet_ray.review.server import make_server

    store = _store(out, "browser")
    server = make_server(store, "127.0.0.1", 0)
    server.serve_in_thread()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _raw(server, request: bytes) -> bytes:
    """Send raw bytes (paths urllib would normalise) and return the whole answer."""
    import socket

    with socket.create_connection(server.server_address[:2], timeout=30) as s:
        s.sendall(request)
        chunks = []
        while True:
            part = s.recv(65536)
            if not part:
                break
            chunks.append(part)
    return b"".join(chunks)


def test_server_refuses_traversal_oversized_requests_and_writes_outside_out(served, out, inferred, tmp_path):
    url, sid = served.url, inferred["scan_id"]
    port = served.server_address[1]
    assert _request(url)[0] == 200 and b"veernet review" in _request(url)[1]
    for path in (b"/static/../../../../etc/passwd", b"/static/%2e%2e/%2e%2e/etc/passwd", b"/../qc.parquet",
                 b"//etc/passwd", b"/static/review.js/../../qc.parquet", b"/qc.parquet", b"/reviews.parquet"):
        answer = _raw(served, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        assert answer.startswith(b"HTTP/1.0 404") or answer.startswith(b"HTTP/1.1 404"), (path, answer[:80])
        assert b"root:" not in answer and b"PAR1" not in answer
    for bad in ("../../etc/passwd", "/etc/passwd", f"{sid}/../x", ""):
        code, body = _request(f"{url}api/scan?id={urllib.request.quote(bad)}")
        assert code in (400, 404), (bad, code)
        assert b"unknown scan" in body or b"missing" in body
    # tiles: only TILE-wide strips at the levels the page uses, never the whole scan
    code, png = _request(f"{url}api/tile?id={sid}&x=0&level=1")
    import cv2

    tile = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert code == 200 and tile.shape[1] == 512
    assert _request(f"{url}api/tile?id={sid}&x=100&level=1")[0] == 400
    assert _request(f"{url}api/tile?id={sid}&x=0&level=3")[0] == 400
    # a foreign Host header (DNS rebinding) is refused
    assert _request(f"{url}api/queue", headers={"Host": f"evil.example:{port}"})[0] == 403

    las = out / f"{sid}.las"
    las_bytes = las.read_bytes()
    big = json.dumps({"scan_id": sid, "action": "accept", "version": 0, "pad": "x" * 300_000}).encode()
    code, body = _request(f"{url}api/action", big, {"Content-Type": "application/json"})
    assert code == 413 and b"limit" in body
    code, body = _request(f"{url}api/action", b"scan_id=x", {"Content-Type": "application/x-www-form-urlencoded"})
    assert code == 415
    code, body = _request(f"{url}api/action", b"{not json", {"Content-Type": "application/json"})
    assert code == 400
    curve = served.store.scan_state(sid)["curves"][0]["mnemonic"]
    for bad, says in (({"action": "redraw", "points": [[5, 5], [5, 9]]}, b"share a column"),
                      ({"action": "redraw", "points": [[5, 5]]}, b"2 to"),
                      ({"action": "absent", "from_col": "a", "to_col": 3}, b"from_col"),
                      ({"action": "erase"}, b"unknown action"), ({"action": "accept", "curve": "NOPE"}, b"no curve")):
        body = json.dumps({"scan_id": sid, "curve": curve, "version": 0, **bad}).encode()
        code, answer = _request(f"{url}api/action", body, {"Content-Type": "application/json"})
        assert code == 400 and says in answer, (bad, code, answer)
    assert las.read_bytes() == las_bytes and not (out / "reviews.parquet").exists()

    # qc.parquet tampered to name a file outside OUT, and a LAS that is a link out of OUT: refused
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.las"
    victim.write_bytes(las_bytes)
    qc = pd.read_parquet(out / "qc.parquet")
    for target in ("/etc/passwd", str(outside / "..")):
        qc["las"] = target
        qc.to_parquet(out / "qc.parquet", index=False)
        served.store._load_qc()
        code, body = _request(f"{url}api/action", json.dumps({"scan_id": sid, "curve": "x", "action": "accept",
                                                               "version": 0}).encode(),
                              {"Content-Type": "application/json"})
        assert code == 400 and b"refusing" in body, body
    qc["las"] = str(las)
    qc.to_parquet(out / "qc.parquet", index=False)
    las.unlink()
    las.symlink_to(victim)
    served.store._load_qc()
    code, body = _request(f"{url}api/action", json.dumps({"scan_id": sid, "curve": "x", "action": "accept",
                                                           "version": 0}).encode(), {"Content-Type": "application/json"})
    assert code == 400 and b"refusing" in body
    assert victim.read_bytes() == las_bytes and not (out / "reviews.parquet").exists()
    assert sorted(p.name for p in outside.iterdir()) == ["victim.las"]


# ------------------------------------------------------------------ export -> training data, MLflow
def test_export_makes_training_samples_that_a_training_batch_takes(out, inferred, tmp_path):
    import torch

    from veernet_ray.data.collate import pad_collate, to_tensors
    from veernet_ray.data.manifest import read_manifest
    from veernet_ray.data.pipeline import load_items
    from veernet_ray.io import read_image
    from veernet_ray.las.lasfile import read_las_curves
    from veernet_ray.losses import build_loss
    from veernet_ray.model import VeerNet, VeerNetConfig
    from veernet_ray.review.cli import main
    from veernet_ray.trace.ink import darkness
    from veernet_ray.train.loop import accumulate_gradients

    sid = inferred["scan_id"]
    store = _store(out)
    a, b = [c["mnemonic"] for c in store.scan_state(sid)["curves"]]
    dataset = tmp_path / "dataset"
    # a flagged curve nobody reviewed blocks the scan: its ink would be taught as background
    store.apply({"scan_id": sid, "curve": a, "action": "accept", "version": 0})
    assert main(["export", str(out), "--to", str(dataset), "--no-tracking"]) == 1
    store.apply({"scan_id": sid, "curve": b, "action": "redraw", "version": 1,
                 "points": [[200.0, 300.0], [300.0, 320.0]]})
    base = inferred["data"] / "manifest.parquet"
    assert main(["export", str(out), "--to", str(dataset), "--mix-with", str(base), "--no-tracking"]) == 0

    df = read_manifest(dataset / "manifest.parquet", check_files=True)
    review = df[df["source"] == "review"]
    assert review["id"].tolist() == [f"review-{sid}"] and review["split"].tolist() == ["train"]
    assert sid not in set(df["id"])  # the base row of the reviewed scan is dropped: never train and test on one scan
    r = review.iloc[0]
    image, mask = read_image(r["image"]), read_image(r["mask"])
    assert image.shape == mask.shape == (r["height"], r["width"])
    assert set(np.unique(mask)) <= {0, 1, 2} and (mask == 1).sum() > 500 and (mask == 2).sum() > 200
    assert (darkness(image)[mask > 0] > 0.2).all()  # a mask pixel is a pixel of ink
    depth, curves, unit = read_las_curves(r["las"])
    assert set(curves) == {a, b} and unit in ("FT", "M")
    np.testing.assert_allclose(curves[a], store._open(sid)[0].values(a), equal_nan=True)
    assert json.loads(Path(r["calibration"]).read_text())["orientation"] == "depth_along_width"

    # one gradient step of a tiny VeerNet on the exported sample, through the training collate
    items = [it for it in load_items(dataset / "manifest.parquet", "train") if it.id == f"review-{sid}"]
    batch = to_tensors(pad_collate([read_image(items[0].image)[:, :512]], [read_image(items[0].mask)[:, :512]]))
    torch.manual_seed(0)
    model = VeerNet(VeerNetConfig(stem_width=8, widths=(8, 16, 16, 32, 32)))
    loss = accumulate_gradients(model, build_loss("sce"), [batch], device="cpu")
    assert np.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_review_counts_go_to_the_inference_run_in_mlflow(out, inferred, mlflow_server):
    import mlflow

    from veernet_ray import tracking
    from veernet_ray.review.tracking import CountLogger

    # the run `veernet infer` made and recorded in OUT/.veernet/last_summary.json (pipeline._log_mlflow)
    exp = tracking.ensure_experiment(mlflow_server, "veernet-infer", out / ".veernet")
    run_id, _ = tracking.get_or_create_run(mlflow_server, exp, f"infer-{out.parent.name}", resume=False)
    (out / ".veernet" / "last_summary.json").write_text(json.dumps({"mlflow_run_id": run_id,
                                                                    "tracking_uri": mlflow_server}))
    store = _store(out)
    logger = CountLogger(out, say=lambda m: None)
    store.listeners.append(logger)
    sid = inferred["scan_id"]
    a, b = [c["mnemonic"] for c in store.scan_state(sid)["curves"]]
    store.apply({"scan_id": sid, "curve": a, "action": "accept", "version": 0})
    store.apply({"scan_id": sid, "curve": b, "action": "reject", "version": 1})
    logger.close()
    assert logger.logged >= 1
    client = mlflow.MlflowClient(mlflow_server)
    run = client.get_run(run_id)  # the run inference recorded, not a new one
    assert run.data.metrics["review_accepted"] == 1 and run.data.metrics["review_rejected"] == 1
    assert run.data.metrics["review_left"] == store.counts()["left"]
    assert client.get_metric_history(run_id, "review_actions")[-1].step == 2
    assert not client.search_runs([exp], filter_string="tags.`veernet.stage` = 'review'")  # no review run made


# ------------------------------------------------------------------ the command line
def test_cli_help_errors_and_host_warning(out, capsys):
    from veernet_ray.review.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "127.0.0.1" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0 and "source=review" in capsys.readouterr().out
    assert main([str(out / "nope")]) == 2
    err = capsys.readouterr().err
    assert "veernet infer" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(out)])
    assert exit_.value.code == 2 and "--to" in capsys.readouterr().err
    # the real command, opened to the network: it warns, and serves
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    veernet = [sys.executable, "-m", "veernet_ray.cli"]
    proc = subprocess.Popen(veernet + ["review", str(out), "--host", "0.0.0.0", "--port", "0", "--no-tracking"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = ""
        deadline = time.time() + 60
        while time.time() < deadline and not url:
            line = proc.stdout.readline()
            if "open http" in line:
                url = line.split("open ")[1].split()[0]
        assert url, proc.stderr.read() if proc.poll() is not None else "no URL printed"
        code, body = _request(url + "api/queue")
        assert code == 200 and json.loads(body)["counts"]["flagged"] >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "WARNING" in proc.stderr.read()


# ------------------------------------------------------------------ the page, in a real browser
def _save_screenshot(png: bytes, path: Path) -> None:
    """The README's screenshot, in 256 colours (a third of the bytes; the same file on every run)."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(path, optimize=True)


def _chrome():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): `apt-get install chromium "
                    "chromium-driver` (make install does it as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    # the OS's chromedriver, given explicitly: Selenium Manager never looks for (or downloads) a browser
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def test_browser_steps_through_a_flagged_curve_and_corrects_a_stretch(served, out, inferred):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from veernet_ray.review.scan import read_las_table

    sid = inferred["scan_id"]
    store = served.store

    def clicks(cid: int) -> list[tuple[int, float]]:
        """A click every 14+ columns along the curve's clean stretch, as a person would."""
        picks: list[tuple[int, float]] = []
        for col, row in _ink_centres(inferred["data"], sid, cid, 3 - cid):
            if not picks or col - picks[-1][0] >= 14:
                picks.append((col, row))
        return picks

    # the queue is worst first, and which curve is worst depends on the shipped model: correct the
    # first one in it with a clean stretch of ink to click along (the other curve far from it)
    queued = store.queue()["items"]
    pick = next((i for i, it in enumerate(queued) if len(clicks(it["class_id"])) >= 6), None)
    assert pick is not None, "the generated scan has no clean stretch of either curve"
    curve, picks = queued[pick]["curve"], clicks(queued[pick]["class_id"])

    d = _chrome()
    try:
        wait = WebDriverWait(d, 30)
        d.get(served.url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#queue li"))
        first = d.find_elements(By.CSS_SELECTOR, "#queue li")[pick]
        assert (first.get_attribute("data-scan"), first.get_attribute("data-curve")) == (sid, curve)
        left = int(d.find_element(By.ID, "left").get_attribute("data-left"))
        assert f"{left} of" in d.find_element(By.ID, "left").text
        # filters: by curve, then by a reason only some curves have
        items = store.queue()["items"]
        Select(d.find_element(By.ID, "f-curve")).select_by_value(curve)
        assert [li.get_attribute("data-curve") for li in d.find_elements(By.CSS_SELECTOR, "#queue li")] == [curve]
        Select(d.find_element(By.ID, "f-curve")).select_by_value("")
        rare = min({r for it in items for r in it["reasons"]}, key=lambda r: sum(r in it["reasons"] for it in items))
        Select(d.find_element(By.ID, "f-reason")).select_by_value(rare)
        shown = len(d.find_elements(By.CSS_SELECTOR, "#queue li"))
        assert shown == sum(rare in it["reasons"] for it in items)
        Select(d.find_element(By.ID, "f-reason")).select_by_value("")
        assert len(d.find_elements(By.CSS_SELECTOR, "#queue li")) == len(items)
        who = d.find_element(By.ID, "who")
        who.clear()
        who.send_keys("browser-test")
        # a second tab opens the same curve before the first saves: its write must be refused later
        tab_a = d.current_window_handle
        d.switch_to.new_window("tab")
        tab_b = d.current_window_handle
        d.get(served.url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#queue li"))
        d.find_elements(By.CSS_SELECTOR, "#queue li")[pick].click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-version") == "0")
        d.switch_to.window(tab_a)

        d.find_elements(By.CSS_SELECTOR, "#queue li")[pick].click()
        canvas = d.find_element(By.ID, "canvas")
        wait.until(lambda d: canvas.get_attribute("data-tiles-drawn") not in (None, "0"))
        assert d.find_element(By.TAG_NAME, "body").get_attribute("data-scan") == sid
        assert curve in d.find_element(By.ID, "title").text
        # tiles: strips of the visible columns, never the whole scan in one image
        tiles = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                                 ".filter(n => n.includes('/api/tile'))")
        assert len(tiles) >= 2 and all("level=1" in t for t in tiles)
        def at(col: float, row: float) -> tuple[float, float]:
            """Where an image point is in the browser window (the canvas maps image -> canvas pixels)."""
            return d.execute_script("const [x, y] = window.veernetReview.toCanvas(arguments[0], arguments[1]);"
                                    "const r = document.getElementById('canvas').getBoundingClientRect();"
                                    "return [r.left + x, r.top + y]", col, row)

        def pointer(col: float, row: float, click: bool = False) -> None:
            actions = ActionBuilder(d)
            actions.pointer_action.move_to_location(*[int(round(v)) for v in at(col, row)])
            if click:
                actions.pointer_action.click()
            actions.perform()

        # the LAS values under the cursor
        pointer(400, 100)
        wait.until(lambda d: "depth" in d.find_element(By.ID, "readout").text)
        readout = d.find_element(By.ID, "readout").text
        assert curve in readout and "scan col 40" in readout

        # redraw: click beside the ink (3 rows off); the server snaps each click onto the stroke
        d.find_element(By.ID, "b-redraw").click()
        for col, row in picks:
            pointer(col, row + 3, click=True)
        d.find_element(By.ID, "b-apply").click()
        wait.until(lambda d: "redraw saved" in d.find_element(By.ID, "msg").text)
        assert d.find_element(By.TAG_NAME, "body").get_attribute("data-version") == "1"
        wait.until(lambda d: int(d.find_element(By.ID, "left").get_attribute("data-left")) == left - 1)
        shot = SCREENSHOT if os.environ.get("VEERNET_SCREENSHOTS") == "1" else out / "review.png"
        _save_screenshot(d.get_screenshot_as_png(), shot)
        assert shot.stat().st_size > 10_000  # a page, not a blank

        review = pd.read_parquet(out / "reviews.parquet")
        assert len(review) == 1
        r = review.iloc[0]
        assert (r["action"], r["curve"], r["who"]) == ("redraw", curve, "browser-test")
        snapped = np.array(json.loads(r["points"]))
        # clicked 3 rows off; snapped onto the stroke centres (a steep stroke's centre is less sharp)
        err = np.abs(snapped[:, 1] - np.array([p[1] for p in picks]))
        assert np.median(err) < 1.0 and (err < 1.5).mean() >= 0.8, err
        table = read_las_table(out / f"{sid}.las")
        _, geo, _ = store._open(sid)
        inside = (geo.cols >= snapped[0, 0]) & (geo.cols <= snapped[-1, 0])
        rows = geo.rows_of(curve, table.values(curve))[inside]
        np.testing.assert_allclose(rows, np.interp(geo.cols[inside], snapped[:, 0], snapped[:, 1]), atol=0.01)
        assert table.params["REVIEW_BY"][0] == "browser-test" and table.params[f"{curve}_REV"][0] == "corrected"
        qc = pd.read_parquet(out / "qc.parquet")
        assert qc.loc[(qc["scan_id"] == sid) & (qc["curve"] == curve), "review"].item() == "corrected"

        # the stale tab tries to accept: refused with a clear message, nothing saved
        d.switch_to.window(tab_b)
        d.find_element(By.ID, "b-accept").click()
        wait.until(lambda d: d.find_element(By.ID, "msg").get_attribute("class") == "stale")
        assert "changed since this page loaded it" in d.find_element(By.ID, "msg").text
        assert len(pd.read_parquet(out / "reviews.parquet")) == 1
        d.switch_to.window(tab_a)

        # step on to the next flagged curve, accept it, then undo the acceptance
        d.find_element(By.ID, "b-next").click()
        wait.until(lambda d: curve not in d.find_element(By.ID, "title").text.split(" · ")[1])
        d.find_element(By.ID, "b-accept").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-version") == "2")
        d.find_element(By.ID, "b-undo").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-version") == "3")
        assert pd.read_parquet(out / "reviews.parquet")["action"].tolist() == ["redraw", "accept", "undo"]
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "409" not in e["message"]]
        assert not errors, errors
    finally:
        d.quit()
