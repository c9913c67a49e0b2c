"""Paper and scanner effects: what happens to a drawn log on its way to a TIFF.

Photometric effects (paper tone and texture, stains, banding, blur, noise,
dust, JPEG blocking) change the image only. Geometric effects (skew, dark scan
borders that cover ink) are applied to the image and the mask together, the
mask with nearest-neighbour sampling, so the mask keeps following the ink.
All in float32 / uint8 through OpenCV; no per-pixel Python.
"""

from __future__ import annotations

import cv2
import numpy as np

from veernet_ray.synth.styles import ScanStyle, uniform


def paper(rng: np.random.Generator, h: int, w: int, style: ScanStyle) -> np.ndarray:
    """Paper brightness in 0..1, float32 (H, W): tone, low-frequency texture, stains, banding."""
    tone = uniform(rng, style.paper_tone)
    # everything slowly varying is built on a coarse grid and upsampled once (cheap)
    cell = int(rng.choice([8, 16, 32, 64]))
    ch, cw = h // cell + 2, w // cell + 2
    low = np.full((ch, cw), tone, np.float32)
    if rng.random() < style.p_paper_texture:
        s = uniform(rng, style.texture_strength)
        low += rng.standard_normal((ch, cw), dtype=np.float32) * s
        # uneven illumination / yellowing across the strip
        low += np.linspace(0, rng.uniform(-0.06, 0.06), cw, dtype=np.float32)[None, :]
    if rng.random() < style.p_stain:
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(0, ch), rng.uniform(0, cw)
            ry, rx = rng.uniform(0.3, 2.0) * ch, rng.uniform(0.5, 4.0) * ch
            d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
            low -= rng.uniform(0.04, 0.25) * np.exp(-d * rng.uniform(0.8, 3.0)).astype(np.float32)
    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < style.p_banding:
        rows = 1 + rng.normal(0, rng.uniform(0.005, 0.03), h).astype(np.float32)
        cols = 1 + rng.normal(0, rng.uniform(0.002, 0.02), w).astype(np.float32)
        img *= rows[:, None]
        img *= cols[None, :]
    return img


def photometric(rng: np.random.Generator, img: np.ndarray, style: ScanStyle, size: float) -> tuple[np.ndarray, dict]:
    """Blur, sensor noise, dust and JPEG on a float32 0..255 image -> uint8."""
    info: dict = {}
    if rng.random() < style.p_blur:
        sigma = uniform(rng, style.blur_sigma)
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma * rng.uniform(0.7, 1.3))
        info["blur"] = round(sigma, 3)
    sigma = uniform(rng, style.noise_sigma)
    if sigma > 0.3:
        # noise on a half-resolution grid upsampled (scanner noise is slightly correlated), plus fine grain
        h, w = img.shape
        if rng.random() < 0.5:
            n = rng.standard_normal((h // 2 + 1, w // 2 + 1), dtype=np.float32)
            img += cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(sigma)
        else:
            img += rng.standard_normal((h, w), dtype=np.float32) * np.float32(sigma)
        info["noise"] = round(sigma, 2)
    if rng.random() < style.p_dust:
        h, w = img.shape
        k = int(rng.integers(5, 60) * w / 4000) + 1
        ys, xs = rng.integers(0, h, k), rng.integers(0, w, k)
        for y, x, r, v in zip(ys, xs, rng.uniform(0.5, 2.2, k), rng.uniform(0, 120, k)):
            cv2.circle(img, (int(x), int(y)), int(round(r * max(size, 0.5))), float(v), -1, cv2.LINE_AA)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < style.p_jpeg:
        q = int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
            info["jpeg_quality"] = q
    return out, info


def skew(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, style: ScanStyle) -> tuple[np.ndarray, np.ndarray, float]:
    """Small rotation of image (bilinear) and mask (nearest) together; returns the angle in degrees."""
    if style.max_skew_deg <= 0 or rng.random() >= style.p_skew:
        return img, mask, 0.0
    angle = float(rng.uniform(-style.max_skew_deg, style.max_skew_deg))
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return img, mask, round(angle, 6)


def scan_border(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, style: ScanStyle) -> bool:
    """Dark scanner-lid borders on some edges, in place; ink they cover leaves the mask."""
    if rng.random() >= style.p_scan_border:
        return False
    h, w = img.shape
    for side in range(4):
        if rng.random() < 0.5:
            continue
        n = h if side < 2 else w
        depth = int(rng.integers(2, max(3, int(n * rng.uniform(0.02, 0.08)))))
        ramp = np.linspace(1.0, 0.0, depth, dtype=np.float32) ** rng.uniform(0.5, 2.0)  # 1 = fully dark
        level = rng.uniform(0, 60)
        if side == 0:  # top rows
            sl, a = (slice(0, depth), slice(None)), ramp[:, None]
        elif side == 1:  # bottom rows
            sl, a = (slice(h - depth, h), slice(None)), ramp[::-1, None]
        elif side == 2:  # left columns
            sl, a = (slice(None), slice(0, depth)), ramp[None, :]
        else:
            sl, a = (slice(None), slice(w - depth, w)), ramp[None, ::-1]
        region = img[sl].astype(np.float32)
        img[sl] = np.clip(region * (1 - a) + level * a, 0, 255).astype(np.uint8)
        m = mask[sl]
        m[np.broadcast_to(a > 0.5, m.shape)] = 0
    return True
