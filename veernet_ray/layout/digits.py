"""A small digit reader for printed depth labels, trained on rendered digits and shipped in the package.

Why our own reader (measured in bench/RESULTS.md, "Depth-label OCR"): on
generated sheets it reads labels as well as Tesseract 5 (Debian
`tesseract-ocr`, LSTM, digits whitelist, one text line) at a small fraction of
the time per label, needs no OS package and no download, and gives a
per-glyph confidence. Tesseract stays an option (`reader="tesseract"`) for
sheets whose fonts the reader has not seen.

Model: a 2-layer perceptron, 401 -> 96 -> 10 (ReLU), on a glyph scaled so its
longer side is GLYPH px, centred on a GLYPH x GLYPH canvas, plus its aspect
ratio (a "1" and a "7" differ mostly in width). Inference is NumPy only.

Training data (`train`, deterministic from its seed and the fonts installed):
the digits 0-9 drawn with the six OpenCV Hershey print fonts (plain and
italic), the DejaVu, STIX and Computer Modern TrueType faces shipped with
matplotlib and, where the Debian font packages are installed, the Liberation
and condensed/light DejaVu faces (SYSTEM_FONTS), 9-44 px high, then degraded
the way real depth columns are (bench/RESULTS.md, issue 12): a heavier or
lighter pen, blur, slant, a low-resolution or JPEG scan, a random threshold
(1-bit), erosion or dilation, a small rotation, speckle.
Retrain with `python -m veernet_ray.layout.digits --train` (about a minute
on one core); the weights file is ~76 KB. Nothing is downloaded, at training
or at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

GLYPH = 20  # canvas side in px; 20 keeps 3-px strokes of a 40-px label distinct
WEIGHTS = Path(__file__).with_name("digits.npz")
CLASSES = "0123456789"


@dataclass(frozen=True)
class Reading:
    """What the reader made of one label image."""

    text: str  # "" when nothing was read
    confidence: float  # the least confident glyph's probability, 0 when nothing was read
    glyphs: int


def glyph_features(glyph: np.ndarray) -> np.ndarray:
    """(GLYPH*GLYPH + 1,) float32 features of a boolean or 0-255 glyph (ink = True / bright)."""
    g = (np.asarray(glyph) > 0).astype(np.uint8) * 255
    ys, xs = np.nonzero(g)
    if len(ys) == 0:
        return np.zeros(GLYPH * GLYPH + 1, np.float32)
    g = g[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = g.shape
    s = (GLYPH - 2) / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    small = cv2.resize(g, (nw, nh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((GLYPH, GLYPH), np.float32)
    y0, x0 = (GLYPH - nh) // 2, (GLYPH - nw) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = small / 255.0
    return np.concatenate([canvas.ravel(), [w / h]]).astype(np.float32)


#: a glyph whose top is this share of the median glyph's height below the median glyph top is a
#: comma or a period (commas of real labels are up to ~0.7 digit high, but start near mid-height)
MARK_TOP = 0.4


def split_glyphs(binary: np.ndarray) -> list[np.ndarray]:
    """Upright binary label (ink True) -> glyph crops left to right.

    Connected components, with the components that overlap in columns merged
    (a broken "5" or the dot of a "i" belongs to one glyph); specks under 3%
    of the label's ink are dropped, and so are commas and periods (MARK_TOP).
    """
    b = binary.astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(b, connectivity=8)
    if n <= 1:
        return []
    total = stats[1:, cv2.CC_STAT_AREA].sum()
    comps = [(stats[i, 0], stats[i, 0] + stats[i, 2], i) for i in range(1, n) if stats[i, 4] >= 0.03 * total]
    comps.sort()
    groups: list[list] = []
    for x0, x1, i in comps:
        if groups:
            gx0, gx1, ids = groups[-1]
            overlap = min(gx1, x1) - max(gx0, x0)
            if overlap > 0.5 * min(x1 - x0, gx1 - gx0):
                groups[-1] = [min(gx0, x0), max(gx1, x1), ids + [i]]
                continue
        groups.append([x0, x1, [i]])
    boxes = []
    for gx0, gx1, ids in groups:
        m = np.isin(lab[:, gx0:gx1], ids)
        rows = np.nonzero(m.any(axis=1))[0]
        boxes.append((rows[0], rows[-1] + 1, m[rows[0] : rows[-1] + 1]))  # tight: ink to ink
    if not boxes:  # speckle only: every component is under 3%
        return []
    # a thousands comma or a period ("10,000") starts low on the line, where no digit starts
    top = float(np.median([r0 for r0, _, _ in boxes]))
    height = float(np.median([r1 - r0 for r0, r1, _ in boxes]))
    return [m for r0, _, m in boxes if r0 <= top + MARK_TOP * height]


#: printed digits are at most about this wide for their height ("0" or "4" in a wide face);
#: a wider blob may be two digits touching, and is read both whole and cut (the surer reading wins)
MAX_DIGIT_ASPECT = 0.85


def split_touching(glyph: np.ndarray, height: int, n: int | None = None) -> list[np.ndarray]:
    """Cut a blob wider than one digit (touching digits of a small or bold label) into `n` pieces
    (default round(width / (0.62 x height))), each cut at the emptiest column near its even share."""
    w = glyph.shape[1]
    if w <= MAX_DIGIT_ASPECT * height or height < 5:
        return [glyph]
    n = n or max(2, int(round(w / (0.62 * height))))
    prof = glyph.sum(axis=0)
    cuts, win = [0], max(1, w // (3 * n))
    for k in range(1, n):
        c = int(round(k * w / n))
        lo, hi = max(cuts[-1] + 1, c - win), min(w - 1, c + win)
        cuts.append(lo + int(np.argmin(prof[lo : hi + 1])) if hi >= lo else c)
    cuts.append(w)
    return [glyph[:, a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a and glyph[:, a:b].any()]


@functools.lru_cache(maxsize=1)
def _weights() -> dict[str, np.ndarray]:
    if not WEIGHTS.is_file():
        raise FileNotFoundError(f"{WEIGHTS} is missing; rebuild it with `python -m veernet_ray.layout.digits --train`")
    with np.load(WEIGHTS) as z:
        return {k: z[k].astype(np.float32) for k in z.files}


def classify(features: np.ndarray, weights: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) features -> (labels (N,), probabilities (N,)) with the shipped (or given) weights."""
    w = weights if weights is not None else _weights()
    x = (features - w["mean"]) / w["std"]
    hdn = np.maximum(x @ w["w1"] + w["b1"], 0.0)
    logits = hdn @ w["w2"] + w["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return p.argmax(axis=1), p.max(axis=1)


def binarise(gray: np.ndarray) -> np.ndarray:
    """Ink mask of a small label crop (Otsu; a flat crop is all paper)."""
    if gray.size == 0 or int(gray.max()) - int(gray.min()) < 30:
        return np.zeros(gray.shape, bool)
    t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return gray <= t


def read_digits(gray: np.ndarray) -> Reading:
    """Read an upright label crop (uint8, dark ink on light paper) as a string of digits."""
    glyphs = split_glyphs(binarise(gray))
    if not glyphs:
        return Reading("", 0.0, 0)
    height = max(g.shape[0] for g in glyphs)
    text, confs = [], []
    for g in glyphs:
        options = [[g]]
        if g.shape[1] > MAX_DIGIT_ASPECT * height:
            guess = max(2, int(round(g.shape[1] / (0.62 * height))))
            for n in sorted({max(2, guess - 1), guess, guess + 1}):
                cut = split_touching(g, height, n)
                if len(cut) > 1:
                    options.append(cut)
        best = None
        for parts in options:
            labels, probs = classify(np.stack([glyph_features(p) for p in parts]))
            if best is None or probs.min() > best[1] + 0.02:  # ties keep the whole glyph
                best = ("".join(CLASSES[i] for i in labels), float(probs.min()))
        text.append(best[0])
        confs.append(best[1])
    return Reading("".join(text), float(min(confs)), len(text))


def read_tesseract(gray: np.ndarray) -> Reading:
    """The same job done by Tesseract (Debian `tesseract-ocr` through pytesseract): one line, digits only."""
    import pytesseract

    pad = cv2.copyMakeBorder(gray, 10, 10, 10, 10, cv2.BORDER_CONSTANT, value=255)
    data = pytesseract.image_to_data(pad, config="--psm 7 -c tessedit_char_whitelist=0123456789",
                                     output_type=pytesseract.Output.DICT)
    words = [(t, float(c)) for t, c in zip(data["text"], data["conf"]) if t.strip()]
    if not words:
        return Reading("", 0.0, 0)
    text = "".join(t.strip() for t, _ in words)
    return Reading(text, min(c for _, c in words) / 100.0, len(text))


READERS = {"digits": read_digits, "tesseract": read_tesseract}


def get_reader(name: str):
    try:
        return READERS[name]
    except KeyError:
        raise KeyError(f"unknown OCR reader {name!r}; valid: {sorted(READERS)}") from None


# ------------------------------------------------------------------ training
#: faces of the Debian font packages (fonts-liberation, fonts-dejavu-core/-extra), used for training
#: when installed: Liberation Sans is the Arial/Helvetica look of many real logs (a "1" with no foot,
#: which the matplotlib faces lack), Narrow and Condensed its tight spacing, ExtraLight thin pens
SYSTEM_FONTS = ("liberation/LiberationSans-Regular.ttf", "liberation/LiberationSans-Bold.ttf",
                "liberation/LiberationSansNarrow-Regular.ttf", "liberation/LiberationSansNarrow-Bold.ttf",
                "liberation/LiberationSerif-Regular.ttf", "liberation/LiberationSerif-Bold.ttf",
                "liberation/LiberationMono-Regular.ttf", "liberation/LiberationMono-Bold.ttf",
                "dejavu/DejaVuSansCondensed.ttf", "dejavu/DejaVuSansCondensed-Bold.ttf",
                "dejavu/DejaVuSans-ExtraLight.ttf", "dejavu/DejaVuSerifCondensed-Bold.ttf")


def _ttf_fonts() -> list[Path]:
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    names = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf",
             "DejaVuSerif-Bold.ttf", "DejaVuSans-Oblique.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
             "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf")
    system = Path("/usr/share/fonts/truetype")
    return [root / n for n in names if (root / n).is_file()] + [system / n for n in SYSTEM_FONTS
                                                                 if (system / n).is_file()]


