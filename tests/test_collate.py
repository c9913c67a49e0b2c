"""Padded collate, padding fraction and the shared normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from veernet_ray.data import normalize_image, pad_collate, padding_fraction, round_up, to_tensors


def _img(h: int, w: int, value: int = 0) -> np.ndarray:
    return np.full((h, w), value, dtype=np.uint8)


def test_round_up():
    assert [round_up(n, 32) for n in (1, 32, 33, 640)] == [32, 32, 64, 640]
    with pytest.raises(ValueError):
        round_up(5, 0)


def test_pads_bottom_right_to_multiple():
    images = [_img(40, 70, 10), _img(20, 100, 20)]
    masks = [_img(40, 70, 1), _img(20, 100, 2)]
    batch = pad_collate(images, masks)
    assert batch["image"].shape == batch["mask"].shape == batch["valid"].shape == (2, 64, 128)
    assert batch["image"].dtype == np.uint8 and batch["mask"].dtype == np.uint8 and batch["valid"].dtype == bool
    assert batch["shape"].dtype == np.int32 and batch["shape"].tolist() == [[40, 70], [20, 100]]
    # Real pixels top-left, padding white (image) / background (mask) / invalid.
    assert (batch["image"][0, :40, :70] == 10).all() and (batch["mask"][0, :40, :70] == 1).all()
    assert (batch["image"][1, :20, :100] == 20).all() and (batch["mask"][1, :20, :100] == 2).all()
    for i, (h, w) in enumerate(batch["shape"]):
        assert batch["valid"][i].sum() == h * w
        assert batch["valid"][i, :h, :w].all()
        pad = ~batch["valid"][i]
        assert (batch["image"][i][pad] == 255).all()
        assert (batch["mask"][i][pad] == 0).all()


def test_exact_multiple_needs_no_padding_and_masks_optional():
    batch = pad_collate([_img(32, 64)], multiple=32)
    assert batch["image"].shape == (1, 32, 64)
    assert batch["valid"].all()
    assert "mask" not in batch
    assert pad_collate([_img(5, 7)], multiple=1)["image"].shape == (1, 5, 7)


@pytest.mark.parametrize(
    "images, masks, error, match",
    [
        ([], None, ValueError, "at least one"),
        ([_img(4, 4), np.zeros((4, 4), np.float32)], None, TypeError, r"images\[1\] must be uint8"),
        ([np.zeros((4, 4, 3), np.uint8)], None, ValueError, r"images\[0\] must be 2D"),
        ([[[0]]], None, TypeError, r"images\[0\] must be a numpy array"),
        ([_img(4, 4), _img(4, 4)], [_img(4, 4)], ValueError, "2 images but 1 masks"),
        ([_img(4, 4), _img(4, 6)], [_img(4, 4), _img(4, 5)], ValueError, r"masks\[1\] has shape \(4, 5\)"),
        ([_img(4, 4)], [np.zeros((4, 4), np.int64)], TypeError, r"masks\[0\] must be uint8"),
    ],
)
def test_errors(images, masks, error, match):
    with pytest.raises(error, match=match):
        pad_collate(images, masks)


def test_padding_fraction_by_hand():
    # Both pad to (640, 6400): real pixels 640*3200 + 640*6400 of 2*640*6400 -> 0.25 padding.
    assert padding_fraction([(640, 3200), (640, 6400)]) == pytest.approx(0.25)
    # (40, 70) alone pads to (64, 96): 1 - 2800/6144.
    assert padding_fraction([(40, 70)]) == pytest.approx(1 - 2800 / 6144)
    assert padding_fraction([(64, 96)]) == 0.0


def test_padding_fraction_matches_collate():
    images = [_img(40, 70), _img(20, 100), _img(33, 5)]
    batch = pad_collate(images)
    assert padding_fraction([a.shape for a in images]) == pytest.approx(1 - batch["valid"].mean())


def test_normalize_image_is_ink_positive():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8)
    torch.testing.assert_close(normalize_image(x), torch.tensor([1.0, 0.0, 0.8]))
    assert normalize_image(x).dtype == torch.float32


@pytest.mark.parametrize("as_torch", [False, True])
def test_to_tensors(as_torch):
    batch = pad_collate([_img(40, 70, 0), _img(20, 100, 255)], [_img(40, 70, 1), _img(20, 100, 2)])
    if as_torch:
        batch = {k: torch.from_numpy(v) for k, v in batch.items()}
    t = to_tensors(batch)
    assert t["image"].shape == (2, 1, 64, 128) and t["image"].dtype == torch.float32
    assert t["mask"].shape == (2, 64, 128) and t["mask"].dtype == torch.int64
    assert t["valid"].dtype == torch.bool
    assert (t["image"][0, 0, :40, :70] == 1.0).all()  # black ink -> 1
    assert (t["image"][~t["valid"].unsqueeze(1)] == 0.0).all()  # white padding -> 0
    assert t["mask"][1, 0, 0] == 2


def test_to_tensors_channels_last_and_image_only():
    t = to_tensors({"image": np.zeros((2, 32, 64), np.uint8)}, channels_last=True)
    assert t["image"].is_contiguous(memory_format=torch.channels_last)
    assert set(t) == {"image"}


def test_margin_and_paper_fill():
    grey = _img(40, 70, 200)
    grey[:, 10] = 0  # one dark column: the paper level is the 90th percentile, not the mean
    batch = pad_collate([grey, _img(20, 60, 255)], margin=8, fill="paper")
    # 40 + 8 rows and 70 + 8 columns at least, rounded up to the multiple
    assert batch["image"].shape == (2, 64, 96)
    pad = ~batch["valid"]
    assert (batch["image"][0][pad[0]] == 200).all() and (batch["image"][1][pad[1]] == 255).all()
    # an exact multiple gains a whole multiple of margin; without one it gains none
    assert pad_collate([_img(32, 64)], margin=1)["image"].shape == (1, 64, 96)
    assert pad_collate([_img(32, 64)], fill=7)["image"].shape == (1, 32, 64)
    assert (pad_collate([_img(30, 60)], fill=7)["image"][0, 30:] == 7).all()
    # pad_to is the caller's cell: the margin is theirs to keep
    assert pad_collate([_img(40, 70)], pad_to=(64, 96), margin=100)["image"].shape == (1, 64, 96)
    with pytest.raises(ValueError, match="fill must be"):
        pad_collate([_img(4, 4)], fill="white")
    with pytest.raises(ValueError, match="margin must be"):
        pad_collate([_img(4, 4)], margin=-1)
