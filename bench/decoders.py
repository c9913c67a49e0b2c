"""Which decoder turns the model's probabilities into curves best? Chosen on training styles.

    .venv/bin/python bench/decoders.py --set train-style           # choose here
    .venv/bin/python bench/decoders.py --set heldout-style         # report once, never tune here
    .venv/bin/python bench/decoders.py --smoke-test
    .venv/bin/python bench/decoders.py --set train-style --n 120 --decoders ink-classes-closed --stretch 0.5,90
    .venv/bin/python bench/decoders.py --set train-style --n 120 --decoders ink-classes-closed --flip w

Runs the model once per scan (probabilities cached as uint8 under runs/eval/cache/<hash>/,
so decoders can be compared without re-running it), then every decoder in
`trace.decode.DECODERS` on the same probabilities, and prints the median and
the share below 0.8 of curve R^2 per family and decoder, beside how much of the depth the traces
cover (a decoder can lift R^2 by tracing less). The evaluation sets
are `veernet evaluate`'s (same seeds, same scans).

Two test-time changes to the model's input can be tried beside the decoders (each view's
probabilities cached in a folder of its own): `--stretch LO,HI` stretches each scan's grey levels
from its LO-th to its HI-th percentile onto black..white before the model sees it; `--flip w`
(depth), `h` (value) or `wh` averages the probabilities over the flipped views. `--curves FILE`
writes the per-curve rows, to compare two runs scan by scan.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


#: R^2 and MAE are read only where a trace has a value, so a decoder that leaves hard columns blank
#: scores better on them: each table also counts curves bad or traced over less than SHORT of the depth,
#: and curves good (R^2 >= 0.95) over at least WHOLE of it (bench/RESULTS.md, "The second pass looks for
#: the other class")
SHORT = 0.65
WHOLE = 0.9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", dest="set_name", default="train-style")
    p.add_argument("--n", type=int, default=None, help="scans per family (default: 16 train-style, 12 held-out)")
    p.add_argument("--seed", type=int, default=None,
                   help="the set's generator seed (default: veernet evaluate's); another seed gives fresh scans "
                        "of the same styles, to confirm a choice made on the default ones")
    p.add_argument("--checkpoint", default=None, help="default: the shipped weights")
    p.add_argument("--data", default="runs/eval/data")
    p.add_argument("--cache", default="runs/eval/cache")
    p.add_argument("--decoders", default=None, help="comma-separated names from trace.decode.DECODERS (default: all)")
    p.add_argument("--stretch", default=None, metavar="LO,HI",
                   help="stretch each scan's grey levels from its LO-th to its HI-th percentile before the model")
    p.add_argument("--flip", default="", choices=["", "w", "h", "wh"],
                   help="also run the model on the scan flipped along depth (w) and/or value (h), and average")
    p.add_argument("--curves", default=None, help="write the per-curve rows here (.parquet)")
    p.add_argument("--smoke-test", action="store_true", help="2 scans, tiny untrained model: the code path only")
    args = p.parse_args(argv)

    import pandas as pd

    from veernet_ray.data.manifest import read_manifest
    from veernet_ray.evaluate import normalised
    from veernet_ray.evaluate.heldout import cache_folder, ensure_set, load_scan
    from veernet_ray.infer.pipeline import model_provenance, resolve_checkpoint
    from veernet_ray.infer.stages import ModelStage
    from veernet_ray.metrics.curves import curve_metrics
    from veernet_ray.trace.decode import DECODERS

    n = args.n or (16 if args.set_name == "train-style" else 12)
    if args.smoke_test:
        import tempfile

        from veernet_ray.infer.cli import tiny_checkpoint

        tmp = Path(tempfile.mkdtemp(prefix="veernet-decoders-"))
        ckpt, n, data, cache = tiny_checkpoint(tmp / "tiny"), 2, tmp / "data", tmp / "cache"
        ckpt_hash = "tiny"
    else:
        ckpt, source = resolve_checkpoint(args.checkpoint, tracking_uri=None, state_dir=Path("runs/eval").resolve())
        ckpt_hash = model_provenance(ckpt, source)[1]["checkpoint_hash"]
        data, cache = Path(args.data), Path(args.cache)
    seed = {} if args.seed is None else {"seed": args.seed}
    sets = ensure_set(args.set_name, data, n=n, progress=False, **seed,
                      width=(640, 1024) if args.smoke_test else None)
    stage = ModelStage(str(ckpt), device="cpu", batch_size=1, max_width=8192, num_threads=None)
    rows = []
    names = args.decoders.split(",") if args.decoders else list(DECODERS)
    unknown = [k for k in names if k not in DECODERS]
    if unknown:
        p.error(f"unknown decoder(s) {', '.join(unknown)}; choose from {', '.join(DECODERS)}")
    stretch = None
    if args.stretch:
        try:
            stretch = tuple(float(v) for v in args.stretch.split(","))
        except ValueError:
            stretch = ()
        if len(stretch) != 2 or not 0 <= stretch[0] < stretch[1] <= 100:
            p.error(f"--stretch wants two percentiles LO,HI with 0 <= LO < HI <= 100, got {args.stretch!r}")
    chosen = {k: DECODERS[k] for k in names}
    t_dec = {k: 0.0 for k in chosen}
    for family, manifest in sets:
        root = Path(manifest).parent
        for r in read_manifest(manifest).itertuples(index=False):
            image, truth, class_ids, wrap = load_scan(root, r)
            h = image.shape[0]
            probs = view_probs(stage, image, cache_folder(cache, ckpt_hash), family, r.id, stretch, args.flip)
            for name, (fn, _) in chosen.items():
                t0 = time.perf_counter()
                res = fn(probs, class_ids, wrap_px=wrap or None, image=image)
                t_dec[name] += time.perf_counter() - t0
                pos = normalised(res.rows, h)
                for k, cid in enumerate(class_ids):
                    m = curve_metrics(pos[k], truth.positions[k].astype(np.float64))
                    rows.append({"family": family, "scan": r.id, "decoder": name, "class_id": cid,
                                 "r2": float(m["r2"]), "mae": float(m["mae"]), "coverage": float(m["coverage"])})
    df = pd.DataFrame(rows)
    df["r2"] = df["r2"].fillna(-np.inf)
    if args.curves:
        df.to_parquet(args.curves)
    tab = []
    for (fam, dec), g in list(df.groupby(["family", "decoder"])) + [(("all", d), g) for d, g in df.groupby("decoder")]:
        tab.append({"family": fam, "decoder": dec, "curves": len(g), "r2_median": round(float(g.r2.median()), 3),
                    "r2_median_c1": round(float(g[g.class_id == 1].r2.median()), 3),
                    "r2_median_c2": round(float(g[g.class_id == 2].r2.median()), 3),
                    "below_0.8": round(float((g.r2 < 0.8).mean()), 3), "at_0.95": int((g.r2 >= 0.95).sum()),
                    "mae_mean": round(float(g.mae.mean()), 3),
                    "coverage_c1": round(float(g[g.class_id == 1].coverage.mean()), 3),
                    "coverage_c2": round(float(g[g.class_id == 2].coverage.mean()), 3),
                    "bad_or_short": int(((g.r2 < 0.8) | (g.coverage < SHORT)).sum()),
                    "whole_good": int(((g.r2 >= 0.95) & (g.coverage >= WHOLE)).sum())})
    from veernet_ray.evaluate.heldout import markdown

    print(markdown(f"Decoders on {args.set_name}, n={n}/family, checkpoint {ckpt_hash}", tab))
    print("decoder seconds:", {k: round(v, 1) for k, v in t_dec.items()})
    return 0


def stretched(image: np.ndarray, lo_pct: float, hi_pct: float) -> np.ndarray:
    """uint8 `image` with its grey levels from the lo_pct-th to the hi_pct-th percentile stretched onto
    0..255 (darker clipped to black, lighter to white)."""
    lo, hi = np.percentile(image, [lo_pct, hi_pct])
    x = np.clip((image.astype(np.float32) - lo) / max(float(hi - lo), 1.0), 0.0, 1.0)
    return np.round(x * 255.0).astype(np.uint8)


def view_probs(stage, image: np.ndarray, cache: Path, family: str, scan: str,
               stretch: tuple[float, float] | None, flip: str) -> np.ndarray:
    """(C, H, W) float probabilities of one scan, through the optional input stretch and averaged over the
    optional flipped views; each view cached under a folder named after it."""
    from veernet_ray.evaluate.heldout import cache_file_for, model_probs

    if stretch is not None:
        image = stretched(image, *stretch)
        cache = cache.with_name(cache.name + f"-st{stretch[0]:g},{stretch[1]:g}")
    views = [model_probs(stage, image, cache_file_for(cache, family, scan, image)).astype(np.float32) / 255.0]
    for ax in flip:
        a = 1 if ax == "w" else 0
        p = model_probs(stage, np.ascontiguousarray(np.flip(image, a)),
                        cache_file_for(cache.with_name(cache.name + f"-flip{ax}"), family, scan, image))
        views.append(np.flip(p, a + 1).astype(np.float32) / 255.0)
    return views[0] if len(views) == 1 else np.mean(views, axis=0, dtype=np.float32)


if __name__ == "__main__":
    sys.exit(main())
