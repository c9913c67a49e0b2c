"""Padded collate: the one way a batch of differently sized scans becomes a tensor.

Training and inference both call `pad_collate` then `to_tensors`, so padding and
normalisation can never drift apart between the two. Images are never resized
(a one-pixel trace smears into the paper); they are padded bottom-right instead,
and a validity mask lets the losses and metrics ignore the padding exactly.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from veernet_ray.config import ModelConfig

__all__ = ["round_up", "pad_collate", "padding_fraction", "normalize_image", "to_tensors", "DEFAULT_MULTIPLE"]

# The default model's padding multiple (2**5 for five stride-2 blocks), for callers that pad
# without a model at hand (tests, benchmarks). Training and inference pass their model's own
# `multiple` (`ModelConfig.multiple`, `VeerNet.multiple`).
DEFAULT_MULTIPLE = ModelConfig().multiple

# White paper: padding then looks like blank background to the network, so
# border pixels next to the padding see the same context as at a paper edge.
IMAGE_PAD_VALUE = 255
# Class 0 = background; the validity mask, not this value, keeps padding out of the loss.
MASK_PAD_VALUE = 0
# fill="paper": each scan padded with its own paper level (`paper_level`) instead of white
PAPER = "paper"


def paper_level(image: np.ndarray) -> int:
    """A scan's paper grey: the 90th percentile of every 4th pixel of every 4th row (255 on a
    bitonal scan, ~212 on a grey one whose blank paper reads 212)."""
    return int(np.percentile(image[::4, ::4], 90))


def round_up(n: int, multiple: int) -> int:
    """Smallest multiple of `multiple` that is >= n."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1; got {multiple}")
    return -(-int(n) // multiple) * multiple


def _check_array(kind: str, i: int, a: object) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{kind}[{i}] must be a numpy array; got {type(a).__name__}")
    if a.ndim != 2:
        raise ValueError(f"{kind}[{i}] must be 2D (H, W) with depth along W; got shape {a.shape}")
    if a.dtype != np.uint8:
        raise TypeError(f"{kind}[{i}] must be uint8; got {a.dtype}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{kind}[{i}] is empty: shape {a.shape}")
    return a


def pad_collate(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray] | None = None,
    multiple: int = DEFAULT_MULTIPLE,
    pad_to: tuple[int, int] | None = None,
    *,
    margin: int = 0,
    fill: int | str = IMAGE_PAD_VALUE,
) -> dict[str, np.ndarray]:
    """Pad a list of scans (and masks) bottom-right into one batch.

    The padded size is (Hp, Wp) = (max H + margin, max W + margin), each rounded up to
    `multiple` (the model's 2**len(widths); the default model's by default).

    Args:
        images: B uint8 arrays (H_i, W_i), depth along W.
        masks: optional B uint8 class-id arrays, each the shape of its image.
        multiple: Hp and Wp are multiples of this.
        pad_to: (Hp, Wp) to pad to instead, e.g. a cell of the shape grid (`data.shapes`):
            multiples of `multiple`, at least the largest H and W (the caller keeps its margin).
        margin: at least this many rows below and columns right of every scan are padding.
            Inference keeps a margin (`infer.stages.INFER_MARGIN`): a model trained on padded
            batches never saw valid rows at the tensor's edge, and there it sees ink.
        fill: the image padding's grey (0-255), or "paper": each scan's own `paper_level`.

    Returns:
        dict of numpy arrays:
            "image": uint8 (B, Hp, Wp), padded with `fill` (white paper by default)
            "mask": uint8 (B, Hp, Wp), padded with 0 (background); only if masks given
            "valid": bool (B, Hp, Wp), True on real pixels
            "shape": int32 (B, 2), original (H, W) of each image
    """
    if len(images) == 0:
        raise ValueError("pad_collate needs at least one image; got an empty list")
    images = [_check_array("images", i, a) for i, a in enumerate(images)]
    if masks is not None:
        if len(masks) != len(images):
            raise ValueError(f"pad_collate got {len(images)} images but {len(masks)} masks")
        masks = [_check_array("masks", i, m) for i, m in enumerate(masks)]
        for i, (a, m) in enumerate(zip(images, masks)):
            if a.shape != m.shape:
                raise ValueError(f"masks[{i}] has shape {m.shape} but images[{i}] has shape {a.shape}")

    if fill != PAPER and not (isinstance(fill, (int, np.integer)) and 0 <= fill <= 255):
        raise ValueError(f"fill must be a grey level 0-255 or {PAPER!r}; got {fill!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}")
    shapes = np.array([a.shape for a in images], dtype=np.int32)
    keep = 0 if pad_to is not None else margin  # a given cell already holds the caller's margin
    Hp = round_up(shapes[:, 0].max() + keep, multiple)
    Wp = round_up(shapes[:, 1].max() + keep, multiple)
    if pad_to is not None:
        ph, pw = (int(v) for v in pad_to)
        if ph < Hp or pw < Wp or ph % multiple or pw % multiple:
            raise ValueError(f"pad_to {ph} x {pw} must be multiples of {multiple} and hold the batch's "
                             f"{Hp} x {Wp}")
        Hp, Wp = ph, pw
    B = len(images)
    batch = {
        "image": np.full((B, Hp, Wp), IMAGE_PAD_VALUE, dtype=np.uint8),
        "valid": np.zeros((B, Hp, Wp), dtype=bool),
        "shape": shapes,
    }
    if masks is not None:
        batch["mask"] = np.full((B, Hp, Wp), MASK_PAD_VALUE, dtype=np.uint8)
    for i, (h, w) in enumerate(shapes):
        if fill == PAPER:
            batch["image"][i] = paper_level(images[i])
        elif fill != IMAGE_PAD_VALUE:
            batch["image"][i] = fill
        batch["image"][i, :h, :w] = images[i]
        batch["valid"][i, :h, :w] = True
        if masks is not None:
            batch["mask"][i, :h, :w] = masks[i]
    return batch


