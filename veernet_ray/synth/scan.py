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
    if rng.random() < style.p_halftone:
        # a halftone dot screen (printed or photocopied logs)
        per = rng.uniform(3.0, 7.0)
        yy = np.arange(h, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        dots = (np.cos(2 * np.pi * xx / per) * np.cos(2 * np.pi * yy / per)) > rng.uniform(0.3, 0.8)
        img *= 1.0 - np.float32(rng.uniform(0.05, 0.3)) * dots
    if rng.random() < style.p_fold:
        # fold lines: a crease across the strip (along the value axis) with a shaded side
        for _ in range(int(rng.integers(1, 3))):
            x = int(rng.integers(0, w))
            width = int(rng.integers(1, 4))
            dark = rng.random() < 0.7
            img[:, x : x + width] *= np.float32(rng.uniform(0.55, 0.85) if dark else 1.08)
            sh = int(rng.integers(4, 30))
            ramp = np.linspace(rng.uniform(0.85, 0.95), 1.0, sh, dtype=np.float32)
            seg = img[:, x + width : x + width + sh]
            seg *= ramp[None, : seg.shape[1]]
    if rng.random() < style.p_blotch:
        # blotches: irregular dark patches (ink blots, water damage) that darken what lies under them
        for _ in range(int(rng.integers(1, 4))):
            r = rng.uniform(4, 40) * max(h / 560.0, 0.3)
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            y0, y1 = int(max(0, cy - 2 * r)), int(min(h, cy + 2 * r + 1))
            x0, x1 = int(max(0, cx - 2 * r)), int(min(w, cx + 2 * r + 1))
            if y1 <= y0 or x1 <= x0:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            ang = rng.uniform(0, 2 * np.pi)
            d = np.hypot((yy - cy) / r, (xx - cx) / (r * rng.uniform(0.6, 1.8)))
            wob = 1 + 0.25 * np.sin(np.arctan2(yy - cy, xx - cx) * int(rng.integers(2, 7)) + ang)
            inside = np.clip((wob - d) * 3, 0, 1)
            img[y0:y1, x0:x1] *= 1.0 - np.float32(rng.uniform(0.2, 0.6)) * inside
    if rng.random() < style.p_banding:
        rows = 1 + rng.normal(0, rng.uniform(0.005, 0.03), h).astype(np.float32)
        cols = 1 + rng.normal(0, rng.uniform(0.002, 0.02), w).astype(np.float32)
        img *= rows[:, None]
        img *= cols[None, :]
    return img


def photometric(
    rng: np.random.Generator, img: np.ndarray, style: ScanStyle, size: float, bitonal: bool = False
) -> tuple[np.ndarray, dict]:
    """Blur, sensor noise, dust, speckle, fading, 1-bit thresholding and JPEG on a float32 0..255 image -> uint8.

    A bitonal scan is never JPEG-compressed (CCITT G4 is lossless)."""
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
    if rng.random() < style.p_speckle:
        h, w = img.shape
        k = int(h * w * rng.uniform(2e-4, 3e-3))
        ys, xs = rng.integers(0, h, k), rng.integers(0, w, k)
        img[ys, xs] = np.where(rng.random(k) < 0.7, rng.uniform(0, 90, k), 255).astype(np.float32)
    if rng.random() < style.p_low_contrast:
        # a faded scan: the grey range shrinks towards the paper
        c = np.float32(uniform(rng, style.low_contrast))
        top = np.float32(np.percentile(img[:: max(1, img.shape[0] // 64), :: max(1, img.shape[1] // 256)], 90))
        img = top - (top - img) * c
        info["low_contrast"] = round(float(c), 3)
    if bitonal:
        # a 1-bit scan: thresholded after the noise, between paper and ink
        sub = img[:: max(1, img.shape[0] // 64), :: max(1, img.shape[1] // 256)]
        paper_lv, ink_lv = np.percentile(sub, 80), min(np.percentile(sub, 0.5), 60.0)
        t = np.float32(ink_lv + uniform(rng, style.bitonal_threshold) * (paper_lv - ink_lv))
        img = np.where(img < t, np.float32(0), np.float32(255))
        info["bitonal"] = round(float(t), 1)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if not bitonal and rng.random() < style.p_jpeg:
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
