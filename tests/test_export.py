"""Digitised output: calibrated / uncalibrated LAS, NULLs, QC rows, safe names, and a round trip."""

from __future__ import annotations

import cv2
import lasio
import numpy as np
import pytest

from veernet_ray.las.export import (
    build_output,
    normalised_position,
    output_path,
    qc_rows,
    safe_output_name,
    write_digitised_las,
)
from veernet_ray.las.lasfile import read_las_curves
from veernet_ray.las.sidecar import Sidecar
from veernet_ray.trace import TraceResult, trace_curves



def assert_header_consistent(path):
    """LAS 2.0 rules as lasio reads the file back (same checks as tests/test_lasfile.py)."""
    las = lasio.read(str(path))
    idx = np.asarray(las.index, dtype=float)
    assert str(las.version["VERS"].value) in ("2.0", "2") and las.version["WRAP"].value == "NO"
    assert las.curves[0].mnemonic == "DEPT"
    assert float(las.well["STRT"].value) == idx[0] and float(las.well["STOP"].value) == idx[-1]
    step = float(las.well["STEP"].value)
    if step != 0:
        np.testing.assert_allclose(np.diff(idx), step, rtol=1e-6)
    for line in path.read_text().split("~A", 1)[1].splitlines()[1:]:
        [float(tok) for tok in line.split()]
    return las

H, W = 128, 600
SIDECAR = {
    "orientation": "depth_along_width",
    "depth": {"unit": "M", "ref": [{"px": 0, "depth": 1000.0}, {"px": W - 1, "depth": 1000.0 + 0.5 * (W - 1)}], "step": 0.25},
    "curves": [
        {"class_id": 1, "mnemonic": "GR", "unit": "GAPI", "scale": "linear",
         "ref": [{"px": H - 1, "value": 0.0}, {"px": 0, "value": 150.0}]},
        {"class_id": 2, "mnemonic": "ILD", "unit": "OHMM", "scale": "log",
         "ref": [{"px": H - 1, "value": 0.2}, {"px": 0, "value": 2000.0}], "wrap": {"mode": "backup", "period": 1}},
    ],
}


def truth_values(depth):
    x = (depth - 1000.0) / 300.0
    gr = 75 + 50 * np.sin(2 * np.pi * 2.2 * x)
    ild = 10 ** (1.5 + 2.0 * np.sin(2 * np.pi * 1.3 * x + 0.5))  # goes past 2000: backup wrap
    return gr, ild


def render_probs(sidecar):
    """Truth -> mask (cv2.polylines, wrapped segments split) -> blurred one-hot probabilities.

    TODO: switch to veernet_ray.synth.render_sample once the generator provides it.
    """
    cols = np.arange(W)
    depth = sidecar.depth.depth_at(cols)
    mask = np.zeros((H, W), np.uint8)
    for ca, values in zip(sidecar.curves, truth_values(depth)):
        rows = ca.row_at(values)
        if ca.wrap is not None:
            top = min(r for r, _ in ca.ref)
            rows = np.mod(rows - top, ca.wrap.period * ca.track_px) + top
        breaks = np.flatnonzero(np.abs(np.diff(rows)) > H / 2) + 1
        for seg in np.split(np.arange(W), breaks):
            pts = np.stack([seg, rows[seg]], axis=1) * 16  # 4 fractional bits
            cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, int(ca.class_id), 1, cv2.LINE_8, shift=4)
    onehot = np.stack([(mask == c).astype(np.float32) for c in range(3)])
    for c in (1, 2):
        onehot[c] = cv2.GaussianBlur(onehot[c], (1, 5), sigmaX=0, sigmaY=0.7)
    onehot[0] = np.clip(1 - onehot[1] - onehot[2], 0, 1)
    return onehot


def r2(pred, truth):
    ok = np.isfinite(pred) & np.isfinite(truth)
    return 1 - np.sum((pred[ok] - truth[ok]) ** 2) / np.sum((truth[ok] - truth[ok].mean()) ** 2), ok.mean()


def test_round_trip_truth_to_las(tmp_path):
    sidecar = Sidecar.from_dict(SIDECAR)
    probs = render_probs(sidecar)
    wrap = {c.class_id: c.wrap.period * c.track_px for c in sidecar.curves if c.wrap}
    trace = trace_curves(probs, (1, 2), wrap_px=wrap)
    log = build_output(trace, image_shape=(H, W), sidecar=sidecar)
    path = tmp_path / "scan.las"
    write_digitised_las(path, log, {"MODEL": "veernet", "CKPT": "sha256:abc"})
    las = assert_header_consistent(path)
    assert float(las.well["STEP"].value) == pytest.approx(0.25)
    assert las.keys() == ["DEPT", "GR", "GR_CONF", "ILD", "ILD_CONF"]
    assert las.curves["GR"].unit == "GAPI" and las.curves["ILD"].unit == "OHMM"
    assert las.params["MODEL"].value == "veernet"
    depth, curves, unit = read_las_curves(path)
    assert unit == "M"
    gr, ild = truth_values(depth)
    score, cover = r2(curves["GR"], gr)
    assert score > 0.99 and cover > 0.95
    assert ild.max() > 2000  # the test exercises the backup wrap
    score, cover = r2(np.log10(curves["ILD"]), np.log10(ild))
    assert score > 0.99 and cover > 0.95
    conf = curves["GR_CONF"]
    assert np.all((conf >= 0) & (conf <= 1))
    rows = qc_rows("scan", log)
    assert [r["curve"] for r in rows] == ["GR", "ILD"]
    assert not any(r["flagged"] for r in rows), rows