def padding_fraction(shapes: Iterable[tuple[int, int]], multiple: int = DEFAULT_MULTIPLE) -> float:
    """Share of the computed pixels that would be padding if `shapes` formed one batch.

    E.g. shapes [(640, 3200), (640, 6400)] at multiple 32 -> 1 - (3200 + 6400) / (2 * 6400) = 0.25.
    """
    shapes = [(int(h), int(w)) for h, w in shapes]
    if not shapes:
        raise ValueError("padding_fraction needs at least one shape")
    Hp = round_up(max(h for h, _ in shapes), multiple)
    Wp = round_up(max(w for _, w in shapes), multiple)
    real = sum(h * w for h, w in shapes)
    return 1.0 - real / (len(shapes) * Hp * Wp)


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """uint8 scan -> ink-positive float32: 1 - x / 255 (dark ink ~1, white paper 0).

    The one normalisation training and inference share. Ink-positive so that
    paper and padding are exactly 0: zero padding inside the convolutions then
    looks like more paper, and the network's input is sparse like its target.
    """
    return 1.0 - image.to(torch.float32) / 255.0


def _as_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    a = np.ascontiguousarray(a)
    # a block from Ray's object store is read-only; torch would share it with a warning (and a later
    # in-place op would write into the store), so it gets its own copy
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def to_tensors(
    batch: dict, device: str | torch.device = "cpu", channels_last: bool = False
) -> dict[str, torch.Tensor]:
    """Turn a `pad_collate` batch (numpy or torch values) into model-ready tensors.

    Returns:
        "image": float32 (B, 1, Hp, Wp), `normalize_image` applied
        "mask": int64 (B, Hp, Wp), if the batch has one
        "valid": bool (B, Hp, Wp), if the batch has one
        "shape": int64 (B, 2), if the batch has one (kept on the CPU for cropping)
    """
    device = torch.device(device)
    # Normalise on the device: ship 1 byte per pixel over the bus, not 4.
    image = _as_tensor(batch["image"]).to(device, non_blocking=True)
    if image.dim() == 3:
        image = image.unsqueeze(1)
    image = normalize_image(image)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    out = {"image": image}
    if "mask" in batch:
        out["mask"] = _as_tensor(batch["mask"]).to(device, non_blocking=True).long()
    if "valid" in batch:
        out["valid"] = _as_tensor(batch["valid"]).to(device, non_blocking=True).bool()
    if "shape" in batch:
        out["shape"] = _as_tensor(batch["shape"]).long()
    return out
