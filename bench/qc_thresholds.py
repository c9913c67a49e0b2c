"""Choose QC thresholds on a tuning set, never on the set they are reported on.

    .venv/bin/veernet evaluate --set train-style --checkpoint runs/ship/best --out runs/eval/tune-qc
    .venv/bin/python bench/qc_thresholds.py runs/eval/tune-qc/curves.parquet
    .venv/bin/python bench/qc_thresholds.py runs/eval/tune-qc/curves.parquet --min-bad 0.95 --folds 2 --repeats 5
    .venv/bin/python bench/qc_thresholds.py runs/eval/tune-qc/curves.parquet runs/eval/val/curves.parquet \
        --check runs/eval/fresh/curves.parquet
    .venv/bin/python bench/qc_thresholds.py --smoke-test

Several curves.parquet files are pooled into one tuning set (training styles and the validation
styles, `veernet evaluate --set val-style`, say); `--check` files are only scored, with the
defaults and with the chosen thresholds, one line each.

Reads the model's per-curve QC signals and R^2 from a `veernet evaluate` run
(curves.parquet), then searches `trace.qc.QCThresholds` one signal at a time
(coordinate ascent, a few rounds) for the most bad curves (R^2 < 0.8) flagged,
with a penalty on every good curve (R^2 >= 0.95) flagged beyond `--max-good`. Prints
the chosen thresholds as Python, to paste into QCThresholds' defaults, and the
figures they give on the tuning set.

Thresholds tuned to the edge of a target on one set flag fewer bad curves on another. `--folds K`
measures that gap on the tuning set itself: its scans split K ways (`--repeats` times, shuffled),
thresholds tuned on K-1 parts and scored on the part left out, pooled. Choose the target whose
left-out figures meet the issue's, then tune on the whole set at that target.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

GRIDS = {
    "min_confidence": np.linspace(0.2, 0.8, 13),
    "min_margin": np.r_[-1.0, np.linspace(-0.2, 0.8, 21)],  # -1: off
    "min_margin_2": np.r_[-1.0, np.linspace(-0.5, 0.5, 21)],  # -1: off
    "min_pen": np.r_[-1.0, np.linspace(-0.3, 0.5, 17)],  # -1: off
    "pen_margin": np.r_[np.linspace(0.2, 1.0, 9), 9.0],  # 9: the pen rule whatever the margin
    "max_shared": np.linspace(0.02, 0.6, 30),
    "min_ink": np.linspace(0.1, 0.9, 17),
    "ink_contrast": np.r_[np.linspace(0.2, 0.8, 7), 9.0],  # 9: the ink rule whatever the contrast
    "max_grid": np.r_[0.0, 0.01, 0.02, np.linspace(0.05, 0.8, 16)],
    "max_jumps": np.array([1, 2, 3, 4, 6, 8, 12, 20, 1e9]),
    "max_cycles": np.array([1.0, 9.0]),  # 9: off
    "max_backup": np.r_[np.linspace(0.2, 0.5, 7), 9.0],  # 9: off
    "min_spread": np.linspace(0.0, 0.05, 11),
    "min_coverage": np.linspace(0.3, 0.9, 13),
}


def flags(df, t) -> np.ndarray:
    """(len(df),) bool: which curves thresholds `t` flag, from their qc_* signals."""
    from veernet_ray.trace.qc import judge

    sigs = [({k[3:]: r[k] for k in r.index if k.startswith("qc_")}, int(r["class_id"])) for _, r in df.iterrows()]
    return np.array([judge(s, t, cid)[0] for s, cid in sigs], dtype=bool)


def rates(df, t) -> tuple[float, float]:
    flagged = flags(df, t)
    r2 = df["r2"].fillna(-np.inf).to_numpy()
    bad, good = r2 < 0.8, r2 >= 0.95
    return (float(flagged[bad].mean()) if bad.any() else float("nan"),
            float(flagged[good].mean()) if good.any() else float("nan"))


def search(df, max_good: float, rounds: int = 4, min_bad: float | None = None, keep: tuple[str, ...] = (),
           penalty: float = 2.0):
    """Coordinate ascent on: bad curves flagged, minus 2x every point of good curves flagged above max_good.

    The penalty (not a hard limit) lets the search walk from defaults that flag too many good
    curves towards ones that do not; ties go to the threshold flagging fewer good curves.
    With min_bad, the objective is instead: fewest good curves flagged while at least min_bad of
    the bad ones are (`penalty` x every point of bad recall short of it). keep: thresholds
    left at their defaults.
    """
    from veernet_ray.trace.qc import QCThresholds

    def score(rates_: tuple[float, float]) -> tuple[float, float]:
        bad, good = rates_
        if min_bad is not None:
            return -good - penalty * max(0.0, min_bad - bad), bad
        return bad - penalty * max(0.0, good - max_good), -good

    t = QCThresholds()
    for _ in range(rounds):
        for name, grid in GRIDS.items():
            if name in keep:
                continue
            best = (score(rates(df, t)), getattr(t, name))
            for v in grid:
                cand = dataclasses.replace(t, **{name: float(v)})
                sc = score(rates(df, cand))
                if sc > best[0]:
                    best = (sc, float(v))
            t = dataclasses.replace(t, **{name: best[1]})
    return t, rates(df, t)


def cross_check(df, folds: int, repeats: int, seed: int = 0, **search_kwargs) -> tuple[float, float, list]:
    """Left-out rates of `search` over `repeats` shuffled `folds`-way splits of the scans:
    (bad flagged, good flagged, pooled over every left-out part; the per-part rates)."""
    rng = np.random.default_rng(seed)
    scans = df["scan"].unique()
    flagged_bad = flagged_good = n_bad = n_good = 0
    parts = []
    for _ in range(repeats):
        order = rng.permutation(scans)
        for k in range(folds):
            out = set(order[k::folds])
            test, tune = df[df["scan"].isin(out)], df[~df["scan"].isin(out)]
            t, _ = search(tune, **search_kwargs)
            r2 = test["r2"].fillna(-np.inf).to_numpy()
            flagged = flags(test, t)
            bad, good = r2 < 0.8, r2 >= 0.95
            flagged_bad += int(flagged[bad].sum())
            flagged_good += int(flagged[good].sum())
            n_bad += int(bad.sum())
            n_good += int(good.sum())
            parts.append((float(flagged[bad].mean()) if bad.any() else float("nan"),
                          float(flagged[good].mean()) if good.any() else float("nan")))
    return flagged_bad / max(n_bad, 1), flagged_good / max(n_good, 1), parts


def read_curves(path, tag: str = ""):
    """The model's rows of one curves.parquet; scan ids prefixed with `tag` so pooled sets stay apart."""
    import pandas as pd

    df = pd.read_parquet(path)
    df = df[df["method"] == "model"].copy()
    if "qc_coverage" not in df:  # runs before the trace's own coverage was recorded
        df["qc_coverage"] = df["coverage"]
    df["scan"] = tag + ":" + df["scan"].astype(str) if tag else df["scan"]
    return df


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from veernet_ray.trace.qc import QCThresholds

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("curves", nargs="*", help="curves.parquet of `veernet evaluate` runs on tuning sets (pooled)")
    p.add_argument("--check", nargs="+", default=[], metavar="CURVES",
                   help="curves.parquet files only scored (never tuned on): defaults and chosen thresholds")
    p.add_argument("--max-good", type=float, default=0.10, help="most good curves QC may flag on the tuning set")
    p.add_argument("--min-bad", type=float, default=None,
                   help="instead: flag the fewest good curves while flagging at least this share of bad ones")
    p.add_argument("--penalty", type=float, default=2.0,
                   help="cost of each point short of --min-bad (or over --max-good) against the other rate")
    p.add_argument("--keep", default="max_shared",
                   help="comma-separated thresholds left at their defaults (default max_shared: on training styles "
                        "the curves seldom cross, so any shared ink reads as wrong; held out, good crossing curves "
                        "were then flagged; bench/RESULTS.md). '' tunes them all")
    p.add_argument("--folds", type=int, default=0,
                   help="also tune on all but one of this many parts of the scans and score the part left out "
                        "(pooled; 0: not)")
    p.add_argument("--repeats", type=int, default=3, help="shuffled splits for --folds")
    p.add_argument("--smoke-test", action="store_true", help="a small made-up signal table (checks the search runs)")
    args = p.parse_args(argv)
    if args.folds == 1 or args.folds < 0:
        p.error(f"--folds must be 0 (off) or at least 2, got {args.folds}")
    tuning = {f: read_curves(f, tag=str(i)) for i, f in enumerate(args.curves)}
    if args.smoke_test:
        rng = np.random.default_rng(0)
        n = 60
        r2 = rng.uniform(-1, 1, n)
        df = pd.DataFrame({"r2": r2, "class_id": 1 + np.arange(n) % 2, "qc_coverage": 0.9, "qc_confidence": 0.4 + 0.5 * (r2 > 0.5),
                           "qc_margin": r2, "qc_pen": 0.3, "qc_shared": 0.0, "qc_ink": 0.9, "qc_grid": 0.0, "qc_jumps": 0.0,
                           "qc_spread": 0.1, "scan": [f"s{i // 2}" for i in range(n)]})
    elif tuning:
        df = pd.concat(tuning.values(), ignore_index=True)
    else:
        p.error("give a curves.parquet or --smoke-test")
    before = rates(df, QCThresholds())
    keep = tuple(k for k in args.keep.split(",") if k)
    unknown = [k for k in keep if k not in GRIDS]
    if unknown:
        p.error(f"--keep: unknown threshold(s) {', '.join(unknown)}; choose from {', '.join(GRIDS)}")
    t, (bad, good) = search(df, args.max_good, min_bad=args.min_bad, keep=keep, penalty=args.penalty)
    print(f"tuning curves: {len(df)}  (bad R^2<0.8: {(df['r2'].fillna(-9) < 0.8).sum()}, "
          f"good R^2>=0.95: {(df['r2'] >= 0.95).sum()})")
    print(f"current defaults: bad flagged {before[0]:.2f}, good flagged {before[1]:.2f}")
    print(f"chosen:           bad flagged {bad:.2f}, good flagged {good:.2f}")
    print(repr(t))
    # each tuning set's own figures, when there are several, then the sets only scored
    sets = [("tuning", f, one) for f, one in tuning.items()] * (len(tuning) > 1)
    for role, f, one in sets + [("check", f, read_curves(f)) for f in args.check]:
        r2 = one["r2"].fillna(-np.inf)
        (b0, g0), (b1, g1) = rates(one, QCThresholds()), rates(one, t)
        print(f"{role} {f}: {(r2 < 0.8).sum()} bad, {(r2 >= 0.95).sum()} good; "
              f"defaults {b0:.2f}/{g0:.2f}, chosen {b1:.2f}/{g1:.2f} (bad/good flagged)")
    if args.folds:
        fb, fg, parts = cross_check(df, args.folds, args.repeats, max_good=args.max_good, min_bad=args.min_bad,
                                    keep=keep, penalty=args.penalty)
        spread = ", ".join(f"{b:.2f}/{g:.2f}" for b, g in parts)
        print(f"left out ({args.folds} parts x {args.repeats}): bad flagged {fb:.2f}, good flagged {fg:.2f}  "
              f"(each part, bad/good: {spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
