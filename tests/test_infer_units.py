"""Fast tests of the inference pieces without Ray: listing, tiles, stages, OOM retry, table merging."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from veernet_ray.infer.listing import list_inputs, qc_record_path, unsafe_name
from veernet_ray.infer.stages import ModelStage, blank_reason, decode_row, is_oom, write_row
from veernet_ray.infer.tiles import blend_weights, halve, stitch, tile_spans
from veernet_ray.io import write_tiff

SIDECAR = {
    "orientation": "depth_along_width",
    "depth": {"unit": "M", "ref": [{"px": 0, "depth": 1000.0}, {"px": 255, "depth": 1025.5}], "step": 0.1},
    "curves": [
        {"class_id": 1, "mnemonic": "GR", "unit": "GAPI", "scale": "linear",
         "ref": [{"px": 63, "value": 0.0}, {"px": 0, "value": 150.0}]},
        {"class_id": 2, "mnemonic": "ILD", "unit": "OHMM", "scale": "log",
         "ref": [{"px": 63, "value": 0.2}, {"px": 0, "value": 2000.0}]},
    ],
}


def scan(h: int = 64, w: int = 256, seed: int = 0) -> np.ndarray:
    """White paper with two dark sinusoid traces."""
    img = np.full((h, w), 250, np.uint8)
    x = np.arange(w)
    r1 = (h * 0.3 + h * 0.15 * np.sin(x / 17.0)).astype(int)
    r2 = (h * 0.7 + h * 0.1 * np.cos(x / 11.0 + seed)).astype(int)
    img[r1, x] = 10
    img[r2, x] = 60
    return img


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from veernet_ray.infer.cli import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


# ------------------------------------------------------------------ tiles
def test_tile_spans_cover_and_overlap():
    assert tile_spans(100, 64, 16) == [(0, 64), (36, 100)]
    assert tile_spans(500, 1024, 256) == [(0, 500)]
    spans = tile_spans(60_000, 8192, 256)
    assert spans[0][0] == 0 and spans[-1][1] == 60_000
    assert all(e - s == 8192 for s, e in spans)
    assert all(spans[i][1] - spans[i + 1][0] >= 256 for i in range(len(spans) - 1))


def test_stitch_reproduces_a_smooth_map_exactly():
    rng = np.random.default_rng(0)
    full = rng.random((3, 8, 300)).astype(np.float32)
    spans = tile_spans(300, 128, 32)
    tiles = [full[:, :, s:e] for s, e in spans]
    assert np.allclose(stitch(tiles, spans, 300), full, atol=1e-6)
    w = blend_weights(spans)
    assert all((x > 0).all() and x.max() == 1 for x in w)


def test_halve_stops_at_the_floor():
    assert halve(8192) == 4096
    assert halve(1024, floor=512) == 512
    assert halve(512, floor=512) == 0


# ---------------------------------------------------------------- listing
def test_unsafe_names():
    assert unsafe_name("../evil") and unsafe_name("a/b") and unsafe_name("..") and unsafe_name("a\\b")
    assert not unsafe_name("scan_001") and not unsafe_name("a..b")


def test_listing_refuses_bad_headers_and_sidecars(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_tiff(src / "good.tif", scan())
    (src / "good.json").write_text(json.dumps(SIDECAR))
    write_tiff(src / "good.mask.tif", np.zeros((64, 256), np.uint8))  # training masks are not scans
    write_tiff(src / "tiny.tif", np.full((20, 400), 200, np.uint8))
    write_tiff(src / "badside.tif", scan())
    (src / "badside.json").write_text("{not json")
    write_tiff(src / "noref.tif", scan())
    (src / "noref.json").write_text(json.dumps({**SIDECAR, "depth": {"unit": "M"}}))
    (src / "empty.tif").write_bytes(b"")
    (src / "text.png").write_text("hello, not an image")
    write_tiff(src / "portrait.tif", np.ascontiguousarray(np.rot90(scan(), -1)))
    listing = list_inputs(str(src), out)
    kinds = {e["id"]: e["kind"] for e in listing.errors}
    assert kinds == {"tiny": "too_small", "badside": "bad_sidecar", "noref": "bad_sidecar",
                     "empty": "empty_file", "text": "unreadable"}
    items = {it.id: it for it in listing.items}
    assert set(items) == {"good", "portrait"}
    assert items["good"].sidecar_json and items["good"].las_out == str((out / "good.las").resolve())
    # no sidecar, height > 2 x width: the portrait heuristic turns it to canonical
    p = items["portrait"]
    assert p.orientation == "depth_along_height" and (p.height, p.width) == (64, 256)


def test_listing_manifest_unsafe_id_and_resume(tmp_path):
    import pandas as pd

    from veernet_ray.data.manifest import write_manifest

    write_tiff(tmp_path / "a.tif", scan())
    write_tiff(tmp_path / "b.tif", scan())
    rows = [{"id": i, "image": f, "mask": None, "las": None, "calibration": None, "width": 256, "height": 64,
             "split": "test", "source": "synthetic"} for i, f in (("../evil", "a.tif"), ("b", "b.tif"))]
    write_manifest(pd.DataFrame(rows), tmp_path / "manifest.parquet")
    out = tmp_path / "out"
    listing = list_inputs(str(tmp_path / "manifest.parquet"), out, split="test")
    assert [e["kind"] for e in listing.errors] == ["unsafe_output_name"]
    assert [it.id for it in listing.items] == ["b"]
    # a LAS alone is not complete; LAS + QC record is
    out.mkdir()
    (out / "b.las").write_text("x")
    assert list_inputs(str(tmp_path / "manifest.parquet"), out).complete == []
    qc_record_path(out, "b").parent.mkdir(parents=True)
    fingerprint = list_inputs(str(tmp_path / "manifest.parquet"), out).items[0].fingerprint
    qc_record_path(out, "b").write_text(json.dumps({"ckpt": "", "fingerprint": fingerprint, "rows": []}))
    assert [it.id for it in list_inputs(str(tmp_path / "manifest.parquet"), out).complete] == ["b"]


def test_listing_refuses_scans_too_large(tmp_path):
    write_tiff(tmp_path / "wide.tif", np.full((64, 5000), 200, np.uint8))
    listing = list_inputs(str(tmp_path / "wide.tif"), tmp_path / "out", max_pixels=100_000)
    assert [e["kind"] for e in listing.errors] == ["too_large"] and "split the scan" in listing.errors[0]["message"]


# ----------------------------------------------------------------- stages
def test_blank_reason():
    assert blank_reason(np.full((64, 64), 255, np.uint8))
    assert blank_reason(np.full((64, 64), 0, np.uint8))  # an all-black no-data frame
    assert blank_reason(np.random.default_rng(0).integers(200, 256, (64, 64)).astype(np.uint8))  # no ink
    assert blank_reason(scan()) == ""
    # a faded, low-contrast scan (paper ~225, ink no darker than ~142, as the generator draws some) has
    # ink: no absolute gray level decides that, only the contrast against its own paper
    faded = np.full((64, 256), 225, np.uint8)
    faded[30:33, :] = 142
    assert blank_reason(faded) == ""
    dark_paper = np.full((64, 256), 90, np.uint8)
    dark_paper[10:12, :] = 20
    assert blank_reason(dark_paper) == ""


def _row(tmp_path: Path, name: str, image: np.ndarray, sidecar: dict | None = None) -> dict:
    path = tmp_path / f"{name}.tif"
    write_tiff(path, image)
    h, w = image.shape
    return {"id": name, "path": str(path), "las_out": str(tmp_path / "out" / f"{name}.las"), "height": h,
            "width": w, "orig_height": h, "orig_width": w, "orientation": "depth_along_width",
            "sidecar_json": json.dumps(sidecar) if sidecar else "", "truth_las": ""}


def test_decode_row_marks_blank_and_errors(tmp_path):
    ok = decode_row(_row(tmp_path, "ok", scan()))
    assert ok["status"] == "ok" and ok["image"].shape == (64, 256)
    blank = decode_row(_row(tmp_path, "blank", np.full((64, 256), 255, np.uint8)))
    assert blank["status"] == "skipped" and blank["kind"] == "blank"
    row = _row(tmp_path, "gone", scan())
    Path(row["path"]).unlink()
    assert decode_row(row)["kind"] == "missing"


def _batch(rows: list[dict]) -> dict:
    from veernet_ray.infer.stages import _objects

    out = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0] if k not in ("image", "probs")}
    out["image"] = _objects([r["image"] for r in rows])
    return out


def test_model_stage_batches_tiles_and_retries_out_of_memory(tmp_path, tiny_ckpt):
    stage = ModelStage(tiny_ckpt.read_bytes(), batch_size=4, max_width=512, overlap=64)
    rows = [decode_row(_row(tmp_path, f"s{i}", scan(64, w, i))) for i, w in enumerate((272, 288, 1200))]
    out = stage(_batch(rows))
    assert list(out["status"]) == ["ok"] * 3
    assert [p.shape for p in out["probs"]] == [(3, 64, 272), (3, 64, 288), (3, 64, 1200)]
    assert all(p.dtype == np.uint8 for p in out["probs"])
    # one batch for the two narrow scans (both pad to 288: no padding beyond their own rounding,
    # within data.max_padding), three 512-wide tiles in one batch for the wide one
    assert sum(out["n_forward"]) == 2
    # the wide scan's tiles agree with running it whole (the network is translation-equivariant
    # up to border effects; blending keeps the seams small)
    whole = stage.forward([rows[2]["image"]])[0].astype(float)
    assert np.mean(np.abs(whole - out["probs"][2].astype(float))) < 10

    real = stage.model

    class Fussy(torch.nn.Module):  # out of memory above 288 px wide (a 256 px scan and its
        def forward(self, x, valid=None):  # margin, INFER_MARGIN, pad to 288) or more than one scan
            if x.shape[0] > 1 or x.shape[-1] > 288:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return real(x, valid=valid)

    stage.model = Fussy()
    stage.forwards = 0
    out = stage(_batch([decode_row(_row(tmp_path, f"f{i}", scan(64, w, i))) for i, w in enumerate((256, 288))]))
    assert list(out["status"]) == ["ok", "error"]  # 288 px cannot be halved below the 512 px floor
    assert out["kind"][1] == "out_of_memory" and "out of memory" in out["message"][1]
    assert is_oom(RuntimeError("CUDA error: out of memory")) and not is_oom(RuntimeError("shape mismatch"))


def test_model_stage_pads_to_grid_cells_and_fills_batches(tmp_path, tiny_ckpt):
    """With a shape grid (issue 13) the actor pads each scan to its cell and batches by cell: five
    scans of five widths in one 64 x 512 cell (with their paper margin, INFER_MARGIN) make one full
    batch of one shape; a wider scan outside the grid still runs (bucketed, then tiled)."""
    from veernet_ray.infer.stages import INFER_MARGIN

    stage = ModelStage(tiny_ckpt.read_bytes(), batch_size=8, max_width=1024, overlap=64,
                       grid=((64, 128), (512, 1024)))
    widths = (272, 300, 480, 512 - INFER_MARGIN, 330, 1500)
    rows = [decode_row(_row(tmp_path, f"g{i}", scan(64 - INFER_MARGIN, w, i))) for i, w in enumerate(widths)]
    out = stage(_batch(rows))
    assert list(out["status"]) == ["ok"] * len(widths)
    assert [p.shape[2] for p in out["probs"]] == list(widths)
    assert (5, 64, 512) in stage.shapes_seen  # the five narrow scans: one batch, padded to their cell
    tile = 1024 + 32  # a 1,024 px tile and its margin, rounded up to the model's multiple
    assert not any(s[1:] not in {(64, 512), (64, 1024)} and s[2] != tile for s in stage.shapes_seen)
    # the same probabilities as bucketed batching, up to what the extra padding changes
    plain = ModelStage(tiny_ckpt.read_bytes(), batch_size=8, max_width=1024, overlap=64)
    ref = plain(_batch(rows))
    for p, q in zip(out["probs"], ref["probs"]):
        assert p.shape == q.shape and np.mean(np.abs(p.astype(float) - q.astype(float))) < 10


def test_model_stage_output_does_not_depend_on_the_cell_a_scan_is_padded_to(tmp_path, tiny_ckpt):
    """GroupNorm statistics and attention over a whole padded tensor made a scan's probabilities
    depend on its batch: the shipped model's held-out median R^2 fell from 0.29 to 0.10 with scans
    padded into cells 8% taller and 20% wider (bench/RESULTS.md). The model stage passes each scan's
    region (`ModelStage.valid_sizes`: the scan, its margin, rounded up to the model's multiple), so a
    scan padded into a cell twice its size, or batched beside a wider scan, gets its probabilities alone."""
    stage = ModelStage(tiny_ckpt.read_bytes(), batch_size=2)
    image = decode_row(_row(tmp_path, "v1", scan(100, 400, 3)))["image"]
    wide = decode_row(_row(tmp_path, "v2", scan(100, 900, 4)))["image"]
    alone = stage.forward([image])[0].astype(int)
    padded = stage.forward([image], pad_to=(224, 832))[0].astype(int)
    beside = stage.forward([image, wide])[0].astype(int)
    assert np.abs(padded - alone).max() <= 1 and np.abs(beside - alone).max() <= 1  # uint8 rounding
    real = stage.model
    stage.model = lambda x, valid=None: real(x)  # the network as it ran before: statistics over the tensor
    unmasked = stage.forward([image], pad_to=(224, 832))[0].astype(int)
    stage.model = real
    assert np.abs(unmasked - alone).max() > 10


def test_model_stage_gpu_batching_fills_cells_with_blank_rows_and_runs_channels_last(tmp_path, tiny_ckpt):
    """What a GPU actor does (fill a cell's partial batch with blank rows, so the device sees one
    shape per cell; channels-last tensors), switched on here on the CPU: the scans' probabilities
    are the same as without, and the blank rows never reach the output."""
    from veernet_ray.infer.stages import INFER_MARGIN

    rows = [decode_row(_row(tmp_path, f"b{i}", scan(64 - INFER_MARGIN, w, i))) for i, w in enumerate((272, 300, 480))]
    plain = ModelStage(tiny_ckpt.read_bytes(), batch_size=8, grid=((64,), (512,)))
    ref = plain(_batch(rows))
    gpu_like = ModelStage(tiny_ckpt.read_bytes(), batch_size=8, grid=((64,), (512,)))
    gpu_like.fill_batches = gpu_like.channels_last = True
    gpu_like.model = gpu_like.model.to(memory_format=torch.channels_last)
    out = gpu_like(_batch(rows))
    assert gpu_like.shapes_seen == {(8, 64, 512)} and plain.shapes_seen == {(3, 64, 512)}
    assert list(out["status"]) == ["ok"] * 3
    for p, q in zip(out["probs"], ref["probs"]):
        assert p.shape == q.shape and np.abs(p.astype(int) - q.astype(int)).max() <= 1


def test_model_stage_warm_up_runs_every_grid_cell_once_at_the_full_batch(tiny_ckpt):
    """A GPU actor runs a blank full batch through every grid cell before its first scan, so cuDNN's
    autotuning happens once per cell at start-up, not in each cell's first batch (issue 13). On the
    CPU it is off; called here directly, on a GPU-like actor: one (batch, cell) shape per cell, and
    the scans' forward count untouched."""
    cpu = ModelStage(tiny_ckpt.read_bytes(), batch_size=4, grid=((64, 96), (512, 1024)))
    assert cpu.warmup_s == 0.0 and cpu.shapes_seen == set()
    cpu.fill_batches = True
    seconds = cpu.warm_up()
    assert seconds > 0 and cpu.forwards == 0
    assert cpu.shapes_seen == {(4, h, w) for h in (64, 96) for w in (512, 1024)}


def test_write_stage_uses_the_pixels_the_model_stage_carried_on(tmp_path, tiny_ckpt):
    """QC and the overlay read the decoded pixels carried on from decode, not the file again: the
    write succeeds after the scan's file is gone."""
    stage = ModelStage(tiny_ckpt.read_bytes(), batch_size=2)
    row = decode_row(_row(tmp_path, "c1", scan(), SIDECAR))
    out = stage(_batch([row]))
    carried = out["image"][0]
    assert carried.shape == (int(row["height"]), int(row["width"])) and (carried == row["image"]).all()
    Path(row["path"]).unlink()
    row.update(probs=out["probs"][0], image=carried, n_forward=1, t_model=0.0)
    res = write_row(row, provenance={"MODEL": "tiny", "CKPT": "abc"}, output=str(tmp_path / "out"), overlays="all")
    assert res["status"] == "done", res["message"]
    assert Path(res["overlay"]).is_file() and "image" not in res  # the write stage's row carries no pixels


def test_write_row_writes_las_and_qc_record(tmp_path, tiny_ckpt):
    import lasio

    stage = ModelStage(tiny_ckpt.read_bytes(), batch_size=2)
    row = decode_row(_row(tmp_path, "w1", scan(), SIDECAR))
    out = stage(_batch([row]))
    row.update(probs=out["probs"][0], n_forward=1, t_model=0.0)
    res = write_row(row, provenance={"MODEL": "tiny", "CKPT": "abc"}, output=str(tmp_path / "out"), overlays="all")
    assert res["status"] == "done", res["message"]
    las = lasio.read(res["las_out"])
    assert [c.mnemonic for c in las.curves] == ["DEPT", "GR", "GR_CONF", "ILD", "ILD_CONF"]
    assert las.params["CKPT"].value == "abc" and las.well["STRT"].value == pytest.approx(1000.0)
    assert las.well["STEP"].value == pytest.approx(0.1)
    assert qc_record_path(tmp_path / "out", "w1").is_file() and Path(res["overlay"]).is_file()
    assert len(json.loads(res["qc"])) == 2
    # a row that failed upstream passes through untouched
    bad = dict(row, status="error", kind="unreadable", message="m", stage="decode")
    assert write_row(bad, provenance={}, output=str(tmp_path / "out"))["kind"] == "unreadable"


def test_write_if_changed_is_idempotent(tmp_path):
    import pandas as pd

    from veernet_ray.infer.results import ERROR_COLUMNS, _typed, _write_if_changed

    df = _typed(pd.DataFrame([{"path": "a", "id": "a", "kind": "k", "message": "m", "stage": "s",
                               "status": "error"}]), ERROR_COLUMNS)
    assert _write_if_changed(df, tmp_path / "e.parquet")
    assert not _write_if_changed(_typed(pd.read_parquet(tmp_path / "e.parquet"), ERROR_COLUMNS), tmp_path / "e.parquet")


def test_cli_usage_errors(capsys, tmp_path):
    from veernet_ray.infer.cli import main

    assert main(["--input", str(tmp_path)]) == 2
    assert "veernet infer: error: --input and --output are required" in capsys.readouterr().err
    # no --checkpoint: the shipped weights are used, so an empty folder is the error
    assert main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--no-tracking"]) == 2
    assert "names no scans" in capsys.readouterr().err
    assert main(["--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o"), "--no-tracking",
                 "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
