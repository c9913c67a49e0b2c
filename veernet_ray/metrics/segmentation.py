"""Mask metrics from a confusion matrix accumulated over valid pixels.

Plain torch: a confusion matrix is one `bincount`, and its state is one integer
tensor that ranks can all-reduce (`state()` / `merge()`), so torchmetrics'
machinery buys nothing here.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch

__all__ = ["SegmentationMeter", "scores_from_confusion"]


def scores_from_confusion(confmat: torch.Tensor) -> dict[str, float]:
    """Per-class IoU, F1, precision and recall from a (C, C) matrix, rows = truth, cols = prediction.

    A score whose denominator is zero is NaN, not 0 or 1: a class absent from
    both prediction and truth has no IoU, precision of a never-predicted class
    is undefined, and so on. Averages (`miou`, `miou_fg`, `mf1_fg`) skip NaN
    classes and are NaN only when every class in them is NaN.

    Returns:
        keys iou_<k>, f1_<k>, precision_<k>, recall_<k> for each class k, and
        miou (all classes), miou_fg and mf1_fg (classes 1..C-1), accuracy.
    """
    cm = confmat.to(torch.float64)
    tp = cm.diag()
    fp = cm.sum(dim=0) - tp
    fn = cm.sum(dim=1) - tp

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp_min(1), torch.full_like(num, float("nan")))

    per_class = {
        "iou": ratio(tp, tp + fp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }
    out: dict[str, float] = {}
    for name, values in per_class.items():
        out.update({f"{name}_{k}": float(v) for k, v in enumerate(values)})

    def nanmean(values: torch.Tensor) -> float:
        return float(values.nanmean()) if values.numel() and not values.isnan().all() else math.nan

    out["miou"] = nanmean(per_class["iou"])
    out["miou_fg"] = nanmean(per_class["iou"][1:])
    out["mf1_fg"] = nanmean(per_class["f1"][1:])
    total = cm.sum()
    out["accuracy"] = float(tp.sum() / total) if total > 0 else math.nan
    return out


class SegmentationMeter:
    """Accumulates a confusion matrix over valid pixels across batches.

    Example:
        meter = SegmentationMeter(3)
        for batch in loader:
            meter.update(model(batch["image"]), batch["mask"], batch["valid"])
        scores = meter.compute()  # {"iou_0": ..., "miou_fg": ..., ...}
    """

    def __init__(self, num_classes: int) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {num_classes}")
        self.num_classes = num_classes
        self.confmat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.confmat.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Add one batch.

        Shape:
            - pred: (B, H, W) int class ids, or (B, C, H, W) logits/probabilities (argmaxed over C)
            - target: (B, H, W) int class ids
            - valid: (B, H, W) bool, or None for all pixels
        """
        C = self.num_classes
        if pred.dim() == 4:
            if pred.shape[1] != C:
                raise ValueError(f"logits have {pred.shape[1]} classes; the meter counts {C}")
            pred = pred.argmax(dim=1)
        if pred.shape != target.shape or (valid is not None and valid.shape != target.shape):
            raise ValueError(
                f"pred, target and valid must share shape (B, H, W); got {tuple(pred.shape)}, "
                f"{tuple(target.shape)}, {None if valid is None else tuple(valid.shape)}"
            )
        pred, target = pred.long(), target.long()
        if valid is not None:
            pred, target = pred[valid.bool()], target[valid.bool()]
        else:
            pred, target = pred.flatten(), target.flatten()
        if target.numel() and (target.min() < 0 or target.max() >= C or pred.min() < 0 or pred.max() >= C):
            raise ValueError(f"class ids must lie in [0, {C}) on valid pixels")
        counts = torch.bincount(target * C + pred, minlength=C * C).reshape(C, C)
        self.confmat += counts.to(self.confmat.device, torch.int64)

    def compute(self) -> dict[str, float]:
        """Scores so far; see `scores_from_confusion` for keys and NaN rules."""
        return scores_from_confusion(self.confmat)

    def state(self) -> dict[str, torch.Tensor]:
        """Plain state for checkpoints or an all-reduce (sum) across ranks."""
        return {"confmat": self.confmat.clone()}

    def merge(self, other: "SegmentationMeter | Mapping[str, torch.Tensor] | torch.Tensor") -> "SegmentationMeter":
        """Add another meter's counts (a meter, its `state()`, or a (C, C) matrix); returns self."""
        if isinstance(other, SegmentationMeter):
            cm = other.confmat
        elif isinstance(other, Mapping):
            cm = other["confmat"]
        else:
            cm = other
        if tuple(cm.shape) != (self.num_classes, self.num_classes):
            raise ValueError(f"cannot merge a {tuple(cm.shape)} confusion matrix into a {self.num_classes}-class meter")
        self.confmat += cm.to(self.confmat.device, torch.int64)
        return self
