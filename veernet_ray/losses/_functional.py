"""Segmentation losses as pure tensor functions, exact under padding.

Every loss takes logits (B, C, H, W), integer targets (B, H, W) and a validity
mask (B, H, W) from `pad_collate`. Padded pixels contribute exactly zero to the
value and to the gradient: per-pixel terms are masked with `torch.where` (not a
multiplication, which would turn a NaN or inf in padding into NaN) before any
reduction. C >= 2 always; a binary model is a 2-class softmax, so one
implementation serves both stages.

Reduction units make gradient accumulation exact. A loss's `reduction="sum"` is
a sum over its unit, and `"mean"` divides by the unit count of the batch:

- "pixel" unit (soft CE, focal): sum over valid pixels / number of valid pixels.
- "image" unit (Dice, Tversky, Lovasz): each image's loss is computed over its
  own valid pixels; sum over images / number of images.

So summing `reduction="sum"` over micro-batches and dividing once by the total
`loss_normalizer` gives exactly the loss of one batch holding all of them.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "UNITS",
    "loss_normalizer",
    "soft_cross_entropy",
    "focal_loss",
    "dice_loss",
    "tversky_loss",
    "lovasz_softmax",
]

Reduction = Literal["mean", "sum"]
UNITS = ("pixel", "image")


# --------------------------------------------------------------------------- helpers


def loss_normalizer(unit: str, valid: torch.Tensor) -> torch.Tensor:
    """What `reduction="mean"` divides a `reduction="sum"` loss by.

    Args:
        unit: "pixel" (number of valid pixels) or "image" (batch size).
        valid: bool (B, H, W).

    Returns:
        A float scalar tensor on `valid`'s device. 0 valid pixels give 0; callers
        dividing by it should clamp (the mean reductions here clamp at 1).
    """
    if unit == "pixel":
        return valid.sum().to(torch.float32)
    if unit == "image":
        return torch.tensor(float(valid.shape[0]), device=valid.device)
    raise ValueError(f"unknown loss unit {unit!r}; valid units: {', '.join(UNITS)}")


def _check(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, reduction: str) -> None:
    if logits.dim() != 4 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (B, C, H, W) with C >= 2; got {tuple(logits.shape)}")
    B, _, H, W = logits.shape
    if tuple(target.shape) != (B, H, W) or tuple(valid.shape) != (B, H, W):
        raise ValueError(
            f"target and valid must be (B, H, W) = {(B, H, W)}; got {tuple(target.shape)} and {tuple(valid.shape)}"
        )
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be a bool tensor; got {valid.dtype}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")


def _upcast(logits: torch.Tensor) -> torch.Tensor:
    # Softmax sums over millions of pixels lose too much in fp16/bf16.
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _safe_target(target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # Padding may hold any id (e.g. 255 as "ignore"); make it a legal index so
    # gather/one_hot never fail. Its terms are masked out afterwards.
    return torch.where(valid, target, torch.zeros_like(target)).long()


def _reduce_pixels(per_pixel: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    total = torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).sum()
    if reduction == "sum":
        return total
    return total / loss_normalizer("pixel", valid).clamp_min(1.0).to(total.dtype)


def _reduce_images(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_image.sum() if reduction == "sum" else per_image.mean()


def _class_weights(weight: Sequence[float] | torch.Tensor | None, C: int, like: torch.Tensor) -> torch.Tensor | None:
    if weight is None:
        return None
    w = torch.as_tensor(weight, dtype=like.dtype, device=like.device)
    if w.shape != (C,):
        raise ValueError(f"class weights must have one entry per class ({C}); got shape {tuple(w.shape)}")
    return w


def _select_classes(classes: Sequence[int] | None, C: int) -> list[int]:
    # Default: foreground only. Background covers >99% of a log, so including it
    # lets the loss look good while every curve pixel is missed.
    chosen = list(range(1, C)) if classes is None else [int(c) for c in classes]
    if not chosen or any(c < 0 or c >= C for c in chosen):
        raise ValueError(f"classes must be a non-empty list of ids in [0, {C}); got {classes!r}")
    return chosen


def _masked_probs_and_onehot(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and one-hot targets, both zeroed on padding. Shapes (B, C, H, W)."""
    C = logits.shape[1]
    v = valid.unsqueeze(1)
    probs = torch.where(v, logits.softmax(dim=1), torch.zeros((), dtype=logits.dtype, device=logits.device))
    onehot = F.one_hot(_safe_target(target, valid), C).permute(0, 3, 1, 2).to(logits.dtype)
    onehot = torch.where(v, onehot, torch.zeros((), dtype=logits.dtype, device=logits.device))
    return probs, onehot


