"""Losses: hand-computed values, exact padding invariance, exact accumulation, registry, schedules."""

from __future__ import annotations

import math

import pytest
import torch

from veernet_ray.losses import LOSSES, build_loss, loss_normalizer
from veernet_ray.losses import _functional as Fn
from veernet_ray.losses.schedule import parse_schedule

torch.set_num_threads(1)

# Every registered loss with its defaults, plus the non-default options worth covering.
CASES = [(name, {}) for name in LOSSES] + [
    ("sce", {"label_smoothing": 0.1, "weight": [0.2, 1.0, 2.0]}),
    ("focal", {"gamma": 2.0, "alpha": 0.25}),
    ("dice", {"classes": [0, 1, 2], "smooth": 0.5}),
    ("tversky", {"alpha": 0.7, "beta": 0.3, "smooth": 0.0}),
    ("lovasz", {"classes": "all"}),
    ("lovasz", {"classes": [1, 2]}),
]
CASE_IDS = [f"{n}-{'-'.join(map(str, p)) or 'default'}" for n, p in CASES]


# --------------------------------------------------------------------------- hand-computed values


@pytest.fixture
def toy():
    """One image, two pixels, two classes.

    pixel 0: logits (0, 0)    -> p = (1/2, 1/2), target 0
    pixel 1: logits (0, ln 3) -> p = (1/4, 3/4), target 1
    """
    logits = torch.tensor([[[[0.0, 0.0]], [[0.0, math.log(3.0)]]]], dtype=torch.float64)
    target = torch.tensor([[[0, 1]]])
    valid = torch.ones(1, 1, 2, dtype=torch.bool)
    return logits, target, valid


def test_cross_entropy_by_hand(toy):
    logits, target, valid = toy
    # CE = (-ln 1/2 - ln 3/4) / 2 = ln(8/3) / 2
    assert Fn.soft_cross_entropy(logits, target, valid).item() == pytest.approx(math.log(8 / 3) / 2)
    assert Fn.soft_cross_entropy(logits, target, valid, reduction="sum").item() == pytest.approx(math.log(8 / 3))
    # Only pixel 0 valid: ln 2.
    only0 = torch.tensor([[[True, False]]])
    assert Fn.soft_cross_entropy(logits, target, only0).item() == pytest.approx(math.log(2))
    # Smoothing 0.2 over 2 classes: q = (0.9, 0.1) for target 0, (0.1, 0.9) for target 1.
    # pixel 0: ln 2 (p uniform); pixel 1: -(0.1 ln 1/4 + 0.9 ln 3/4).
    expected = (math.log(2) - 0.1 * math.log(0.25) - 0.9 * math.log(0.75)) / 2
    assert Fn.soft_cross_entropy(logits, target, valid, label_smoothing=0.2).item() == pytest.approx(expected)
    # Class weights (1, 3): pixel 1's term triples; the mean still divides by 2 pixels.
    expected = (math.log(2) + 3 * math.log(4 / 3)) / 2
    assert Fn.soft_cross_entropy(logits, target, valid, weight=[1.0, 3.0]).item() == pytest.approx(expected)


def test_cross_entropy_matches_torch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 5))
    valid = torch.ones(2, 4, 5, dtype=torch.bool)
    ref = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert Fn.soft_cross_entropy(logits, target, valid, label_smoothing=0.1).item() == pytest.approx(ref.item())


def test_focal_by_hand(toy):
    logits, target, valid = toy
    # (1 - 1/2)^2 ln 2 + (1 - 3/4)^2 ln(4/3), averaged over 2 pixels.
    expected = (0.25 * math.log(2) + math.log(4 / 3) / 16) / 2
    assert Fn.focal_loss(logits, target, valid, gamma=2.0).item() == pytest.approx(expected)
    # gamma 0 is cross-entropy; alpha 0.25 weighs background 0.75 and curve 0.25.
    expected = (0.75 * math.log(2) + 0.25 * math.log(4 / 3)) / 2
    assert Fn.focal_loss(logits, target, valid, gamma=0.0, alpha=0.25).item() == pytest.approx(expected)


