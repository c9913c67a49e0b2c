"""The five losses the platform compares, behind one registry.

Each loss is a thin `nn.Module` around a pure function in `_functional.py`,
called as `loss(logits, target, valid, reduction=None)`, with a `unit`
attribute ("pixel" or "image") saying what `reduction="sum"` sums over and what
`loss_normalizer(loss.unit, valid)` counts. The trainer's exact accumulation:

    total = sum(loss(mb.logits, mb.target, mb.valid, reduction="sum") for mb in micro_batches)
    total / sum(loss_normalizer(loss.unit, mb.valid) for mb in micro_batches)

equals `loss(..., reduction="mean")` on one padded batch holding all of them.
Adding a loss = one function in `_functional.py`, one wrapper, one line in
`LOSSES`; the parametrised tests then cover it.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from veernet_ray.losses import _functional as Fn
from veernet_ray.losses._functional import UNITS, loss_normalizer

__all__ = [
    "LOSSES",
    "UNITS",
    "SegLoss",
    "SoftCrossEntropyLoss",
    "FocalLoss",
    "DiceLoss",
    "TverskyLoss",
    "LovaszSoftmaxLoss",
    "build_loss",
    "loss_normalizer",
    "valid_params",
]

_TENSOR_ARGS = ("logits", "target", "valid", "reduction")


class SegLoss(nn.Module):
    """Base wrapper: binds keyword parameters to a function from `_functional`.

    Shape:
        - logits: (B, C, H, W) float, C >= 2
        - target: (B, H, W) int class ids
        - valid: (B, H, W) bool
        - output: scalar
    """

    fn: Callable[..., torch.Tensor]
    unit: str

    def __init__(self, reduction: str = "mean", **params) -> None:
        super().__init__()
        allowed = valid_params(self.fn)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown parameter(s) {', '.join(unknown)}; "
                f"valid parameters: {', '.join(['reduction', *allowed])}"
            )
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")
        self.reduction = reduction
        self.params = params

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, reduction: str | None = None
    ) -> torch.Tensor:
        return type(self).fn(logits, target, valid, reduction=reduction or self.reduction, **self.params)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in {"unit": self.unit, **self.params}.items())


class SoftCrossEntropyLoss(SegLoss):
    fn = staticmethod(Fn.soft_cross_entropy)
    unit = "pixel"


class FocalLoss(SegLoss):
    fn = staticmethod(Fn.focal_loss)
    unit = "pixel"


class DiceLoss(SegLoss):
    fn = staticmethod(Fn.dice_loss)
    unit = "image"


class TverskyLoss(SegLoss):
    fn = staticmethod(Fn.tversky_loss)
    unit = "image"


class LovaszSoftmaxLoss(SegLoss):
    fn = staticmethod(Fn.lovasz_softmax)
    unit = "image"


LOSSES: dict[str, type[SegLoss]] = {
    "dice": DiceLoss,
    "tversky": TverskyLoss,
    "lovasz": LovaszSoftmaxLoss,
    "focal": FocalLoss,
    "sce": SoftCrossEntropyLoss,
}


def valid_params(fn: Callable[..., torch.Tensor]) -> list[str]:
    """Keyword parameters a loss function accepts beyond logits, target, valid, reduction."""
    return [p for p in inspect.signature(fn).parameters if p not in _TENSOR_ARGS]


def build_loss(name: str, **params) -> SegLoss:
    """Build a registered loss by name, e.g. `build_loss("tversky", alpha=0.3, beta=0.7)`.

    Raises:
        KeyError: unknown name (the message lists the valid names).
        TypeError: unknown parameter (the message lists the valid parameters).
    """
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    return LOSSES[name](**params)
