"""One padding multiple, taken from the model config: a six-block VeerNet (multiple 2**6 = 64)
loads from `--set`, trains on the data pipeline's batches and digitises in tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from veernet_ray.config import ConfigError, load_config
from veernet_ray.data.collate import to_tensors
from veernet_ray.data.pipeline import Item, decode_batch, plan_split
from veernet_ray.io import write_tiff
from veernet_ray.losses.schedule import parse_schedule
from veernet_ray.model import VeerNet
from veernet_ray.model import model_config
from veernet_ray.train.loop import accumulate_gradients

SIX_BLOCKS = ["model.stem_width=8", "model.widths=[8,8,16,16,32,32]", "model.attn_layers=1", "train.loss=sce"]


def _scan(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((h, w), 250, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x = np.arange(w)
    rows = (h * 0.4 + h * 0.2 * np.sin(x / 13.0)).astype(int)
    img[rows, x], mask[rows, x] = 10, 1
    return img, mask


def test_model_widths_set_the_multiple_and_bad_widths_fail_when_loaded():
    cfg = load_config(None, SIX_BLOCKS)
    assert cfg.model.multiple == 64 == VeerNet(model_config(cfg)).multiple
    assert load_config(None, []).model.multiple == 32
    for bad, message in ((["model.widths=[]"], "at least one encoder width"),
                         (["model.widths=[8,16,30]"], r"model: widths\[-1\]=30 must be divisible by attn_heads=4"),
                         (["model.widths=[8,0,32]"], r"model: widths\[1\] must be a positive int"),
                         (["model.attn_layers=-1"], "attn_layers")):
        with pytest.raises(ConfigError, match=message):
            load_config(None, bad)
    with pytest.raises(TypeError, match="multiple"):  # the pipeline has no silent default multiple
        plan_split([], 2)


def test_a_six_block_model_trains_on_the_pipeline_s_batches(tmp_path):
    cfg = load_config(None, SIX_BLOCKS)
    items = []
    for i, (h, w) in enumerate([(70, 150), (90, 200), (75, 170)]):
        img, mask = _scan(h, w)
        write_tiff(tmp_path / f"s{i}.tif", img)
        write_tiff(tmp_path / f"s{i}.mask.tif", mask)
        items.append(Item(f"s{i}", str(tmp_path / f"s{i}.tif"), str(tmp_path / f"s{i}.mask.tif"), None, None, h, w))
    plan = plan_split(items, 2, multiple=cfg.model.multiple, max_padding=cfg.data.max_padding)
    rows = [decode_batch(r, binary=False, with_truth=False, multiple=cfg.model.multiple) for r in plan.rows(items)]
    assert all(r["image"].shape[1] % 64 == 0 and r["image"].shape[2] % 64 == 0 for r in rows)
    torch.manual_seed(0)
    model = VeerNet(model_config(cfg))
    loss_fn = parse_schedule("sce", 1).loss_for_epoch(0)
    loss = accumulate_gradients(model, loss_fn, [to_tensors(r) for r in rows], device="cpu")
    assert np.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_a_six_block_model_digitises_in_tiles(tmp_path):
    from veernet_ray.infer.stages import ModelStage
    from veernet_ray.model import VeerNetConfig
    from veernet_ray.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = VeerNet(VeerNetConfig(stem_width=8, widths=(8, 8, 16, 16, 32, 32), attn_layers=1))
    save_checkpoint(tmp_path, model=net)
    stage = ModelStage(str(tmp_path / "checkpoint.pt"), batch_size=2, max_width=512, overlap=64)
    assert stage.multiple == 64
    img, _ = _scan(70, 1200)
    probs = stage.infer([img])[0]  # wider than max_width: three 512-wide tiles, each padded to 128 x 512
    assert probs.shape == (3, 70, 1200) and probs.dtype == np.uint8
    narrow = stage.infer([_scan(70, 150)[0], _scan(75, 170)[0]])
    assert [p.shape for p in narrow] == [(3, 70, 150), (3, 75, 170)]
