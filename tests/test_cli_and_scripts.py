"""The command line answers, and every benchmark's smoke mode runs (scripts no test runs rot)."""

from __future__ import annotations

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
