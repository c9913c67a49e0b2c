"""Contact sheet of samples with masks overlaid (curve 1 red, curve 2 blue).

Each sample gets four rows: the whole strip downscaled to the sheet width, as
image and with the mask overlaid (mask classes downscaled by "any pixel in the
cell", so one-pixel traces stay visible), then a 1:1 crop of the busiest
window, as image and with the overlay, so real line widths can be judged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from veernet_ray.io import atomic_path
from veernet_ray.visual import COLOURS, overlay  # the shared overlay drawing; importable from here too

SHEET_WIDTH = 1600


def _downscale(image: np.ndarray, mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape
    if w <= width:
        return image, mask
    nh = max(8, int(round(h * width / w)))
    img = cv2.resize(image, (width, nh), interpolation=cv2.INTER_AREA)
    small = np.zeros((nh, width), np.uint8)
    for cid in COLOURS:
        cov = cv2.resize((mask == cid).astype(np.float32), (width, nh), interpolation=cv2.INTER_AREA)
        small[cov > 0.02] = cid
    return img, small


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((18, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text[:200], (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, panel])


def _fit(panel: np.ndarray, width: int) -> np.ndarray:
    if panel.shape[1] < width:
        pad = np.full((panel.shape[0], width - panel.shape[1], 3), 255, np.uint8)
        panel = np.hstack([panel, pad])
    return panel


def contact_sheet(items: Sequence[tuple[str, np.ndarray, np.ndarray]], width: int = SHEET_WIDTH) -> np.ndarray:
    """items: (caption, image, mask) -> one BGR sheet."""
    rows = []
    for caption, image, mask in items:
        img_s, mask_s = _downscale(image, mask, width)
        whole = _fit(overlay(img_s, mask_s), width)
        whole_raw = _fit(cv2.cvtColor(img_s, cv2.COLOR_GRAY2BGR), width)
        h, w = image.shape
        cw = min(width, w)
        # the crop window: where the curves are busiest (most mask pixels), deterministic
        colsum = np.convolve((mask > 0).sum(0).astype(np.float64), np.ones(cw), mode="valid")
        x0 = int(np.argmax(colsum)) if colsum.size else 0
        crop = _fit(overlay(image[:, x0 : x0 + cw], mask[:, x0 : x0 + cw]), width)
        crop_raw = _fit(cv2.cvtColor(image[:, x0 : x0 + cw], cv2.COLOR_GRAY2BGR), width)
        rows.append(_label(whole_raw, f"{caption}  ({w}x{h}, whole strip, downscaled)"))
        rows.append(_label(whole, "mask overlay: curve 1 red, curve 2 blue"))
        rows.append(_label(crop_raw, f"1:1 crop, columns {x0}-{x0 + cw - 1}, image then mask overlay"))
        rows.append(crop)
        rows.append(np.full((10, width, 3), 200, np.uint8))
    return np.vstack(rows) if rows else np.full((10, width, 3), 255, np.uint8)


def write_preview(path: str | os.PathLike, items: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    path = Path(path)
    sheet = contact_sheet(items)
    ok, buf = cv2.imencode(".png", sheet, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OSError(f"cannot encode the preview sheet {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path