def test_dice_and_tversky_by_hand(toy):
    logits, target, valid = toy
    # Class 1: p = (1/2, 3/4), truth = (0, 1): TP = 3/4, FP = 1/2, FN = 1/4.
    # Dice, smooth 1: 1 - (1.5 + 1) / (1.5 + 0.75 + 1) = 3/13.
    assert Fn.dice_loss(logits, target, valid).item() == pytest.approx(3 / 13)
    # smooth 0: 1 - 1.5 / 2.25 = 1/3.
    assert Fn.dice_loss(logits, target, valid, smooth=0.0).item() == pytest.approx(1 / 3)
    # Tversky (alpha FP 0.3, beta FN 0.7), smooth 0: 1 - 0.75 / (0.75 + 0.15 + 0.175).
    expected = 1 - 0.75 / 1.075
    assert Fn.tversky_loss(logits, target, valid, smooth=0.0).item() == pytest.approx(expected)
    # alpha weighs FP: doubling it raises the loss by the FP term.
    more_fp = Fn.tversky_loss(logits, target, valid, alpha=0.6, beta=0.7, smooth=0.0).item()
    assert more_fp == pytest.approx(1 - 0.75 / (0.75 + 0.3 + 0.175))
    assert Fn.tversky_loss(logits, target, valid, alpha=0.5, beta=0.5, smooth=0.0).item() == pytest.approx(1 / 3)


def test_lovasz_by_hand(toy):
    logits, target, valid = toy
    # Class 0: errors (1/2 on a class-0 pixel, 1/4 on a non-class-0 pixel); sorted descending
    #   the Lovasz gradient is (1, 0) -> 1/2.
    # Class 1: errors (1/2 on a non-class-1 pixel, 1/4 on a class-1 pixel); Jaccard losses of
    #   the prefixes are 1/2 then 1 -> gradient (1/2, 1/2) -> 1/4 + 1/8 = 3/8.
    # Both classes present: (1/2 + 3/8) / 2 = 7/16.
    assert Fn.lovasz_softmax(logits, target, valid).item() == pytest.approx(7 / 16)
    assert Fn.lovasz_softmax(logits, target, valid, classes=[1]).item() == pytest.approx(3 / 8)


def test_perfect_prediction_is_near_zero():
    target = torch.tensor([[[0, 1, 1, 0]]])
    logits = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).double() * 30
    valid = torch.ones_like(target, dtype=torch.bool)
    for name in LOSSES:
        assert build_loss(name, **({"smooth": 0.0} if name in ("dice", "tversky") else {}))(logits, target, valid) < 1e-9


# --------------------------------------------------------------------------- padding and accumulation


