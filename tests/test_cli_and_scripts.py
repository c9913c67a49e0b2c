"""The command line answers, and every benchmark's smoke mode runs (scripts no test runs rot)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import BIN, ROOT
from veernet_ray.cli import COMMANDS


def _run(args, timeout=300, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def test_veernet_help_lists_every_command():
    out = _run([str(BIN / "veernet"), "--help"])
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name):
    out = _run([str(BIN / "veernet"), name, "--help"])
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
    text = " ".join(out.stdout.split())
    # a default is shown once, and only when there is one (argparse's defaults formatter did neither)
    assert "(default: None)" not in text and "(default: False)" not in text
    assert not re.search(r"\(default[^()]*(\([^()]*\))?[^()]*\) \(default:", text), text


def test_unknown_command_says_what_is_valid():
    out = _run([str(BIN / "veernet"), "trian"])
    assert out.returncode == 2
    assert "unknown command 'trian'" in out.stderr and "train" in out.stderr
    assert "Traceback" not in out.stderr


def test_train_rejects_a_typo_in_an_override_without_a_traceback():
    out = _run([str(BIN / "veernet"), "train", "--set", "train.epoch=3"])
    assert out.returncode == 2
    assert "unknown key" in out.stderr and "epochs" in out.stderr
    assert "Traceback" not in out.stderr


def test_train_rejects_a_missing_init_checkpoint_before_ray_starts(tmp_path, demo_data):
    # a relative init_from used to reach the worker unresolved and fail there, after Ray started
    out = _run([str(BIN / "veernet"), "train", "--manifest", str(demo_data), "--set", f"storage={tmp_path}",
                "train.init_from=no/such/best"])
    assert out.returncode == 2
    assert "train.init_from" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "ray").exists()


def test_train_rejects_a_missing_manifest_without_a_traceback(tmp_path):
    out = _run([str(BIN / "veernet"), "train", "--manifest", str(tmp_path / "none.parquet"),
                "--set", f"storage={tmp_path}"])
    assert out.returncode == 2
    assert "not found" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "script", ["bench/train_throughput.py", "bench/trace.py", "bench/synth.py", "bench/infer_throughput.py",
               "bench/baselines.py", "bench/qc_thresholds.py", "bench/layout.py", "bench/activation_memory.py",
               "bench/shape_grid.py", "bench/step_floor.py", "bench/gpu_profile.py",
               "bench/write_stage.py", "bench/valid_region.py", "bench/padding_curves.py"]
)
def test_benchmark_smoke_modes_run(script):
    out = _run([sys.executable, script, "--smoke-test"], timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_qc_threshold_search_pools_tuning_sets_and_only_scores_checks(tmp_path):
    """Two curves.parquet files pooled for the search (their scan ids kept apart), a third only scored;
    each printed with the defaults' and the chosen thresholds' figures."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    files = []
    for k in range(3):
        n = 40
        r2 = rng.uniform(-1, 1, n)
        df = pd.DataFrame({"method": "model", "scan": [f"s{i // 2}" for i in range(n)], "class_id": 1 + np.arange(n) % 2,
                           "r2": r2, "coverage": 0.9, "qc_coverage": 0.9, "qc_confidence": 0.9, "qc_margin": r2,
                           "qc_pen": 0.3, "qc_shared": 0.0, "qc_ink": 0.95, "qc_grid": 0.0, "qc_jumps": 0.0,
                           "qc_spread": 0.1})
        files.append(tmp_path / f"c{k}.parquet")
        df.to_parquet(files[-1])
    out = _run([sys.executable, "bench/qc_thresholds.py", str(files[0]), str(files[1]), "--check", str(files[2]),
                "--keep", "min_coverage,min_confidence,min_pen,pen_margin,max_shared,min_ink,ink_contrast,max_grid,"
                "max_jumps,max_cycles,max_backup,min_spread,min_margin_2"], timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "tuning curves: 80" in out.stdout  # pooled: 2 x 40, scans of both sets kept apart
    assert f"tuning {files[0]}:" in out.stdout and f"tuning {files[1]}:" in out.stdout
    check = [line for line in out.stdout.splitlines() if line.startswith(f"check {files[2]}:")]
    assert len(check) == 1 and "defaults" in check[0] and "chosen" in check[0]
    from veernet_ray.trace.qc import QCThresholds

    # the margin, the one signal that separates (it is the R^2 here), moved off its default
    assert f"min_margin={QCThresholds().min_margin}," not in out.stdout.split("chosen:")[1]


def test_decoder_bench_runs_the_model_on_stretched_and_flipped_views(tmp_path):
    curves = tmp_path / "curves.parquet"
    out = _run([sys.executable, "bench/decoders.py", "--smoke-test", "--decoders", "ink-classes-closed",
                "--stretch", "0.5,90", "--flip", "w", "--curves", str(curves)], timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    import pandas as pd

    df = pd.read_parquet(curves)
    assert len(df) == 4 and set(df.decoder) == {"ink-classes-closed"}  # 2 scans x 2 curves
    # R^2 is read where a trace has a value: the table counts short traces beside it
    assert "coverage_c2" in out.stdout and "bad_or_short" in out.stdout and "whole_good" in out.stdout
    bad = _run([sys.executable, "bench/decoders.py", "--smoke-test", "--stretch", "90,5"])
    assert bad.returncode == 2 and "LO,HI" in bad.stderr and "Traceback" not in bad.stderr


def test_decoder_bench_views_are_the_model_on_the_changed_input(tmp_path):
    """`view_probs`: the stretch maps the chosen percentiles onto black and white, and a flipped view
    is flipped back before it is averaged (a scan and its mirror give each other's views)."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    from decoders import stretched, view_probs

    from veernet_ray.infer.cli import tiny_checkpoint
    from veernet_ray.infer.stages import ModelStage

    tiny_ckpt = tiny_checkpoint(tmp_path / "ckpt")
    rng = np.random.default_rng(3)
    image = rng.integers(60, 200, (96, 256)).astype(np.uint8)
    s = stretched(image, 0.0, 100.0)
    assert s.min() == 0 and s.max() == 255 and np.array_equal(np.argsort(image, None, kind="stable"),
                                                               np.argsort(s, None, kind="stable"))
    stage = ModelStage(tiny_ckpt.read_bytes(), batch_size=1)
    plain = view_probs(stage, image, tmp_path / "c", "f", "a", None, "")
    both = view_probs(stage, image, tmp_path / "c", "f", "a", None, "w")
    mirror = view_probs(stage, np.ascontiguousarray(image[:, ::-1]), tmp_path / "d", "f", "a", None, "")
    assert np.allclose(both, (plain + mirror[:, :, ::-1]) / 2, atol=1e-6)
    assert len(list((tmp_path / "c-flipw" / "f").glob("a-*.npy"))) == 1  # each view cached apart
    st = view_probs(stage, image, tmp_path / "c", "f", "a", (0.0, 100.0), "")
    assert np.allclose(st, stage.infer([s])[0] / 255.0, atol=1e-6)
