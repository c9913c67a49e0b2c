"""Overlapping tiles along depth for scans too wide for one forward pass.

A 60,000 px log at 640 px is 38 M pixels: one forward pass of it holds
activations no card (or laptop) should be asked for. It is cut into tiles of
`tile` columns that overlap by `overlap`, each tile runs through the network
on its own, and the class probabilities are blended back with linear ramps
across each overlap, so a seam never shows up as a step in the traced curve.
Tiles never cut across the value axis: the whole track height is context the
network needs to tell curve 1 from curve 2.
"""

from __future__ import annotations

import numpy as np

from veernet_ray.data.collate import DEFAULT_MULTIPLE, round_up


def tile_spans(width: int, tile: int, overlap: int, multiple: int = DEFAULT_MULTIPLE) -> list[tuple[int, int]]:
    """[start, stop) column spans covering `width` with tiles of at most `tile` columns.

    `tile` is rounded down to `multiple` (so tiles need no extra padding) and
    consecutive tiles overlap by at least `overlap` columns; the last tile ends
    at `width` exactly. E.g. tile_spans(100, 64, 16) -> [(0, 64), (36, 100)].
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    tile = max(multiple, (int(tile) // multiple) * multiple)
    if width <= tile:
        return [(0, width)]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must lie in [0, tile={tile}), got {overlap}")
    n = -(-(width - overlap) // (tile - overlap))  # tiles needed so that each pair overlaps >= overlap
    starts = np.linspace(0, width - tile, n).round().astype(int)
    return [(int(s), int(s) + tile) for s in starts]


def blend_weights(spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per-tile column weights: 1 inside, linear ramps across each overlap with a neighbour.

    Weights are > 0 everywhere so every column is covered; callers divide by
    the weight sum, so the ramps need not sum to exactly 1.
    """
    out = []
    for i, (s, e) in enumerate(spans):
        w = np.ones(e - s, np.float32)
        if i > 0:
            ov = spans[i - 1][1] - s
            if ov > 0:
                w[:ov] = np.minimum(w[:ov], (np.arange(ov, dtype=np.float32) + 1) / (ov + 1))
        if i + 1 < len(spans):
            ov = e - spans[i + 1][0]
            if ov > 0:
                w[-ov:] = np.minimum(w[-ov:], (np.arange(ov, 0, -1, dtype=np.float32)) / (ov + 1))
        out.append(w)
    return out


def stitch(tiles: list[np.ndarray], spans: list[tuple[int, int]], width: int) -> np.ndarray:
    """Blend per-tile (C, H, w_i) probabilities into one (C, H, width) float32 map."""
    weights = blend_weights(spans)
    c, h = tiles[0].shape[:2]
    acc = np.zeros((c, h, width), np.float32)
    wsum = np.zeros(width, np.float32)
    for t, (s, e), w in zip(tiles, spans, weights):
        acc[:, :, s:e] += t[:, :, : e - s].astype(np.float32) * w
        wsum[s:e] += w
    acc /= wsum
    return acc


def halve(tile: int, multiple: int = DEFAULT_MULTIPLE, floor: int = 512) -> int:
    """The next smaller tile width after an out-of-memory error (None-like 0 when at the floor)."""
    smaller = round_up(tile // 2, multiple)
    return smaller if smaller >= floor and smaller < tile else 0