def _padded_pair(seed: int = 0):
    """Two images of (5, 7) and (3, 9) padded into (2, 3, 5, 9); padding filled with junk."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 7), (3, 9)]
    logits = torch.randn(2, 3, 5, 9, generator=g, dtype=torch.float64) * 2
    target = (torch.rand(2, 5, 9, generator=g) < 0.3).long() * torch.randint(1, 3, (2, 5, 9), generator=g)
    valid = torch.zeros(2, 5, 9, dtype=torch.bool)
    for i, (h, w) in enumerate(shapes):
        valid[i, :h, :w] = True
    logits = torch.where(valid.unsqueeze(1), logits, torch.full_like(logits, 50.0))  # extreme junk
    target = torch.where(valid, target, torch.full_like(target, 255))  # an "ignore" id, out of range
    return logits.requires_grad_(), target, valid, shapes


@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_padding_invariance(name, params):
    loss = build_loss(name, **params)
    logits, target, valid, shapes = _padded_pair()
    padded = loss(logits, target, valid)
    (grad_padded,) = torch.autograd.grad(padded, logits)

    # Each image alone, unpadded, combined per the unit.
    total = sum(
        loss(logits[i : i + 1, :, :h, :w], target[i : i + 1, :h, :w], valid[i : i + 1, :h, :w], reduction="sum")
        for i, (h, w) in enumerate(shapes)
    )
    count = sum(h * w for h, w in shapes) if loss.unit == "pixel" else len(shapes)
    separate = total / count
    (grad_separate,) = torch.autograd.grad(separate, logits)

    torch.testing.assert_close(padded, separate, atol=1e-6, rtol=0)
    torch.testing.assert_close(grad_padded, grad_separate, atol=1e-6, rtol=0)
    pad = ~valid.unsqueeze(1).expand_as(logits)
    assert (grad_padded[pad] == 0).all(), "padding must get exactly zero gradient"


@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_accumulation_equivalence(name, params):
    loss = build_loss(name, **params)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, 6, 8, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (4, 6, 8), generator=g)
    valid = torch.ones(4, 6, 8, dtype=torch.bool)
    for i, (h, w) in enumerate([(6, 8), (4, 8), (6, 3), (2, 5)]):
        valid[i, h:] = False
        valid[i, :, w:] = False
    full = loss(logits, target, valid, reduction="mean")

    micro = [slice(0, 1), slice(1, 3), slice(3, 4)]
    total = sum(loss(logits[s], target[s], valid[s], reduction="sum") for s in micro)
    normalizer = sum(loss_normalizer(loss.unit, valid[s]) for s in micro)
    assert abs((total / normalizer).item() - full.item()) < 1e-10
    assert loss_normalizer(loss.unit, valid).item() == (valid.sum().item() if loss.unit == "pixel" else 4)


@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("case", ["all_background", "one_valid_pixel", "no_valid_pixel"])
def test_gradients_finite_on_edge_cases(name, params, case):
    loss = build_loss(name, **params)
    logits = (torch.randn(2, 3, 4, 4, dtype=torch.float64) * 20).requires_grad_()
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    valid = torch.ones(2, 4, 4, dtype=torch.bool)
    if case != "all_background":
        valid[:] = False
        if case == "one_valid_pixel":
            valid[1, 2, 3] = True
            target[1, 2, 3] = 2
    value = loss(logits, target, valid)
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    assert (grad[~valid.unsqueeze(1).expand_as(grad)] == 0).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_bf16_logits(name):
    logits = torch.randn(1, 2, 4, 4).bfloat16()
    value = build_loss(name)(logits, torch.zeros(1, 4, 4, dtype=torch.long), torch.ones(1, 4, 4, dtype=torch.bool))
    assert value.dtype == torch.float32 and torch.isfinite(value)


# --------------------------------------------------------------------------- registry and schedules


def test_registry_units():
    assert {n: build_loss(n).unit for n in LOSSES} == {
        "dice": "image",
        "tversky": "image",
        "lovasz": "image",
        "focal": "pixel",
        "sce": "pixel",
    }


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match="dice, tversky, lovasz, focal, sce"):
        build_loss("iou")


def test_unknown_param_names_valid_params():
    with pytest.raises(TypeError, match="alpa.*valid parameters: reduction, alpha, beta, smooth, classes"):
        build_loss("tversky", alpa=0.3)


def test_bad_inputs():
    logits = torch.randn(1, 2, 3, 3)
    with pytest.raises(ValueError, match="reduction"):
        Fn.dice_loss(logits, torch.zeros(1, 3, 3, dtype=torch.long), torch.ones(1, 3, 3, dtype=torch.bool), reduction="none")
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        Fn.focal_loss(logits, torch.zeros(1, 3, 4, dtype=torch.long), torch.ones(1, 3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        Fn.focal_loss(logits, torch.zeros(1, 3, 3, dtype=torch.long), torch.ones(1, 3, 3))
    with pytest.raises(ValueError, match="unit"):
        loss_normalizer("batch", torch.ones(1, 3, 3, dtype=torch.bool))


def test_schedule_single_and_midpoint():
    s = parse_schedule("sce", epochs=4)
    assert [s.name_for_epoch(e) for e in range(4)] == ["sce"] * 4
    s = parse_schedule("sce->lovasz", epochs=10)
    assert s.starts == (0, 5)
    assert [s.name_for_epoch(e) for e in (0, 4, 5, 9)] == ["sce", "sce", "lovasz", "lovasz"]
    assert s.loss_for_epoch(4).unit == "pixel" and s.loss_for_epoch(5).unit == "image"
    assert s.loss_for_epoch(0) is s.loss_for_epoch(1)  # built once


def test_schedule_explicit_switch_and_params():
    s = parse_schedule("sce -> tversky@3", epochs=6, params={"tversky": {"alpha": 0.2, "beta": 0.8}})
    assert s.starts == (0, 3) and s.names == ("sce", "tversky")
    assert s.loss_for_epoch(3).params == {"alpha": 0.2, "beta": 0.8}
    s = parse_schedule("sce->dice@2->lovasz", epochs=9)
    assert s.starts == (0, 2, 6)


@pytest.mark.parametrize(
    "spec, epochs, error, match",
    [
        ("sce->iou", 10, KeyError, "valid losses: dice, tversky, lovasz, focal, sce"),
        ("sce->lovasz@0", 10, ValueError, r"outside \[1, 9\]"),
        ("sce->lovasz@10", 10, ValueError, r"outside \[1, 9\]"),
        ("sce->lovasz@x", 10, ValueError, "not an integer"),
        ("sce@1->lovasz", 10, ValueError, "starts at epoch 0"),
        ("sce->dice@5->lovasz@3", 10, ValueError, "strictly increasing"),
        ("sce->", 10, ValueError, "malformed"),
        ("sce->lovasz", 1, ValueError, "outside"),
    ],
)
def test_schedule_errors(spec, epochs, error, match):
    with pytest.raises(error, match=match):
        parse_schedule(spec, epochs)


def test_schedule_epoch_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        parse_schedule("sce", 3).loss_for_epoch(3)
    with pytest.raises(TypeError, match="valid parameters"):
        parse_schedule("sce", 3, params={"sce": {"gamma": 2}})
