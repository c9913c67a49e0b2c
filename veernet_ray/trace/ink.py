"""Ink from a scan's own pixels: the classical baselines' input and QC's second opinion.

Pure NumPy on a canonical uint8 scan (H, W): dark ink on lighter paper.
"""

from __future__ import annotations

import numpy as np

#: columns per window over which a row's median darkness is taken (grid rows span it, curves do not)
ROW_WINDOW = 256


def darkness(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 ink strength: 0 on paper (each column's 90th percentile), ~1 on the darkest ink."""
    x = image.astype(np.float32)
    paper = np.percentile(x[:: max(1, x.shape[0] // 128)], 90, axis=0)[None, :]
    ink = np.clip((paper - x) / np.maximum(paper, 1.0), 0.0, 1.0)
    return ink / max(float(np.percentile(ink, 99.9)), 1e-3)


def row_median(ink: np.ndarray, window: int = ROW_WINDOW) -> np.ndarray:
    """Each row's median over windows of `window` columns, broadcast back to (H, W).

    High on long horizontal lines (grid, track borders), ~0 on curves, which
    cross a row in a few columns.
    """
    h, w = ink.shape
    out = np.empty_like(ink)
    for a in range(0, w, window):
        b = min(w, a + window)
        b0 = max(0, b - window)  # the last window is full-width too
        out[:, a:b] = np.median(ink[:, b0:b], axis=1, keepdims=True)
    return out


def grid_suppressed(image: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] with long dark rows (row medians) and columns (column medians) removed."""
    ink = darkness(image)
    ink = ink - row_median(ink)
    ink = np.clip(ink - np.median(ink, axis=0, keepdims=True), 0.0, None)
    top = float(np.percentile(ink, 99.9)) or 1.0
    return np.clip(ink / top, 0.0, 1.0)
