"""Ray Tune sweeps: pricing, search spaces and ranking by hand; the smoke loss sweep end to end.

The end-to-end test runs `veernet tune losses --smoke` (one scheduled loss on CPU,
run once and priced for both tiers) against a real `mlflow server`, then reads the
child run back over HTTP and runs `veernet compare` on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from veernet_ray.config import ConfigError, ModelConfig, RunConfig
from veernet_ray.tune import compare
from veernet_ray.tune.pricing import CPU_BASIS, Tier, TierError, euros, pick_tiers, tier_batches
from veernet_ray.tune.space import LOSS_SWEEP, capacity_variants, capacity_widths, loss_variants
from veernet_ray.tune.trainable import CPU_TIER, SweepSpec, summary_metrics, trial_config, trial_name

HIGH = Tier("high-end", 24, 750)
ADV = Tier("advanced", 80, 1800)


# ----------------------------------------------------------------- pricing
def test_euros_is_wall_clock_times_hourly_rate():
    assert euros(3600, HIGH) == pytest.approx(750 / 730)
    assert euros(1800, ADV) == pytest.approx(0.5 * 1800 / 730)
    assert euros(0, ADV) == 0


def test_pick_tiers_keeps_order_and_names_the_valid_ones():
    assert pick_tiers([HIGH, ADV], None) == [HIGH, ADV]
    assert pick_tiers([HIGH, ADV], ["advanced"]) == [ADV]
    with pytest.raises(TierError, match="valid tiers: high-end, advanced"):
        pick_tiers([HIGH, ADV], ["h100"])


def test_tier_batches_cpu_fallback_and_plan(tmp_path):
    cpu = tier_batches([HIGH, ADV], on_gpu=False, config_batch=2)
    assert {t: b.physical_batch for t, b in cpu.items()} == {"high-end": 2, "advanced": 2}
    table = tier_batches([HIGH, ADV, Tier("mine", 48, 1000)], on_gpu=True, config_batch=2)
    assert {t: b.physical_batch for t, b in table.items()} == {"high-end": 4, "advanced": 16, "mine": 9}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"tiers": [{"name": "high-end", "fits": False},
                                          {"name": "advanced", "fits": True, "physical_batch": 6}]}))
    planned = tier_batches([HIGH, ADV], on_gpu=True, config_batch=2, plan=plan)
    assert not planned["high-end"].fits and planned["advanced"].physical_batch == 6
    with pytest.raises(TierError, match="no row for tier 'mine'"):
        tier_batches([Tier("mine", 48, 1000)], on_gpu=True, config_batch=2, plan=plan)


# ----------------------------------------------------------------- search spaces
def test_loss_space_is_the_issue_s_seven_and_checks_schedules():
    assert set(loss_variants(epochs=2)) == {"dice", "tversky", "lovasz", "focal", "sce", "sce->lovasz", "sce->tversky"}
    assert loss_variants(["sce->lovasz"], epochs=2)["sce->lovasz"] == {"train.loss": "sce->lovasz"}
    with pytest.raises(ConfigError, match="sce->lovasz"):  # a 1-epoch run cannot switch losses
        loss_variants(LOSS_SWEEP, epochs=1)
    with pytest.raises(ConfigError, match="valid losses"):
        loss_variants(["hinge"], epochs=2)


def test_capacity_widths_round_to_groupnorm_and_heads():
    assert capacity_widths((24, 32, 64, 96, 128), 1.0, 5, attn_heads=4) == (24, 32, 64, 96, 128)
    assert capacity_widths((24, 32, 64, 96, 128), 0.5, 4, attn_heads=4) == (16, 16, 32, 48)
    assert capacity_widths((8, 16, 16, 32, 32), 1.0, 3, attn_heads=12) == (8, 16, 24)
    # six blocks pad to 2**6: the pipeline takes the multiple from the model, so depth 6 is a valid variant
    assert capacity_widths((8, 16, 16, 32, 32, 64), 1.0, 6, attn_heads=4) == (8, 16, 16, 32, 32, 64)
    with pytest.raises(ConfigError, match=r"capacity depth must be in \[1, 6\]"):
        capacity_widths((8, 16, 16, 32, 32, 64), 1.0, 7, attn_heads=4)
    space = capacity_variants(ModelConfig(), (0.5, 2.0), (4, 5))
    assert list(space) == ["w0.5x-d4", "w2x-d4", "w0.5x-d5", "w2x-d5"]
    assert space["w2x-d5"] == {"model.stem_width": 32, "model.widths": [48, 64, 128, 192, 256]}
    for overrides in space.values():  # every variant is a valid RunConfig
        RunConfig().with_overrides(overrides)


def _spec(on_gpu: bool) -> SweepSpec:
    return SweepSpec(name="s1", kind="losses", base=RunConfig().to_dict(), parent_run_id="p0",
                     variants=loss_variants(["dice", "sce->lovasz"], epochs=10), tiers={"high-end": HIGH, "advanced": ADV},
                     batches={"high-end": 4, "advanced": 16}, gpu_fraction={"high-end": 0.3, "advanced": 1.0},
                     on_gpu=on_gpu, effective_batch=16 if on_gpu else None)


def test_trial_config_overrides_typed_fields():
    cfg = trial_config(_spec(True), "sce->lovasz", "high-end")
    assert cfg.train.loss == "sce->lovasz" and cfg.name == "s1-sce_to_lovasz-high-end"
    assert cfg.tracking.parent_run_id == "p0"
    assert (cfg.scale.use_gpu, cfg.scale.gpu_memory_gb, cfg.scale.gpus_per_worker) == (True, 24.0, 0.3)
    assert (cfg.train.physical_batch, cfg.train.effective_batch) == (4, 16)
    cpu = trial_config(_spec(False), "dice", CPU_TIER)
    assert cpu.name == trial_name(_spec(False), "dice", CPU_TIER) == "s1-dice"
    assert not cpu.scale.use_gpu and cpu.scale.gpu_memory_gb is None
    with pytest.raises(KeyError, match="dice, sce->lovasz"):
        trial_config(_spec(False), "focal", CPU_TIER)


def test_summary_prices_every_tier_on_cpu_and_only_its_own_on_gpu():
    cpu = summary_metrics(_spec(False), CPU_TIER, 7300.0, 123)
    assert cpu == {"wall_clock_s": 7300.0, "eur_high-end": pytest.approx(7300 / 3600 * 750 / 730),
                   "eur_advanced": pytest.approx(7300 / 3600 * 1800 / 730), "model_params": 123.0}
    assert set(summary_metrics(_spec(True), "advanced", 10.0)) == {"wall_clock_s", "eur_advanced"}


# ----------------------------------------------------------------- ranking
def _row(label, tier, r2, eur, status="finished", miou=0.5):
    return compare.Row(label=label, tier=tier, run_tier=CPU_TIER, status=status, basis=CPU_BASIS, run_name=label,
                       run_id=label, eur=eur, metrics={"val_curve_r2_median": r2, "val_miou_fg": miou,
                                                       "val_iou_0": 0.9, "val_iou_1": 0.3, "val_iou_2": 0.2,
                                                       "val_f1_1": 0.4, "val_f1_2": 0.3, "wall_clock_s": 65.0})


def test_rank_recommend_and_table():
    rows = [_row("dice", "advanced", 0.80, 2.0), _row("tversky", "high-end", 0.805, 1.0),
            _row("lovasz", "advanced", 0.90, 3.0, status="failed"), _row("sce", "high-end", 0.70, 0.1)]
    ranked = compare.rank_rows(rows, "val_curve_r2_median")
    assert [r.label for r in ranked] == ["tversky", "dice", "sce", "lovasz"]  # failed runs last, unranked
    assert [r.rank for r in ranked] == [1, 2, 3, None]
    pick, line = compare.recommend(ranked, "val_curve_r2_median", tolerance=0.01)
    assert pick.label == "tversky" and "cost arithmetic only" in line
    pick, _ = compare.recommend(ranked, "val_curve_r2_median", tolerance=0.2)
    assert pick.label == "sce"  # within 0.2 of the best, and the cheapest
    table = compare.format_table(ranked, "val_curve_r2_median").splitlines()
    assert table[0].startswith("| # | variant | tier | val_curve_r2_median (ranked) |")
    assert "IoU c2" in table[0] and "F1 c1" in table[0] and len(table) == 2 + len(rows)
    assert table[2].startswith("| 1 | tversky | high-end | 0.8050 |") and "1m05s" in table[2]
    assert compare.lower_is_better("val_curve_mae") and not compare.lower_is_better("val_iou_1")


# ----------------------------------------------------------------- end to end
SWEPT = ("sce->lovasz",)  # a schedule from a pixel-unit loss to an image-unit one: one of LOSS_SWEEP

def test_smoke_loss_sweep_against_mlflow_server(mlflow_server, demo_data, env_base, tmp_path, capsys):
    """One scheduled loss on CPU (a pixel-unit loss switching to an image-unit one, run once, priced
    for both tiers) -> a finished child run -> a 2-row compare table. `veernet tune losses --smoke`
    runs all seven; one keeps the suite inside its time budget and still covers both loss units and
    a schedule switch (tests/test_losses.py covers every loss on its own)."""
    import mlflow

    experiment = "tune-smoke-test"
    cmd = [sys.executable, "-m", "veernet_ray.tune.cli", "losses", "--smoke", "--manifest", str(demo_data),
           "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "runs"), "--name", "smoke-sweep",
           "--experiment", experiment, "--out", str(tmp_path / "sweep-compare"), "--losses", ",".join(SWEPT)]
    start = time.monotonic()
    out = subprocess.run(cmd, env=env_base, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - start
    assert out.returncode == 0, f"sweep failed ({took:.0f} s):\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}"
    assert "Recommendation:" in out.stdout

    client = mlflow.MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name(experiment)
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`veernet.tune.sweep` = 'smoke-sweep'")
    parent = next(r for r in parents if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FINISHED"
    assert json.loads(parent.data.params["sweep.variants"].replace("'", '"')) == list(SWEPT)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "compare")} == {"compare/compare.md",
                                                                                      "compare/compare.png"}
    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["veernet.tune.label"] for c in children) == sorted(SWEPT)
    for child in children:
        m, p, tags = child.data.metrics, child.data.params, child.data.tags
        assert child.info.status == "FINISHED" and tags["veernet.tune.status"] == "finished", tags
        assert p["train.loss"] == tags["veernet.tune.label"] and p["train.epochs"] == "2"
        assert p["data.manifest"] == str(demo_data) and p["train.seed"] == "0"  # same split and seed everywhere
        for key in ("val_iou_0", "val_iou_1", "val_iou_2", "val_f1_1", "val_f1_2", "val_miou_fg",
                    "val_curve_r2_median", "val_curve_mae", "peak_memory_gb", "model_params"):
            assert key in m, f"{tags['veernet.tune.label']}: no {key} in {sorted(m)}"
        assert m["wall_clock_s"] > 0 and tags["veernet.tune.cost_basis"] == CPU_BASIS
        assert m["eur_advanced"] / m["eur_high-end"] == pytest.approx(1800 / 750)
        assert m["eur_high-end"] == pytest.approx(m["wall_clock_s"] / 3600 * 750 / 730)
        assert len(client.get_metric_history(child.info.run_id, "train_loss")) == 2  # both epochs
        overlays = [a.path for a in client.list_artifacts(child.info.run_id, "overlays")]
        assert overlays, f"{tags['veernet.tune.label']}: no overlays logged"

    capsys.readouterr()
    rc = compare.main(["--experiment", experiment, "--tracking-uri", mlflow_server, "--out", str(tmp_path / "cmp")])
    printed = capsys.readouterr().out
    assert rc == 0
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 2 * len(SWEPT)  # header + one row per loss x tier
    body = [[c.strip() for c in line.strip("|").split("|")] for line in table[1:]]
    assert sorted(int(r[0]) for r in body) == list(range(1, 2 * len(SWEPT) + 1))
    assert {(r[1], r[2]) for r in body} == {(loss, tier) for loss in SWEPT for tier in ("high-end", "advanced")}
    assert "Recommendation:" in printed and "cost arithmetic only" in printed
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 10_000
    print(f"\nsmoke sweep took {took:.0f} s\n" + "\n".join(table))
