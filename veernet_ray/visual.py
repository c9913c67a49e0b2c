"""Overlays: class masks tinted on a scan, the one drawing training, inference and synth share.

Curve 1 red, curve 2 blue everywhere (validation overlays in MLflow, flagged-scan overlays
next to the LAS files, generator previews), so a reader learns the colours once.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLOURS = {1: (0, 0, 255), 2: (255, 80, 0)}  # BGR: curve 1 red, curve 2 blue


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    """(H, W) uint8 image + class mask -> (H, W, 3) BGR with classes tinted."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR).astype(np.float32)
    for cid, colour in COLOURS.items():
        m = mask == cid
        out[m] = out[m] * (1 - alpha) + np.array(colour, np.float32) * alpha
    return out.astype(np.uint8)


def truth_and_prediction(image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Truth (top) and prediction (bottom) tinted on the raster, with a grey gap between."""
    gap = np.full((6, image.shape[1], 3), 128, np.uint8)
    return np.concatenate([overlay(image, truth), gap, overlay(image, pred)], axis=0)


def write_png(path: str | Path, bgr: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), bgr)
    return path
