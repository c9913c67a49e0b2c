"""Mask metrics (confusion matrix) and recovered-curve metrics, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from veernet_ray.metrics import SegmentationMeter, curve_metrics, resample_linear

# 2x3 toy, 2 classes.
TARGET = torch.tensor([[[0, 1, 1], [0, 0, 1]]])
PRED = torch.tensor([[[0, 1, 0], [1, 1, 1]]])
# Confusion (rows truth, cols pred): truth 0 -> pred (0, 1, 1); truth 1 -> pred (1, 0, 1)
#   [[1, 2],
#    [1, 2]]
# class 1: TP 2, FP 2, FN 1 -> IoU 2/5, F1 4/7, precision 1/2, recall 2/3
# class 0: TP 1, FP 1, FN 2 -> IoU 1/4, F1 2/5, precision 1/2, recall 1/3


def test_confusion_by_hand():
    meter = SegmentationMeter(2)
    meter.update(PRED, TARGET)
    assert meter.confmat.tolist() == [[1, 2], [1, 2]]
    s = meter.compute()
    assert s["iou_1"] == pytest.approx(2 / 5) and s["f1_1"] == pytest.approx(4 / 7)
    assert s["precision_1"] == pytest.approx(1 / 2) and s["recall_1"] == pytest.approx(2 / 3)
    assert s["iou_0"] == pytest.approx(1 / 4) and s["f1_0"] == pytest.approx(2 / 5)
    assert s["precision_0"] == pytest.approx(1 / 2) and s["recall_0"] == pytest.approx(1 / 3)
    assert s["miou_fg"] == pytest.approx(2 / 5) and s["miou"] == pytest.approx((2 / 5 + 1 / 4) / 2)
    assert s["accuracy"] == pytest.approx(1 / 2)


def test_logits_are_argmaxed():
    logits = torch.nn.functional.one_hot(PRED, 2).permute(0, 3, 1, 2).float()
    a, b = SegmentationMeter(2), SegmentationMeter(2)
    a.update(logits, TARGET)
    b.update(PRED, TARGET)
    assert torch.equal(a.confmat, b.confmat)


def test_valid_mask_respected():
    valid = torch.tensor([[[True, True, True], [False, False, False]]])
    meter = SegmentationMeter(2)
    meter.update(PRED, TARGET, valid)
    # Only the first row: truth (0, 1, 1), pred (0, 1, 0).
    assert meter.confmat.tolist() == [[1, 0], [1, 1]]
    # Junk ids under padding are ignored, not an error.
    junk_target = torch.where(valid, TARGET, torch.full_like(TARGET, 255))
    meter.reset()
    meter.update(PRED, junk_target, valid)
    assert meter.confmat.tolist() == [[1, 0], [1, 1]]


def test_accumulation_across_batches_and_merge():
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 3, (4, 5, 6), generator=g)
    target = torch.randint(0, 3, (4, 5, 6), generator=g)
    valid = torch.rand(4, 5, 6, generator=g) > 0.2
    whole = SegmentationMeter(3)
    whole.update(pred, target, valid)
    parts = SegmentationMeter(3)
    parts.update(pred[:1], target[:1], valid[:1])
    parts.update(pred[1:], target[1:], valid[1:])
    assert torch.equal(whole.confmat, parts.confmat)

    # Two "ranks", reduced through state()/merge().
    r0, r1 = SegmentationMeter(3), SegmentationMeter(3)
    r0.update(pred[:2], target[:2], valid[:2])
    r1.update(pred[2:], target[2:], valid[2:])
    merged = SegmentationMeter(3).merge(r0.state()).merge(r1)
    assert merged.compute() == pytest.approx(whole.compute(), nan_ok=True)


def test_absent_class_is_nan():
    meter = SegmentationMeter(3)
    meter.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 1]]]))
    s = meter.compute()
    assert math.isnan(s["iou_2"]) and math.isnan(s["f1_2"]) and math.isnan(s["precision_2"])
    assert s["iou_1"] == 1.0
    assert s["miou_fg"] == 1.0  # NaN classes are skipped in the mean
    # Predicted but never true: precision 0, recall undefined.
    meter.update(torch.tensor([[[2]]]), torch.tensor([[[0]]]))
    s = meter.compute()
    assert s["precision_2"] == 0.0 and math.isnan(s["recall_2"]) and s["iou_2"] == 0.0


def test_meter_errors():
    meter = SegmentationMeter(2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        meter.update(torch.tensor([[[0, 2]]]), torch.tensor([[[0, 1]]]))
    with pytest.raises(ValueError, match="shape"):
        meter.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="merge"):
        meter.merge(torch.zeros(3, 3, dtype=torch.long))


# --------------------------------------------------------------------------- curves


def test_curve_identity_and_offset():
    truth = np.linspace(0.2, 0.8, 50) + 0.05 * np.sin(np.arange(50))
    m = curve_metrics(truth.copy(), truth)
    assert m["r2"] == pytest.approx(1.0) and m["mae"] == 0.0 and m["mse"] == 0.0
    assert m["pearson"] == pytest.approx(1.0) and m["coverage"] == 1.0
    assert m["r2_full"] == pytest.approx(1.0) and m["mae_full"] == 0.0

    m = curve_metrics(truth + 0.1, truth)
    assert m["mae"] == pytest.approx(0.1) and m["mse"] == pytest.approx(0.01)
    assert m["mae_full"] == pytest.approx(0.1) and m["pearson"] == pytest.approx(1.0)


def test_curve_r2_by_hand():
    # Full grid: truth (0, 1, 2, 3), pred (0, 1, 2, 4): SS_res 1, SS_tot 5 -> R^2 0.8, MAE 1/4, MSE 1/4.
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    pred = np.array([0.0, 1.0, 2.0, 4.0])
    m = curve_metrics(pred, truth, n_points=4)  # 4 samples on indices 0..3: the grid itself
    for key in ("", "_full"):
        assert m[f"r2{key}"] == pytest.approx(0.8)
        assert m[f"mae{key}"] == pytest.approx(0.25)
        assert m[f"mse{key}"] == pytest.approx(0.25)


def test_curve_nan_handling():
    truth = np.array([np.nan, 0.0, 1.0, 2.0, 3.0, np.nan])
    pred = np.array([5.0, 0.0, 1.0, np.nan, 3.0, 5.0])
    # Span: indices 1..4; 4 samples land on 1, 2, 3, 4; pred missing at index 3.
    m = curve_metrics(pred, truth, n_points=4)
    assert m["coverage"] == pytest.approx(3 / 4)
    assert m["mae"] == 0.0 and m["r2"] == pytest.approx(1.0)
    assert m["mae_full"] == 0.0  # pred outside truth's span is not scored
    # 7 samples: positions 1, 1.5, ..., 4; those touching index 3 (2.5, 3, 3.5) are missing.
    assert curve_metrics(pred, truth, n_points=7)["coverage"] == pytest.approx(4 / 7)


def test_curve_too_few_points():
    m = curve_metrics(np.array([0.1, 0.2, 0.3]), np.array([np.nan, 0.5, np.nan]))
    assert m["coverage"] == 0.0 and all(math.isnan(m[k]) for k in ("r2", "mae", "mse", "pearson", "r2_full"))
    m = curve_metrics(np.full(5, np.nan), np.arange(5.0))
    assert m["coverage"] == 0.0 and math.isnan(m["mae"]) and math.isnan(m["mae_full"])
    with pytest.raises(ValueError, match="equal length"):
        curve_metrics(np.zeros(3), np.zeros(4))


def test_resample_linear_keeps_gaps():
    values = np.array([0.0, 1.0, np.nan, 3.0])
    out = resample_linear(values, np.array([0.0, 0.5, 1.0, 1.5, 3.0]))
    np.testing.assert_array_equal(out[[0, 1, 2, 4]], [0.0, 0.5, 1.0, 3.0])
    assert np.isnan(out[3])
