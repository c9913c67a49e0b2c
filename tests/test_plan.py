"""`veernet plan`: the fits on synthetic measurements, the tier arithmetic, the CPU estimate path,
plan.json read back by the trainer, and the bad-input messages. All on the CPU, with a tiny model."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from veernet_ray.config import load_config
from veernet_ray.plan.cli import main as plan_main
from veernet_ray.plan.fit import GIB, Point, fit_memory, fit_step_time, given_throughput
from veernet_ray.plan.planner import PlanError, choose_batch, make_plan, manifest_shapes, padding_figures
from veernet_ray.plan.tiers import DEFAULT_TIERS, Tier, TierError, load_tiers
from veernet_ray.train.driver import physical_batch_for, resolve_batching

TINY = ["model.stem_width=8", "model.widths=[8,16,16,32,32]", "train.loss=sce"]  # = --smoke-test's model


def _line_points(fixed, per_px, shapes, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [Point(b, h, w, (fixed + per_px * b * h * w) * (1 + noise * rng.standard_normal()), 0.01 + 1e-8 * b * h * w)
            for b, h, w in shapes]


GRID = [(1, 640, 3200), (1, 640, 6400), (2, 640, 3200), (2, 480, 6400), (4, 640, 3200)]


def _seed_shapes(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return list(zip(rng.integers(480, 641, n).tolist(), rng.integers(3200, 12801, n).tolist()))


def _write_shapes(path, shapes, split=True):
    df = pd.DataFrame({"height": [h for h, _ in shapes], "width": [w for _, w in shapes]})
    if split:
        df["split"] = "train"
    df.to_parquet(path, index=False)
    return path


# ------------------------------------------------------------------ fits
def test_memory_fit_recovers_a_noisy_line_and_predicts_held_out():
    fixed, per_px = 1.5 * GIB, 900.0
    fit = fit_memory(_line_points(fixed, per_px, GRID, noise=0.01), "measured")
    assert fit.fixed_bytes == pytest.approx(fixed, rel=0.15)
    assert fit.per_pixel_bytes == pytest.approx(per_px, rel=0.03)
    assert fit.max_residual < 0.03 and fit.to_dict()["residual_ok"]
    held = fixed + per_px * 640 * 12800  # batch 1 of the widest log: extrapolated 2x beyond the grid
    assert fit.predict(1, 640, 12800) == pytest.approx(held, rel=0.10)


def test_memory_fit_flags_a_curve_through_its_residuals():
    # memory quadratic in width (e.g. attention materialised): a line cannot hold it
    pts = [Point(b, h, w, 1e8 + 2e-3 * b * (h * w) ** 2) for b, h, w in GRID]
    fit = fit_memory(pts, "measured")
    assert fit.max_residual > 0.05 and not fit.to_dict()["residual_ok"]


def test_fits_refuse_degenerate_input():
    with pytest.raises(ValueError, match="two or more different pixel counts"):
        fit_memory([Point(1, 64, 512, 1e8), Point(2, 32, 512, 1.1e8)], "measured")
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_memory([Point(1, 64, 512, 1e8)], "measured")
    with pytest.raises(ValueError, match="did not grow"):
        fit_memory([Point(1, 64, 512, 2e8), Point(2, 64, 512, 1e8)], "measured")
    with pytest.raises(ValueError, match="positive"):
        given_throughput(0, "x")


def test_step_time_fit_and_given_throughput():
    st = fit_step_time(_line_points(1e9, 900, GRID), "measured", "gpu")
    assert st.overhead_s == pytest.approx(0.01, rel=1e-6)
    assert st.mpx_per_s == pytest.approx(100.0, rel=1e-6)  # 1e-8 s per pixel
    one = fit_step_time([Point(1, 32, 512, 0, 0.5)], "cpu-measured", "cpu")
    assert one.overhead_s == 0 and one.seconds(16384) == pytest.approx(0.5)
    assert given_throughput(40, "card").seconds(40e6) == pytest.approx(1.0)


def test_max_batch_and_max_width():
    fit = fit_memory(_line_points(GIB, 1000, GRID), "measured")
    budget = GIB + 1000 * 640 * 12800 * 3.5
    assert fit.max_batch(640, 12800, budget) == 3
    assert fit.max_batch(640, 12800, GIB) == 0
    w = fit.max_width(640, budget, batch=1)
    assert w % 32 == 0 and fit.predict(1, 640, w) <= budget < fit.predict(1, 640, w + 32)


# ------------------------------------------------------------------ tiers and arithmetic
def test_shipped_tiers_and_bad_tier_files(tmp_path):
    tiers = load_tiers(DEFAULT_TIERS)
    assert [(t.name, t.gpu_mem_gb, t.eur_month) for t in tiers] == [("high-end", 24, 750), ("advanced", 80, 1800)]
    assert tiers[0].eur_hour == pytest.approx(750 / 730)
    bad = tmp_path / "t.yaml"
    bad.write_text("tiers:\n  - {name: x, gpu_mem_gb: 8, eur_month: 1, colour: red}\n")
    with pytest.raises(TierError, match="unknown.*colour"):
        load_tiers(bad)
    with pytest.raises(TierError, match="positive"):
        Tier("x", 0, 1)


@pytest.mark.parametrize("max_fit,eff,workers,expected", [
    (5, 16, 1, (4, 4)),  # 5 fits: 4 steps needed either way, so the smaller batch 4 gives exactly 16
    (40, 16, 1, (16, 1)),  # never more than the effective batch
    (3, 16, 1, (3, 6)),  # 3 x 6 = 18: the card cannot do better than 6 steps
    (1, 16, 1, (1, 16)),
    (4, 16, 2, (4, 2)),
])
def test_choose_batch(max_fit, eff, workers, expected):
    assert choose_batch(max_fit, eff, workers) == expected


def test_tier_arithmetic_on_seed_shapes():
    shapes = _seed_shapes()
    mem = fit_memory(_line_points(0.5 * GIB, 500.0, GRID), "measured")  # 4.1 GB per widest log
    step = given_throughput(50.0, "test")
    tiers = [Tier("small", 8, 300), Tier("high-end", 24, 750), Tier("advanced", 80, 1800)]
    plan = make_plan(shapes, mem, step, tiers, effective_batch=16, epochs=50, retrains=10)
    small, high, adv = plan["tiers"]
    widest = 640 * 12800
    assert high["max_batch_fits"] == int((24 * 0.9 * GIB - 0.5 * GIB) // (500 * widest)) == 5
    assert (high["physical_batch"], high["accumulation_steps"]) == (4, 4)
    assert (adv["physical_batch"], adv["accumulation_steps"]) == (16, 1)
    assert small["max_batch_fits"] == 1 and small["accumulation_steps"] == 16
    for r in (small, high, adv):
        assert r["peak_gib"] * GIB <= r["usable_gib"] * GIB
        assert r["padding_bucketed"] < r["padding_random"] or r["physical_batch"] == 1
        assert r["eur_per_run"] == pytest.approx(r["epoch_s"] * 50 / 3600 * r["eur_month"] / 730)
        assert r["eur_per_retrains"] == pytest.approx(10 * r["eur_per_run"])
        assert r["retrains_per_day"] == pytest.approx(24 / r["run_h"])
    # bigger batches waste more on padding, so the 80 GB card's epoch takes a little longer at a given throughput
    assert adv["epoch_s"] >= high["epoch_s"] * 0.99
    assert plan["tier"] == "small" and plan["chosen_by"].startswith("cheapest")
    assert (plan["physical_batch"], plan["accumulation_steps"]) == (1, 16)
    assert make_plan(shapes, mem, step, tiers, tier="advanced")["physical_batch"] == 16


def test_padding_bucketing_beats_random_batches():
    figs = padding_figures(_seed_shapes(), 4)
    assert figs["batching_padding_bucketed"] <= 0.03 + 1e-9  # the trainer's max_padding
    assert figs["batching_padding_random"] > 0.15  # "about a quarter" for random batches of 4


def test_card_too_small_says_what_would_fit():
    mem = fit_memory(_line_points(0.3 * GIB, 800.0, GRID), "estimate")
    with pytest.raises(PlanError) as err:
        make_plan(_seed_shapes(), mem, given_throughput(10, "x"), [Tier("0.5GB-card", 0.5, 100)], amp="off")
    msg = str(err.value)
    for hint in ("too small", "0.45 GiB usable", "640 x 12", "bf16", "checkpointing", "tiling", "at least"):
        assert hint in msg
    assert "crops up to" in msg


# ------------------------------------------------------------------ the CPU estimate path
@pytest.fixture(scope="module")
def tiny_cfg():
    return load_config(None, TINY)


def test_estimate_is_monotone_and_bf16_is_smaller(tiny_cfg):
    from veernet_ray.plan.measure import estimate_cpu

    bf16 = fit_memory(estimate_cpu(tiny_cfg, ((1, 32, 256), (2, 32, 256), (1, 64, 256)), epochs=1), "estimate")
    assert bf16.max_residual < 0.05  # activations are linear in batch x area
    preds = [[bf16.predict(b, 640, w) for w in (3200, 6400, 12800)] for b in (1, 2, 4)]
    assert all(np.diff(row).min() > 0 for row in preds)
    assert all(np.diff(col).min() > 0 for col in np.array(preds).T)
    fp32 = fit_memory(estimate_cpu(load_config(None, TINY + ["train.amp='off'"]), ((1, 32, 256), (2, 32, 256)), epochs=1),
                      "estimate")
    assert bf16.per_pixel_bytes < fp32.per_pixel_bytes


def test_cli_on_demo_manifest_writes_a_plan_train_reads(demo_data, tmp_path, capsys):
    out = tmp_path / "plan"
    rc = plan_main(["--manifest", str(demo_data), "--out", str(out), "--epochs", "3", "--smoke-test"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "high-end" in printed and "advanced" in printed and "EUR/run" in printed
    plan = json.loads((out / "plan.json").read_text())
    assert (out / "plan.png").stat().st_size > 10_000
    for key in ("physical_batch", "accumulation_steps", "tiers", "basis", "model", "manifest", "memory_fit",
                "throughput", "effective_batch"):
        assert key in plan
    assert plan["basis"]["memory"] == "estimate" and plan["basis"]["throughput"] == "cpu-measured"
    assert plan["memory_fit"]["basis"] == "estimate" and plan["holdout"] is None and plan["smoke_test"]
    assert plan["manifest"]["logs"] == int((pd.read_parquet(demo_data)["split"] == "train").sum())
    assert plan["model"]["widths"] == [8, 16, 16, 32, 32] and plan["model"]["parameters"] > 0
    for r in plan["tiers"]:
        assert r["fits"] and r["physical_batch"] * r["accumulation_steps"] >= 16
        assert r["throughput_basis"] == "cpu-measured" and math.isfinite(r["eur_per_run"])
    cfg = load_config(None, [f"train.plan={out / 'plan.json'}"])
    assert physical_batch_for(cfg) == (plan["physical_batch"], plan["accumulation_steps"])
    used = resolve_batching(cfg).to_dict()["train"]  # what the run folder, checkpoints and MLflow record
    assert (used["physical_batch"], used["accumulation_steps"]) == (plan["physical_batch"], plan["accumulation_steps"])


def test_cli_given_throughput_on_a_seed_size_shape_manifest(tmp_path, capsys):
    manifest = _write_shapes(tmp_path / "shapes.parquet", _seed_shapes(50), split=False)  # width/height only
    out = tmp_path / "plan"
    rc = plan_main(["--manifest", str(manifest), "--out", str(out), "--throughput", "40", "--tier", "advanced",
                    "--retrains", "5", "--smoke-test"])
    assert rc == 0, capsys.readouterr()
    plan = json.loads((out / "plan.json").read_text())
    assert plan["tier"] == "advanced" and plan["basis"]["throughput"] == "given"
    assert plan["manifest"]["logs"] == 50 and plan["manifest"]["widest_padded"]["height"] == 640
    adv = plan["tiers"][1]
    assert adv["throughput_mpx_s"] == pytest.approx(40) and adv["throughput_basis"] == "given"
    assert adv["eur_per_retrains"] == pytest.approx(5 * adv["eur_per_run"])


# ------------------------------------------------------------------ bad input
def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_cli_empty_manifest(tmp_path, capsys):
    empty = _write_shapes(tmp_path / "empty.parquet", [])
    assert plan_main(["--manifest", str(empty), "--out", str(tmp_path / "o"), "--smoke-test"]) == 2
    err = _err(capsys)
    assert "no logs" in err and "veernet synth" in err


def test_cli_card_too_small(tmp_path, capsys):
    manifest = _write_shapes(tmp_path / "seed.parquet", _seed_shapes(20))
    rc = plan_main(["--manifest", str(manifest), "--out", str(tmp_path / "o"), "--gpu-mem", "0.5",
                    "--eur-month", "100", "--throughput", "10", "--smoke-test", "--set", "train.amp='off'"])
    assert rc == 2
    err = _err(capsys)
    for hint in ("too small for batch 1 of the widest log", "bf16", "model.checkpointing=true", "tiling", "--gpu-mem"):
        assert hint in err
    assert not (tmp_path / "o" / "plan.json").exists()


@pytest.mark.parametrize("args,match", [
    (["--gpu-mem", "24"], "go together"),
    (["--tier", "nope"], "valid tiers: high-end, advanced"),
    (["--epochs", "0"], "at least 1"),
    (["--set", "train.amp=fast"], "train.amp must be one of"),
])
def test_cli_argument_errors(tmp_path, capsys, args, match):
    manifest = _write_shapes(tmp_path / "m.parquet", [(128, 1024)])
    assert plan_main(["--manifest", str(manifest), "--out", str(tmp_path / "o"), *args]) == 2
    assert match in _err(capsys)


def test_manifest_without_shapes_or_file(tmp_path):
    pd.DataFrame({"id": ["a"]}).to_parquet(tmp_path / "m.parquet")
    with pytest.raises(PlanError, match="'width' and 'height'"):
        manifest_shapes(tmp_path / "m.parquet")
    with pytest.raises(PlanError, match="not found"):
        manifest_shapes(tmp_path / "nope.parquet")
    _write_shapes(tmp_path / "v.parquet", [(128, 1024)])
    with pytest.raises(PlanError, match="--split all"):
        manifest_shapes(tmp_path / "v.parquet", split="val")


# ------------------------------------------------------------------ the GPU path, driven on the CPU
def test_measured_path_runs_real_steps_and_checks_a_held_out_point(tmp_path, monkeypatch):
    """`measure_gpu` and the measured branch of `run_plan`, with the three CUDA memory calls replaced by a
    fake allocator (a known line) so the code path runs here; on a GPU the same code reads the real peak."""
    import torch

    from veernet_ray.plan import measure
    from veernet_ray.plan.run import run_plan

    fixed, per_px, seen = 50e6, 700.0, {}
    real_batch = measure.synthetic_batch

    def recording_batch(b, h, w, *a, **k):
        seen["px"] = b * h * w
        return real_batch(b, h, w, *a, **{**k, "device": "cpu"})

    real_measure = measure.measure_gpu

    def measure_on_cpu(cfg, shapes, **kw):
        return real_measure(cfg, shapes, **{**kw, "device": "cpu", "repeats": 1})

    monkeypatch.setattr(measure, "synthetic_batch", recording_batch)
    monkeypatch.setattr(measure, "measure_gpu", measure_on_cpu)
    monkeypatch.setattr(measure, "cuda_name", lambda device="cuda": "fake-gpu")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: fixed + per_px * seen["px"])
    manifest = _write_shapes(tmp_path / "m.parquet", [(32, 256), (64, 512), (40, 300)])
    cfg = load_config(None, TINY + ["train.amp='off'", "train.channels_last='off'"])  # bf16 on a CPU is slow
    plan = run_plan(cfg, manifest, load_tiers(), out=tmp_path / "o", device="cuda", epochs=2, figure=False,
                    log=lambda s: None)
    assert plan["basis"]["memory"] == "measured" and plan["basis"]["throughput"] == "measured"
    assert plan["basis"]["device"] == "fake-gpu"
    assert plan["memory_fit"]["per_pixel_bytes"] == pytest.approx(per_px, rel=1e-6)
    assert len(plan["memory_fit"]["points"]) == 5  # batch 1, 2, 4 at quarter and half width, two heights
    h = plan["holdout"]
    assert (h["batch"], h["height"], h["width"]) == (1, 64, 512) and h["within_10pct"]
    assert all(p["seconds"] > 0 for p in plan["memory_fit"]["points"])


def test_plan_file_is_read_as_a_typed_plan(tmp_path):
    from veernet_ray.plan.planfile import PLAN_VERSION, Plan, PlanFileError, fallback_plan, load_plan

    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"schema": "veernet-plan/1", "version": PLAN_VERSION, "tier": "advanced",
                                "physical_batch": 6, "accumulation_steps": 3, "num_workers": 1,
                                "tiers": [{"name": "high-end", "fits": False},
                                          {"name": "advanced", "fits": True, "physical_batch": 6,
                                           "accumulation_steps": 3}]}))
    plan = load_plan(path)
    assert isinstance(plan, Plan) and plan.version == PLAN_VERSION and plan.tier == "advanced"
    assert plan.batch_for(1) == (6, 3) and plan.batch_for(2) == (6, None)  # accumulation is per worker count
    assert not plan.tiers["high-end"].fits and plan.tiers["advanced"].physical_batch == 6
    path.write_text(json.dumps({"version": PLAN_VERSION + 1, "physical_batch": 6}))
    with pytest.raises(PlanFileError, match="re-run `veernet plan`"):
        load_plan(path)
    path.write_text("{not json")
    with pytest.raises(PlanFileError, match="not a plan file"):
        load_plan(path)
    with pytest.raises(FileNotFoundError, match="veernet plan --manifest"):
        load_plan(tmp_path / "missing.json")
    table = fallback_plan([Tier("high-end", 24, 750), Tier("mine", 48, 1000)])
    assert {n: r.physical_batch for n, r in table.tiers.items()} == {"high-end": 4, "mine": 9}


def test_saved_config_records_the_batching_used():
    cfg = load_config(None, ["train.physical_batch=3", "train.effective_batch=16", "scale.num_workers=2"])
    assert cfg.train.accumulation_steps is None
    used = resolve_batching(cfg).train
    assert (used.physical_batch, used.accumulation_steps) == (3, 3)  # 3 x 2 workers x 3 >= 16
    assert resolve_batching(cfg.with_overrides({"train.accumulation_steps": 5})).train.accumulation_steps == 5