def fake_trace(rows, conf, class_ids=(1,)):
    rows = np.asarray(rows, float)
    return TraceResult(rows, np.asarray(conf, float), class_ids, np.zeros(rows.shape, bool), H)


def test_uncalibrated_output_and_null_where_not_confident(tmp_path):
    rows = np.full((1, 10), 63.5)
    conf = np.full((1, 10), 0.9)
    conf[0, 4] = 0.1  # not confident
    rows[0, 7] = np.nan  # absent
    log = build_output(fake_trace(rows, conf), image_shape=(H, 10), sidecar=None, min_confidence=0.3)
    path = tmp_path / "u.las"
    write_digitised_las(path, log, {"MODEL": "veernet"})
    las = assert_header_consistent(path)
    assert las.curves[0].unit == "PX"
    assert las.params["CALIB"].value == "NONE"
    assert "uncalibrated" in las.params["CALIB"].descr
    depth, curves, _ = read_las_curves(path)
    np.testing.assert_array_equal(depth, np.arange(10))
    v = curves["CURVE1"]
    assert np.isnan(v[[4, 7]]).all()
    np.testing.assert_allclose(v[~np.isnan(v)], 0.5)
    assert curves["CURVE1_CONF"][4] == pytest.approx(0.1)
    [row] = qc_rows("u", log)
    assert row["flagged"] and "uncalibrated" in row["reason"]


def test_calibrated_nulls_do_not_interpolate_across_gaps():
    sidecar = Sidecar.from_dict({**SIDECAR, "curves": SIDECAR["curves"][:1]})
    rows = np.full((1, W), 63.5)
    rows[0, 100:110] = np.nan
    log = build_output(fake_trace(rows, np.ones((1, W))), image_shape=(H, W), sidecar=sidecar)
    gr = log.curves[0].values
    assert log.depth[0] == 1000.0 and np.allclose(np.diff(log.depth), 0.25)
    px = (log.depth - 1000.0) / 0.5
    gap = (px > 99) & (px < 110)
    assert np.isnan(gr[gap]).all()
    assert np.isfinite(gr[~gap]).all()


def test_descending_columns_give_ascending_depth():
    data = {**SIDECAR, "curves": SIDECAR["curves"][:1]}
    data["depth"] = {"unit": "FT", "ref": [{"px": 0, "depth": 2000.0}, {"px": W - 1, "depth": 2000.0 - (W - 1)}]}
    rows = np.linspace(10, 100, W)[None, :]
    log = build_output(fake_trace(rows, np.ones((1, W))), image_shape=(H, W), sidecar=Sidecar.from_dict(data))
    assert log.depth[0] < log.depth[-1] and log.depth_unit == "FT"
    # deepest depth is column 0, where the row was 10 (high value)
    assert log.curves[0].values[-1] == pytest.approx(150 * (H - 1 - 10) / (H - 1))


def test_qc_flags_low_coverage_and_confidence():
    rows = np.full((1, 100), 50.0)
    rows[0, :60] = np.nan
    conf = np.full((1, 100), 0.35)
    log = build_output(fake_trace(rows, conf), image_shape=(H, 100), sidecar=Sidecar.from_dict({**SIDECAR, "curves": SIDECAR["curves"][:1], "depth": {"unit": "M", "ref": [{"px": 0, "depth": 0.0}, {"px": 99, "depth": 99.0}]}}))
    [row] = qc_rows("s", log)
    assert row["flagged"]
    assert "low coverage" in row["reason"] and "low confidence" in row["reason"]
    assert row["coverage"] == pytest.approx(0.4, abs=0.02)


def test_normalised_position():
    np.testing.assert_allclose(normalised_position(np.array([0, 63.5, 127]), 128), [1.0, 0.5, 0.0])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("scan.tif", "scan.las"),
        ("../../etc/passwd", "passwd.las"),
        ("dir/sub/A 1 (copy).tiff", "A_1__copy_.las"),
        ("C:\\scans\\x.y.tif", "x.y.las"),
        ("..", "scan.las"),
        ("...tif", "scan.las"),
        (".hidden.png", "hidden.las"),
        ("", "scan.las"),
    ],
)
def test_safe_output_name(name, expected, tmp_path):
    out = safe_output_name(name)
    assert out == expected
    assert "/" not in out and "\\" not in out and ".." not in out
    assert output_path(tmp_path, name).parent == tmp_path.resolve()


def test_sidecar_keeps_a_tiny_log_scale_edge_positive():
    """A real resistivity window with near-zero garbage readings gave a generated log scale running from
    1e-10: written with 9 decimals it read back as 0, which no log scale can hold, and the training run's
    validation stopped on that sample. Values under 1e-3 keep 9 significant digits."""
    import json

    d = json.loads(json.dumps(SIDECAR))
    d["curves"][1]["ref"] = [{"px": H - 1, "value": 1e-10}, {"px": 0, "value": 1e6}]
    back = Sidecar.from_dict(json.loads(json.dumps(Sidecar.from_dict(d).to_dict())))
    assert back.curves[1].ref[0][1] == pytest.approx(1e-10, rel=1e-9)
    assert back.curves[0].ref[1][1] == 150  # whole values stay whole
