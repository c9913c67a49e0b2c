"""The shared entry-point arguments: every command reads --config/--set/--manifest/smoke the same way."""

from __future__ import annotations

import argparse

import pytest

from veernet_ray.config import ConfigError, load_config
from veernet_ray.entry import DEFAULT_CONFIG, SMOKE, SMOKE_MODEL, add_config_args, config_from_args


def _args(argv, **kw):
    return add_config_args(argparse.ArgumentParser(), manifest_help="m", smoke_flag="--smoke-test", **kw).parse_args(argv)


def test_smoke_then_set_then_flags_then_manifest():
    args = _args(["--smoke-test", "--set", "train.epochs=3", "model.stem_width=16", "--manifest", "/d/m.parquet"])
    cfg = config_from_args(args, smoke=SMOKE + ["name=smoke"], after=["name=mine"])
    assert (cfg.name, cfg.train.epochs, cfg.model.stem_width) == ("mine", 3, 16)  # later overrides win
    assert cfg.data.manifest == "/d/m.parquet" and cfg.model.widths == (8, 16, 16, 32, 32)
    assert config_from_args(args, manifest_to_config=False).data.manifest is None
    plain = config_from_args(_args([]), smoke=SMOKE)  # no smoke flag: the preset is not applied
    assert plain == load_config(DEFAULT_CONFIG)
    assert SMOKE_MODEL == ["train.loss=sce", "model.stem_width=8", "model.widths=[8,16,16,32,32]"]
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_args(_args(["--set", "train.epoch=3"]))


@pytest.mark.parametrize("module", ["train", "plan", "tune", "demo"])
def test_every_run_command_takes_the_shared_arguments(module, capsys):
    import importlib

    mod = importlib.import_module(f"veernet_ray.{module}.cli" if module != "demo" else "veernet_ray.demo")
    with pytest.raises(SystemExit):
        (mod.main(["losses", "--help"]) if module == "tune" else mod.main(["--help"]))
    out = capsys.readouterr().out
    assert "--config" in out and "--set" in out
