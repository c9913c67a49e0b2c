"""Do a model's curves depend on the cell a scan is padded into? (bench/RESULTS.md, "Batch padding")

    .venv/bin/veernet evaluate --n 12 --cache runs/eval/cache     # once: the held-out set, batch-1 probabilities
    PYTHONPATH=. .venv/bin/python bench/padding_curves.py --grow 1.08 1.2 --cache runs/eval/cache/3e2f0eea9404-m16255
    PYTHONPATH=. .venv/bin/python bench/padding_curves.py --smoke-test

Every scan of the held-out set (`runs/eval/data/heldout-style/*`, as `veernet evaluate` generated
it) is run through the model stage's own forward twice: alone (what `veernet evaluate` does; read
from `--cache` when given) and padded into a cell GROW_H x taller and GROW_W x wider (1.08 x 1.2
is about the 28% padding of the GPU shape grid). Both are decoded with the default decoder and
graded against the truth; printed: median R^2, share below 0.8, curves at R^2 >= 0.95 and mean
MAE per variant, medians per family, and the mean probability difference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grow", type=float, nargs=2, default=(1.08, 1.2), metavar=("GROW_H", "GROW_W"),
                   help="cell size over the scan's (default: %(default)s)")
    p.add_argument("--data", default="runs/eval/data/heldout-style", help="folder of evaluation sets (default: %(default)s)")
    p.add_argument("--checkpoint", help="default: the shipped weights")
    p.add_argument("--cache", help="`veernet evaluate`'s probabilities for this checkpoint (<cache>/<family>/<scan>.npy)")
    p.add_argument("--out", help="write every curve's figures here (.parquet)")
    p.add_argument("--smoke-test", action="store_true", help="2 small generated scans and a tiny model")
    args = p.parse_args(argv)

    import pandas as pd

    from veernet_ray.data.collate import round_up
    from veernet_ray.data.manifest import read_manifest
    from veernet_ray.evaluate import normalised
    from veernet_ray.evaluate.heldout import cache_file_for, load_scan
    from veernet_ray.infer.stages import ModelStage
    from veernet_ray.metrics.curves import curve_metrics
    from veernet_ray.trace.decode import decode
    from veernet_ray.weights import SHIPPED

    ckpt = args.checkpoint or str(SHIPPED)
    if args.smoke_test:
        from veernet_ray.infer.cli import tiny_checkpoint
        from veernet_ray.synth import generate_dataset
        from veernet_ray.synth.styles import style_family

        tmp = Path(tempfile.mkdtemp())
        ckpt = str(tiny_checkpoint(tmp / "ckpt"))
        generate_dataset(tmp / "sets" / "heldout-plain-n2", n=2, seed=5, preset="demo", split=(1.0, 0.0, 0.0),
                         style=style_family("heldout-plain"), style_family="heldout-plain", progress=False)
        args.data, args.cache = str(tmp / "sets"), None
    stage = ModelStage(ckpt, device="cpu", batch_size=1, max_width=1 << 20)
    rows = []
    roots = sorted(d for d in Path(args.data).iterdir() if (d / "manifest.parquet").is_file())
    if not roots:
        p.error(f"no evaluation sets under {args.data}: run `veernet evaluate --n 12` first")
    t0 = time.perf_counter()
    for root in roots:
        fam = root.name.rsplit("-n", 1)[0]
        for r in read_manifest(root / "manifest.parquet").itertuples(index=False):
            image, truth, cids, wrap = load_scan(root, r)
            h, w = image.shape
            cached = cache_file_for(args.cache, fam, str(r.id), image) if args.cache else None
            alone = np.load(cached) if cached is not None and cached.is_file() else stage.forward([image])[0]
            cell = (round_up(int(h * args.grow[0]) + stage.margin, stage.multiple),
                    round_up(int(w * args.grow[1]) + stage.margin, stage.multiple))
            padded = stage.forward([image], pad_to=cell)[0]
            dp = float(np.abs(padded.astype(np.int16) - alone.astype(np.int16)).mean()) / 255
            for name, probs in (("alone", alone), ("padded", padded)):
                pos = normalised(decode(probs.astype(np.float32) / 255, cids, wrap_px=wrap or None).rows, h)
                for k, cid in enumerate(cids):
                    m = curve_metrics(pos[k], truth.positions[k].astype(np.float64))
                    rows.append(dict(family=fam, scan=r.id, class_id=cid, variant=name, r2=m["r2"], mae=m["mae"],
                                     mean_abs_dp=dp))
            print(f"{fam} {r.id} {h} x {w} -> cell {cell[0]} x {cell[1]}", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    df["r2"] = df["r2"].fillna(0.0)  # no curve found: no skill, as `veernet evaluate` counts it
    if args.out:
        df.to_parquet(args.out)
    summary = df.groupby("variant").agg(median_r2=("r2", "median"), below_08=("r2", lambda s: (s < 0.8).mean()),
                                        good=("r2", lambda s: int((s >= 0.95).sum())), mae=("mae", "mean"))
    print(f"{df.scan.nunique()} scans, cell {args.grow[0]} x {args.grow[1]} the scan's size, "
          f"{time.perf_counter() - t0:.0f} s")
    print(summary.round(3).to_string())
    print(df.groupby(["family", "variant"]).r2.median().unstack().round(3).to_string())
    print(f"mean |probability difference| padded - alone: {df[df.variant == 'padded'].mean_abs_dp.mean():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
