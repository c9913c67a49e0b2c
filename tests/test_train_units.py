"""Training pieces without Ray: accumulation equivalence, bucketing, config, schedule of the LR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from veernet_ray.config import ConfigError, RunConfig, load_config
from veernet_ray.data.buckets import accumulation_steps, batch_padding, plan_batches, plan_padding
from veernet_ray.data.collate import pad_collate, to_tensors
from veernet_ray.losses import build_loss
from veernet_ray.model import VeerNet, VeerNetConfig
from veernet_ray.train.loop import accumulate_gradients, lr_lambda

TINY = VeerNetConfig(num_classes=3, stem_width=4, widths=(4, 8, 8, 8, 8), attn_layers=1, attn_heads=2)


def _samples(rng, shapes):
    images, masks = [], []
    for h, w in shapes:
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[h // 3, :] = 1
        mask[2 * h // 3, ::2] = 2
        images.append(img)
        masks.append(mask)
    return images, masks


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("loss_name", ["sce", "focal", "dice", "tversky", "lovasz"])
def test_accumulated_micro_batches_match_one_padded_batch(loss_name):
    """k accumulated micro-batches give the gradient of one padded batch of all of them (float64, 1e-5).

    The samples have different sizes; all are padded to one common shape, the
    shape the big batch has, because the network itself sees its padding
    (convolution borders, GroupNorm statistics): the loss ignores padding
    exactly, the features do not, so equivalence is defined on equal tensors.
    """
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    shapes = [(40, 90), (64, 60), (33, 128), (50, 100), (64, 128), (20, 70)]
    images, masks = _samples(rng, shapes)
    full = pad_collate(images, masks)  # (6, 64, 128)
    model = VeerNet(TINY).double()
    loss_fn = build_loss(loss_name)

    def tensors(sl):
        t = to_tensors({k: v[sl] for k, v in full.items()})
        t["image"] = t["image"].double()
        return t

    model.zero_grad()
    accumulate_gradients(model, loss_fn, [tensors(slice(0, 6))], device="cpu")
    one = _grads(model).clone()
    model.zero_grad()
    accumulate_gradients(model, loss_fn, [tensors(slice(0, 2)), tensors(slice(2, 3)), tensors(slice(3, 6))], device="cpu")
    acc = _grads(model)
    assert torch.allclose(one, acc, rtol=1e-5, atol=1e-10), (one - acc).abs().max()
    # and the accumulated loss is the mean over the union (pixels or images, per the loss's unit)
    full_t = tensors(slice(0, 6))
    with torch.no_grad():
        expected = loss_fn(model(full_t["image"]), full_t["mask"], full_t["valid"], reduction="mean")
    model.zero_grad()
    got = accumulate_gradients(model, loss_fn, [tensors(slice(0, 3)), tensors(slice(3, 6))], device="cpu")
    assert got == pytest.approx(float(expected), rel=1e-9)


def test_bucketing_cuts_padding_to_target_on_the_seed_distribution():
    """Seed widths 3,200-12,800 x heights 480-640, physical batch 4.

    Every scan must be padded to multiples of 32 whatever the batching: about
    2.8% of pixels for heights uniform in 480-640, the floor. Bucketing keeps
    the padding it adds on top of that under the 3% target in every batch
    (and ~0.5% overall); a random grouping wastes about a quarter.
    """
    rng = np.random.default_rng(0)
    shapes = [(int(h), int(w)) for h, w in zip(rng.integers(480, 641, 2000), rng.integers(3200, 12801, 2000))]
    batches = plan_batches(shapes, 4, max_padding=0.03)
    bucketed = plan_padding(shapes, batches)
    naive = plan_padding(shapes, plan_batches(shapes, 4, bucketed=False, seed=0))
    assert all(batch_padding([shapes[i] for i in b]).bucket_padding <= 0.03 for b in batches)
    assert bucketed.bucket_padding < 0.01, bucketed
    floor = 1 - bucketed.real_px / bucketed.rounded_px
    assert 0.02 < floor < 0.035 and bucketed.padding < floor + 0.01, bucketed
    assert np.mean([len(b) for b in batches]) > 3.5  # batches stay nearly full
    assert 0.15 < naive.padding < 0.40, naive  # data/buckets.py: "about a quarter"
    batches = plan_batches(shapes, 4)
    assert sorted(i for b in batches for i in b) == list(range(2000))  # every scan exactly once
    assert all(len(b) <= 4 for b in batches)


def test_batch_padding_by_hand():
    stats = batch_padding([(30, 60), (64, 64)])  # padded to (64, 64) each
    assert stats.computed_px == 2 * 64 * 64
    assert stats.real_px == 30 * 60 + 64 * 64
    assert stats.rounded_px == 32 * 64 + 64 * 64
    assert stats.padding == pytest.approx(1 - (1800 + 4096) / 8192)


def test_accumulation_steps():
    assert accumulation_steps(16, 4, 1) == 4
    assert accumulation_steps(16, 4, 2) == 2
    assert accumulation_steps(16, 16, 1) == 1
    assert accumulation_steps(16, 3, 1) == 6  # rounds up: never below the effective batch


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_lambda(s, warmup=4, total=20, min_ratio=0.1) for s in range(20)]
    assert lrs[0] == pytest.approx(0.25) and lrs[3] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[-1] >= 0.1


def test_config_loads_shipped_yaml_and_rejects_typos(tmp_path):
    from veernet_ray.config import PROJECT_ROOT

    for name in ("demo.yaml", "seed.yaml", "seed_binary.yaml"):
        cfg = load_config(PROJECT_ROOT / "configs" / name)
        assert isinstance(cfg, RunConfig)
    cfg = load_config(PROJECT_ROOT / "configs" / "demo.yaml", ["train.epochs=2", "model.widths=[8,8,16,16,32]"])
    assert cfg.train.epochs == 2 and cfg.model.widths == (8, 8, 16, 16, 32)
    assert cfg.with_overrides({"train.loss": "dice"}).train.loss == "dice"
    with pytest.raises(ConfigError, match="unknown key.*epoch"):
        load_config(None, ["train.epoch=2"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(None, ["train.epochs=two"])
    with pytest.raises(ConfigError, match="binary"):
        load_config(None, ["train.stage=three"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 1}\nmodle: {}\n")
    with pytest.raises(ConfigError, match="modle"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_decode_batch_collates_a_planned_batch_and_merges_classes_for_the_binary_stage(demo_data):
    """The Ray Data map function on its own: a planned micro-batch -> one pre-collated row."""
    from veernet_ray.data.pipeline import decode_batch, load_items, plan_split

    items = load_items(demo_data, "train")
    plan = plan_split(items, 3, multiple=32, num_workers=2)
    assert len(plan.batches) % 2 == 0  # every worker takes the same number of steps
    rows = plan.rows(items)
    multi = decode_batch(rows[0], binary=False, with_truth=True, multiple=32)
    binary = decode_batch(rows[0], binary=True, with_truth=False, multiple=32)
    b, hp, wp = multi["image"].shape
    assert hp % 32 == 0 and wp % 32 == 0 and multi["image"].dtype == np.uint8
    assert set(np.unique(multi["mask"])) <= {0, 1, 2} and 2 in multi["mask"]
    assert set(np.unique(binary["mask"])) <= {0, 1}
    assert ((multi["mask"] > 0) == (binary["mask"] > 0)).all()
    for i, (h, w) in enumerate(multi["shape"]):
        assert multi["valid"][i, :h, :w].all() and not multi["valid"][i, h:, :].any()
        # truth positions are given where the curve is drawn, NaN over the padding
        assert np.isfinite(multi["truth"][i, 0, :w]).mean() > 0.5
        assert np.isnan(multi["truth"][i, :, w:]).all()


def test_validation_batch_with_an_unreadable_truth_says_so_and_keeps_going(demo_data, tmp_path, capsys):
    """One sample whose sidecar cannot be read (a log scale edge written as 0) must not end a training
    run at its validation: that scan's truth is NaN (left out of the curve metrics), the others' is
    read, and the message names the sample and what to do."""
    import dataclasses
    import json

    from veernet_ray.data.pipeline import decode_batch, load_items, plan_split

    items = load_items(demo_data, "train")[:2]
    broken = json.loads(Path(items[0].calibration).read_text())
    broken["curves"][0].update(scale="log", ref=[{"px": items[0].height - 1, "value": 0.0},
                                                 {"px": 0, "value": 1000.0}])
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    items[0] = dataclasses.replace(items[0], calibration=str(tmp_path / "broken.json"))
    plan = plan_split(items, 2, multiple=32, num_workers=1)
    rows = plan.rows(items)
    out = [decode_batch(r, binary=False, with_truth=True, multiple=32) for r in rows]
    by_id = {i: (o, k) for o in out for k, i in enumerate(json.loads(o["ids"]))}
    bad, k = by_id[items[0].id]
    assert np.isnan(bad["truth"][k]).all()
    good, j = by_id[items[1].id]
    assert np.isfinite(good["truth"][j, 0]).mean() > 0.5
    err = capsys.readouterr().err
    assert items[0].id in err and "truth unreadable" in err and "regenerate" in err


def test_grid_plan_pads_every_batch_to_its_cell_and_fills_batches(demo_data):
    """Grid batching (issue 13): each micro-batch is padded to one cell of a small fixed grid, and
    batches fill to the physical batch where height buckets capped at 3% padding leave them short."""
    from veernet_ray.data.pipeline import decode_batch, load_items, plan_split
    from veernet_ray.data.shapes import GPU_COST, choose_grid

    items = load_items(demo_data, "train")
    shapes = [(it.height, it.width) for it in items]
    grid = choose_grid(shapes, 4, GPU_COST, multiple=32).grid
    gridded = plan_split(items, 4, multiple=32, num_workers=2, grid=grid)
    bucketed = plan_split(items, 4, multiple=32, num_workers=2)
    assert len(gridded.batches) % 2 == 0
    assert {i for b in gridded.batches for i in b} == set(range(len(items)))  # every item, none lost
    assert gridded.fill(4) > bucketed.fill(4) and gridded.distinct_shapes < bucketed.distinct_shapes
    assert {s for s in gridded.pad_to} <= {(h, w) for h in grid.heights for w in grid.widths}
    rows = gridded.rows(items)
    for b in range(min(3, len(rows))):
        out = decode_batch(rows[b], binary=False, with_truth=False, multiple=32)
        assert out["image"].shape[1:] == gridded.pad_to[b]
        for i, (h, w) in enumerate(out["shape"]):
            assert out["valid"][i, :h, :w].all() and out["valid"][i].sum() == h * w