# --------------------------------------------------------------------------- pixel unit


def soft_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    label_smoothing: float = 0.0,
    weight: Sequence[float] | torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Cross-entropy against label-smoothed (soft) targets; unit "pixel".

    Per pixel: -sum_c w_c q_c log p_c with q = (1 - eps) one_hot + eps / C.
    Unlike `F.cross_entropy(weight=...)`, "mean" divides by the valid pixel
    count, not by the summed weights, so micro-batch sums stay additive.

    Shape:
        - logits: (B, C, H, W) float
        - target: (B, H, W) int class ids
        - valid: (B, H, W) bool
        - output: scalar
    """
    _check(logits, target, valid, reduction)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
    logits = _upcast(logits)
    C = logits.shape[1]
    logp = logits.log_softmax(dim=1)
    q = F.one_hot(_safe_target(target, valid), C).permute(0, 3, 1, 2).to(logp.dtype)
    q = q * (1.0 - label_smoothing) + label_smoothing / C
    w = _class_weights(weight, C, logp)
    if w is not None:
        q = q * w.view(1, C, 1, 1)
    per_pixel = -(q * logp).sum(dim=1)
    return _reduce_pixels(per_pixel, valid, reduction)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Softmax focal loss (Lin et al. 2017); unit "pixel".

    Per pixel: -alpha_t (1 - p_t)^gamma log p_t, with p_t the probability of the
    true class. `alpha`: None (no weighting), a float a (weight a for every
    foreground class, 1 - a for background, the binary convention), or one
    weight per class.

    Shape:
        - logits: (B, C, H, W) float
        - target: (B, H, W) int class ids
        - valid: (B, H, W) bool
        - output: scalar
    """
    _check(logits, target, valid, reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0; got {gamma}")
    logits = _upcast(logits)
    C = logits.shape[1]
    tgt = _safe_target(target, valid)
    logpt = logits.log_softmax(dim=1).gather(1, tgt.unsqueeze(1)).squeeze(1)
    per_pixel = -logpt
    if gamma:
        per_pixel = per_pixel * (1.0 - logpt.exp()).clamp_min(0.0).pow(gamma)
    if alpha is not None:
        if isinstance(alpha, (int, float)):
            a = torch.full((C,), float(alpha), dtype=logpt.dtype, device=logpt.device)
            a[0] = 1.0 - float(alpha)
        else:
            a = _class_weights(alpha, C, logpt)
        per_pixel = per_pixel * a[tgt]
    return _reduce_pixels(per_pixel, valid, reduction)


# --------------------------------------------------------------------------- image unit


def _overlap_stats(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft TP, FP, FN per image and class over valid pixels, each (B, C)."""
    probs, onehot = _masked_probs_and_onehot(_upcast(logits), target, valid)
    tp = (probs * onehot).sum(dim=(2, 3))
    fp = probs.sum(dim=(2, 3)) - tp
    fn = onehot.sum(dim=(2, 3)) - tp
    return tp, fp, fn


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    smooth: float = 1.0,
    classes: Sequence[int] | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Soft Dice loss per image; unit "image".

    Per image and class: 1 - (2 TP + s) / (2 TP + FP + FN + s) over the image's
    valid pixels, with soft TP/FP/FN from the softmax. The smoothing s makes a
    class absent from both prediction and truth score ~0 loss instead of 0/0.
    Each image's loss is the mean over `classes` (default: foreground 1..C-1).

    Shape:
        - logits: (B, C, H, W) float
        - target: (B, H, W) int class ids
        - valid: (B, H, W) bool
        - output: scalar
    """
    _check(logits, target, valid, reduction)
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0; got {smooth}")
    chosen = _select_classes(classes, logits.shape[1])
    tp, fp, fn = _overlap_stats(logits, target, valid)
    score = (2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp_min(1e-12)
    per_image = (1.0 - score)[:, chosen].mean(dim=1)
    return _reduce_images(per_image, reduction)


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1.0,
    classes: Sequence[int] | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Tversky loss per image (Salehi et al. 2017); unit "image".

    Per image and class: 1 - (TP + s) / (TP + alpha FP + beta FN + s). `alpha`
    weighs false positives, `beta` false negatives; beta > alpha favours recall,
    which thin, rare traces need. alpha = beta = 0.5 is Dice (with smoothing s / 2). Each image's loss
    is the mean over `classes` (default: foreground 1..C-1).

    Shape:
        - logits: (B, C, H, W) float
        - target: (B, H, W) int class ids
        - valid: (B, H, W) bool
        - output: scalar
    """
    _check(logits, target, valid, reduction)
    if alpha < 0 or beta < 0 or smooth < 0:
        raise ValueError(f"alpha, beta and smooth must be >= 0; got {alpha}, {beta}, {smooth}")
    chosen = _select_classes(classes, logits.shape[1])
    tp, fp, fn = _overlap_stats(logits, target, valid)
    score = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(1e-12)
    per_image = (1.0 - score)[:, chosen].mean(dim=1)
    return _reduce_images(per_image, reduction)


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al., alg. 1).

    Shape: gt_sorted (..., P) 0/1 floats, sorted by descending error -> (..., P).
    """
    gts = gt_sorted.sum(dim=-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=-1)
    union = gts + (1.0 - gt_sorted).cumsum(dim=-1)  # >= 1 at every position, never 0/0
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_softmax(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    classes: Literal["present", "all"] | Sequence[int] = "present",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Lovasz-Softmax loss per image (Berman et al. 2018); unit "image".

    Per image and class: the Lovasz extension of 1 - IoU evaluated on the
    errors |1[y = c] - p_c| of the image's valid pixels. Each image's loss is
    the mean over `classes`: "present" (classes present in that image's valid
    target, background included, as in the paper), "all", or a list of ids.
    An image with no selected class (no valid pixels) contributes 0.

    Written by hand: the reference code and the libraries that copy it
    (segmentation_models.pytorch, pytorch-toolbelt) take an ignore index rather
    than a validity mask and are per batch or loop per image; this is batched
    and exact under padding. Padded pixels get error -1 so that the descending
    sort puts them after every valid pixel (errors are >= 0): the valid pixels'
    order and Lovasz gradients are then exactly those of the unpadded image,
    and the padded pixels' terms are zero.

    Shape:
        - logits: (B, C, H, W) float
        - target: (B, H, W) int class ids
        - valid: (B, H, W) bool
        - output: scalar
    """
    _check(logits, target, valid, reduction)
    B, C = logits.shape[:2]
    probs, onehot = _masked_probs_and_onehot(_upcast(logits), target, valid)
    v = valid.unsqueeze(1).expand_as(probs).flatten(2)  # (B, C, P)
    fg = onehot.flatten(2)
    errors = torch.where(v, (fg - probs.flatten(2)).abs(), torch.full((), -1.0, dtype=probs.dtype, device=probs.device))
    errors_sorted, order = errors.sort(dim=-1, descending=True, stable=True)
    fg_sorted = fg.gather(-1, order)
    terms = torch.where(errors_sorted >= 0, errors_sorted, torch.zeros_like(errors_sorted))
    per_class = (terms * _lovasz_grad(fg_sorted)).sum(dim=-1)  # (B, C)

    if classes == "present":
        selected = fg.sum(dim=-1) > 0
    elif classes == "all":
        selected = valid.flatten(1).any(dim=1, keepdim=True).expand(B, C)
    else:
        ids = _select_classes(classes, C)
        selected = torch.zeros(B, C, dtype=torch.bool, device=logits.device)
        selected[:, ids] = True
        selected &= valid.flatten(1).any(dim=1, keepdim=True)
    count = selected.sum(dim=1)
    total = torch.where(selected, per_class, torch.zeros_like(per_class)).sum(dim=1)
    per_image = total / count.clamp_min(1).to(total.dtype)
    return _reduce_images(per_image, reduction)