def render_digit(rng: np.random.Generator, digit: str, fonts: list) -> np.ndarray:
    """One degraded rendering of `digit` (bool ink mask), from a random font, size and scan.

    The degradations are the ones seen on real depth columns (bench/RESULTS.md, issue 12): pens from
    hairline to bold, ink spread and blur that fill a "9" or an "8", low-resolution and JPEG scans,
    slant, and a threshold anywhere from faint to heavy.
    """
    from veernet_ray.synth.sheet import LABEL_FONTS, text_patch

    px = float(rng.uniform(9, 44))
    k = int(rng.integers(len(LABEL_FONTS) + len(fonts)))
    if k < len(LABEL_FONTS):
        font = LABEL_FONTS[k] | (cv2.FONT_ITALIC if rng.random() < 0.15 else 0)
        patch = text_patch(digit, px, font, int(rng.integers(1, 3 if px < 18 else 5)))
    else:
        from PIL import Image, ImageDraw, ImageFont

        f = ImageFont.truetype(str(fonts[k - len(LABEL_FONTS)]), size=int(px * 1.4))
        im = Image.new("L", (int(px * 3), int(px * 3)), 0)
        ImageDraw.Draw(im).text((int(px * 0.5), int(px * 0.3)), digit, fill=255, font=f)
        patch = np.asarray(im)
    patch = np.pad(patch, max(3, int(px * 0.2)))
    if rng.random() < 0.25:  # a heavier or lighter pen than the face's own, up to ~px/8 either way
        r = int(rng.integers(1, max(2, int(px / 8) + 1)))
        op = cv2.dilate if rng.random() < 0.7 else cv2.erode
        patch = op(patch, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, 1.0)
        if px > 20 and rng.random() < 0.3:  # a blur that fills the loops of a large bold "8" or "9"
            sigma *= 2.5
        patch = cv2.GaussianBlur(patch, (0, 0), sigma)
    ang = rng.uniform(-4, 4)
    m = cv2.getRotationMatrix2D((patch.shape[1] / 2, patch.shape[0] / 2), ang, 1.0)
    if rng.random() < 0.2:  # slant (italic-looking or a skewed scan)
        m[0, 1] += rng.uniform(-0.2, 0.2)
    patch = cv2.warpAffine(patch, m, (patch.shape[1], patch.shape[0]))
    if rng.random() < 0.25 and px > 14:  # scanned at low resolution, seen at full size
        h, w = patch.shape
        f = rng.uniform(0.35, 0.7)
        small = cv2.resize(patch, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        patch = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.25:
        _, buf = cv2.imencode(".jpg", 255 - patch, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 60))])
        patch = 255 - cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    ink = patch > rng.uniform(60, 190)
    if rng.random() < 0.2:
        op = cv2.erode if rng.random() < 0.5 else cv2.dilate
        ink = op(ink.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
    if rng.random() < 0.3:
        ink ^= rng.random(ink.shape) < 0.01
    if rng.random() < 0.25:  # a sliver of a touching neighbour left on by an imperfect cut
        ys, xs = np.nonzero(ink)
        if len(xs):
            side = int(rng.integers(2))
            w = max(1, int((xs.max() - xs.min() + 1) * rng.uniform(0.05, 0.15)))
            y0, y1 = ys.min(), ys.max() + 1
            col = xs.min() - 1 if side == 0 else xs.max() + 1
            band = slice(max(0, col - w + 1), col + 1) if side == 0 else slice(col, min(ink.shape[1], col + w))
            rows = slice(y0 + int((y1 - y0) * rng.uniform(0, 0.6)), y1)
            ink[rows, band] = True
    return ink


def train(n_per_class: int = 2500, seed: int = 0, epochs: int = 30, out: Path = WEIGHTS) -> dict[str, float]:
    """Render, train and save the reader; returns held-out accuracy (a fresh seed's renders)."""
    import torch

    fonts = _ttf_fonts()

    def data(s: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(s)
        xs, ys = [], []
        for _ in range(n):
            for c, d in enumerate(CLASSES):
                glyphs = split_glyphs(render_digit(rng, d, fonts))
                if len(glyphs) != 1:
                    continue  # a rendering the splitter breaks in two is not one glyph
                xs.append(glyph_features(glyphs[0]))
                ys.append(c)
        return np.stack(xs), np.array(ys)

    x, y = data(seed, n_per_class)
    xv, yv = data(seed + 1000, max(200, n_per_class // 5))
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-3
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 96), torch.nn.ReLU(), torch.nn.Linear(96, 10))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy((x - mean) / std), torch.from_numpy(y)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for k in range(0, len(xt), 256):
            idx = perm[k : k + 256]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    w1, b1, w2, b2 = (p.detach().numpy() for p in net.parameters())
    weights = {"w1": w1.T, "b1": b1, "w2": w2.T, "b2": b2, "mean": mean, "std": std}
    weights = {k: v.astype(np.float16) for k, v in weights.items()}
    np.savez_compressed(out, **weights)
    _weights.cache_clear()
    pred, _ = classify(xv, {k: v.astype(np.float32) for k, v in weights.items()})
    return {"train_glyphs": int(len(x)), "heldout_glyphs": int(len(xv)), "heldout_accuracy": float((pred == yv).mean())}


if __name__ == "__main__":
    import argparse
    import time

    ap = argparse.ArgumentParser(prog="python -m veernet_ray.layout.digits", description="(Re)train the digit reader.")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--n", type=int, default=2500, help="renders per digit (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=30)
    a = ap.parse_args()
    if a.train:
        t0 = time.time()
        print(train(a.n, epochs=a.epochs), f"{time.time() - t0:.0f} s", WEIGHTS)
