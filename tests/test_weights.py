"""The shipped weights: present, small, safe to load, described by their card, and used by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from veernet_ray.weights import CARD, MAX_BYTES, SHIPPED, export_weights, model_card, sha256, shipped_checkpoint

BIN = Path(sys.executable).parent


def test_shipped_weights_are_small_safe_and_match_their_card():
    import torch

    assert shipped_checkpoint() == SHIPPED and SHIPPED.stat().st_size < MAX_BYTES
    payload = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert "optimizer" not in payload and {"model", "model_config"} <= set(payload)
    card = model_card()
    assert card["sha256"] == sha256(SHIPPED) and card["bytes"] == SHIPPED.stat().st_size
    for key in ("data", "config", "command", "device", "wall_clock", "epochs", "evaluation"):
        assert key in card, key
    assert json.loads(CARD.read_text())["file"] == SHIPPED.name


def test_export_weights_keeps_only_what_inference_needs(tmp_path):
    from veernet_ray.infer.cli import tiny_checkpoint
    from veernet_ray.model.checkpoint import load_model

    src = tiny_checkpoint(tmp_path / "src")
    dest = export_weights(src, tmp_path / "w.pt", card={"note": "test"})
    model, payload = load_model(dest)
    assert payload.keys() <= {"model", "model_config", "config", "history", "epoch"}
    card = json.loads((tmp_path / "w.json").read_text())
    assert card["note"] == "test" and card["sha256"] == sha256(dest)
    # the same checkpoint exported again gives the same bytes (the shipped file's hash keys caches
    # and the card): torch.save names its zip records after the file it writes to, here a temporary
    again = export_weights(src, tmp_path / "again" / "w.pt", card={"note": "test"})
    assert sha256(again) == sha256(dest)


def test_infer_without_checkpoint_uses_the_shipped_model(tmp_path):
    """`veernet infer --input DIR --output OUT` with no --checkpoint digitises with the shipped weights."""
    from veernet_ray.las.lasfile import read_las_curves
    from veernet_ray.synth import generate_dataset

    manifest = generate_dataset(tmp_path / "d", n=1, seed=7, preset="seed", width=(900, 1100), progress=False,
                                split=(0.0, 0.0, 1.0))
    src = pd.read_parquet(manifest)
    scans = tmp_path / "scans"
    scans.mkdir()
    for r in src.itertuples():
        (scans / f"{r.id}.tif").write_bytes((manifest.parent / r.image).read_bytes())
        (scans / f"{r.id}.json").write_bytes((manifest.parent / r.calibration).read_bytes())
    out = tmp_path / "out"
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}
    proc = subprocess.run([str(BIN / "veernet"), "infer", "--input", str(scans), "--output", str(out),
                           "--overlays", "none", "--no-tracking"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    las = sorted(out.glob("*.las"))
    assert len(las) == 1
    text = las[0].read_text()
    assert "shipped" in text and model_card()["sha256"][:12] in text
    depth, curves, _ = read_las_curves(las[0])
    values = next(v for k, v in curves.items() if not k.endswith("_CONF"))
    assert np.isfinite(values).mean() > 0.5
    qc = pd.read_parquet(out / "qc.parquet")
    assert len(qc) == 2 and {"qc_margin", "qc_ink", "qc_shared"} <= set(qc.columns)


def test_shipped_model_draws_no_line_along_the_bottom_edge():
    """A scan whose height is a multiple of 32 has valid rows at the tensor's bottom edge, which a model
    trained on padded batches rarely saw: without the model stage's margin the shipped model inked
    99.6% of this scan's bottom row, and the tracer took the line for a curve."""
    from veernet_ray.infer.stages import INFER_MARGIN, ModelStage
    from veernet_ray.trace.decode import curve_ink

    rng = np.random.default_rng(3)
    h, w = 480, 1024
    image = np.clip(rng.normal(212, 4, (h, w)), 0, 255).astype(np.uint8)  # grey paper
    x = np.arange(w)
    solid = np.round(200 + 80 * np.sin(x / 90)).astype(int)
    dashed = np.round(350 + 40 * np.sin(x / 37)).astype(int)
    on = (x // 12) % 2 == 0
    for dy in (-1, 0, 1):
        image[solid + dy, x] = 30
        image[dashed[on] + dy, x[on]] = 30
    assert INFER_MARGIN >= 8
    ink = curve_ink(ModelStage(SHIPPED.read_bytes(), batch_size=1).infer([image])[0], (1, 2))
    assert (ink[-2:] >= 128).any(axis=0).mean() < 0.02
    near = ink[np.clip(solid[None, :] + np.arange(-2, 3)[:, None], 0, h - 1), x].max(axis=0)
    assert (near >= 128).mean() > 0.7  # and it still sees the curve (0.79 with 16 white rows)
