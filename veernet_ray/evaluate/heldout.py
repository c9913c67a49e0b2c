"""Leave-style-out evaluation: the model and the classical baselines on scans drawn in styles,
and from wells, that training never used.

`ensure_set` generates (once, then reuses) an evaluation set: one dataset per
style family at seed size (3,200-12,800 x 480-640 px). `evaluate_sets` runs
every scan through the same code inference runs (`infer.stages.ModelStage`,
`trace.decode.decode`, `trace.qc`), grades masks and recovered curves against
the truth, runs the baselines on the same pixels, and returns one row per
(scan, curve, method) plus the mask confusion per family.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veernet_ray.config import PROJECT_ROOT

#: evaluation sets: name -> style families (synth.styles.STYLE_FAMILIES)
EVAL_SETS: dict[str, tuple[str, ...]] = {
    # (a family's seed is EVAL_SEED + its place here: add new families at the end)
    "heldout-style": ("heldout-dashgrid", "heldout-bitonal", "heldout-faded", "heldout-plain"),
    # training styles, other seeds: what QC thresholds are chosen on (never on the held-out set)
    "train-style": ("train",),
    # styles training never draws, from training wells: where choices about unseen styles are made
    "val-style": ("val-smudge", "val-coarse", "val-brokengrid"),
}
#: base seed of the evaluation sets; far from any training seed
EVAL_SEED = 90210
DEFAULT_LAS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "las"


def ensure_set(name: str, root: str | os.PathLike, *, n: int = 12, seed: int = EVAL_SEED,
               las_dir: str | os.PathLike | None = None, preset: str = "seed",
               width: tuple[int, int] | None = None, progress: bool = True) -> list[tuple[str, Path]]:
    """[(family, manifest)] of evaluation set `name` under root/<name>/<family>-n<n>-s<seed>, generated once."""
    from veernet_ray.synth import generate_dataset
    from veernet_ray.synth.generate import DatasetExistsError

    if name not in EVAL_SETS:
        raise KeyError(f"unknown evaluation set {name!r}; valid: {sorted(EVAL_SETS)}")
    las = Path(las_dir) if las_dir else DEFAULT_LAS_DIR
    las_arg = str(las) if las.is_dir() else None
    out = []
    for i, family in enumerate(EVAL_SETS[name]):
        tag = f"{family}-n{n}-s{seed + i}" + (f"-w{width[0]}-{width[1]}" if width else "")
        kwargs = dict(n=n, seed=seed + i, preset=preset, width=width, las_dir=las_arg, split=(0.0, 0.0, 1.0),
                      style_family=family, progress=progress, workers=1)
        try:
            manifest = generate_dataset(Path(root) / name / tag, **kwargs)
        except DatasetExistsError:  # drawn by an older generator (its synth.json differs): a cache, drawn again
            print(f"veernet evaluate: {Path(root) / name / tag} was generated with other settings; generating it again",
                  file=sys.stderr)
            manifest = generate_dataset(Path(root) / name / tag, overwrite=True, **kwargs)
        out.append((family, manifest))
    return out


@dataclass
class EvalResult:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per (scan, curve, method)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)  # family -> (C, C)
    seconds: dict[str, float] = field(default_factory=dict)


def cache_folder(root: str | Path, checkpoint_hash: str) -> Path:
    """Where a checkpoint's cached probabilities live under `root`: they depend on the checkpoint and on
    how the model stage pads a scan (its margin and fill), so both are in the name."""
    from veernet_ray.infer.stages import INFER_FILL, INFER_MARGIN

    return Path(root) / f"{checkpoint_hash}-m{INFER_MARGIN}{'p' if INFER_FILL == 'paper' else INFER_FILL}"


def cache_file_for(cache: str | os.PathLike, family: str, scan_id: str, image: np.ndarray) -> Path:
    """Where one scan's probabilities are cached: <cache>/<family>/<scan id>-<digest of its pixels>.npy.

    Keyed by content as well as by name: an evaluation set generated again under the same ids (a
    generator change) must not read the probabilities of the scans it replaced.
    """
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes())
    digest.update(repr((image.shape, str(image.dtype))).encode())
    return Path(cache) / family / f"{scan_id}-{digest.hexdigest()[:12]}.npy"


def model_probs(stage, image: np.ndarray, cache_file: Path | None = None) -> np.ndarray:
    """The model's (C, H, W) uint8 probabilities for one scan, kept in `cache_file` (.npy) when given
    and read back from it on later calls (when its shape fits the scan), so decoders and QC can be
    compared without running the model again."""
    if cache_file is not None and cache_file.is_file():
        probs = np.load(cache_file)
        if probs.shape[1:] == image.shape and probs.dtype == np.uint8:
            return probs
    probs = stage.infer([image])[0]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + ".tmp.npy")
        np.save(tmp, probs)
        tmp.replace(cache_file)
    return probs


def evaluate_sets(checkpoint: str | os.PathLike | None, sets: list[tuple[str, Path]], *, baselines: bool = True,
                  thresholds=None, progress: bool = True, max_width: int = 8192,
                  cache: Path | None = None) -> EvalResult:
    """Grade the model (None: no model) and the baselines on every scan of the given (family, manifest) sets.

    cache: a folder for this checkpoint's probabilities (`model_probs`: <cache>/<family>/<scan>.npy).
    """
    from tqdm import tqdm

    from veernet_ray.data.manifest import read_manifest
    from veernet_ray.evaluate import normalised
    from veernet_ray.evaluate.baselines import BASELINES, assign_identity
    from veernet_ray.infer.stages import ModelStage
    from veernet_ray.io import read_image
    from veernet_ray.metrics.curves import curve_metrics
    from veernet_ray.trace.decode import decode
    from veernet_ray.trace.qc import QCThresholds, curve_signals, judge

    thresholds = thresholds or QCThresholds()
    stage = None
    if checkpoint is not None:
        stage = ModelStage(str(checkpoint), device="cpu", batch_size=1, max_width=max_width,
                           num_threads=os.cpu_count())
    result = EvalResult()
    items = []
    for family, manifest in sets:
        df = read_manifest(manifest)
        for r in df.itertuples(index=False):
            items.append((family, Path(manifest).parent, r))
    t_model = t_trace = t_base = 0.0
    for family, root, r in tqdm(items, desc="veernet evaluate", unit="scan", disable=not progress, file=sys.stderr):
        image, truth, class_ids, wrap = load_scan(root, r)
        mask = read_image(root / r.mask)
        h, w = image.shape

        base = {"family": family, "scan": r.id, "width": w, "height": h, "wrap": bool(r.wrap),
                "crossing": bool(r.crossing), "curve2_style": r.curve2_style}
        if stage is not None:
            t0 = time.perf_counter()
            cache_file = cache_file_for(cache, family, str(r.id), image) if cache is not None else None
            probs = np.divide(model_probs(stage, image, cache_file), np.float32(255.0), dtype=np.float32)
            t1 = time.perf_counter()
            nc = stage.num_classes
            pred = probs.argmax(0)
            cm = np.bincount(mask.astype(np.int64).ravel() * nc + pred.ravel(), minlength=nc * nc).reshape(nc, nc)
            result.confusion[family] = result.confusion.get(family, 0) + cm
            trace = decode(probs, class_ids, wrap_px=wrap or None)
            signals = curve_signals(trace.rows, trace.confidence, class_ids, probs, image, wrap, page=trace.page)
            t2 = time.perf_counter()
            t_model += t1 - t0
            t_trace += t2 - t1
            model_pos = normalised(trace.rows, h)
            for k, cid in enumerate(class_ids):
                m = curve_metrics(model_pos[k], truth.positions[k].astype(np.float64))
                flagged, reason = judge(signals[k], thresholds, cid)
                result.rows.append({**base, "method": "model", "class_id": cid, **_pick(m),
                                    **{f"qc_{s}": v for s, v in signals[k].items()}, "flagged": flagged,
                                    "reason": reason})
        if baselines:
            t3 = time.perf_counter()
            truth_rows = (h - 1) - truth.positions.astype(np.float64) * (h - 1)
            for name, (fn, _) in BASELINES.items():
                rows = assign_identity(fn(image, wrap or None), truth_rows)
                pos = normalised(rows, h)
                for k, cid in enumerate(class_ids):
                    m = curve_metrics(pos[k], truth.positions[k].astype(np.float64))
                    result.rows.append({**base, "method": name, "class_id": cid, **_pick(m)})
            t_base += time.perf_counter() - t3
    result.seconds = {"model": t_model, "trace_qc": t_trace, "baselines": t_base, "scans": len(items)}
    return result


def load_scan(root: Path, r) -> tuple[np.ndarray, Any, tuple[int, ...], dict[int, float]]:
    """One evaluation scan (a manifest row under root): image, truth positions, class ids, wrap periods (px)."""
    from veernet_ray.evaluate import truth_positions
    from veernet_ray.io import read_image
    from veernet_ray.las.sidecar import Sidecar

    image = read_image(root / r.image)
    sc = Sidecar.load(root / r.calibration)
    h, w = image.shape
    truth = truth_positions(root / r.las, sc, h, w)
    class_ids = tuple(c.class_id for c in sorted(sc.curves, key=lambda c: c.class_id))
    wrap = {c.class_id: c.wrap.period * c.track_px for c in sc.curves if c.wrap is not None}
    return image, truth, class_ids, wrap


def _pick(m: dict[str, float]) -> dict[str, float]:
    return {k: float(m[k]) for k in ("r2", "mae", "pearson", "coverage")}


# ------------------------------------------------------------------ summaries
def curve_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (family or 'all', method): curves, median R^2, share below 0.8, mean MAE, median Pearson, coverage.

    A curve whose trace found nothing (R^2 NaN) counts as R^2 0 and Pearson 0
    (no skill), as in `evaluate.summarise`: finding fewer curves never helps.
    """
    import pandas as pd

    df = pd.DataFrame(rows)
    out = []
    for fam in ["all", *sorted(df["family"].unique())]:
        sub = df if fam == "all" else df[df["family"] == fam]
        for method in _methods(df):
            s = sub[sub["method"] == method]
            if s.empty:
                continue
            r2 = s["r2"].fillna(0.0)
            out.append({
                "family": fam, "method": method, "curves": int(len(s)),
                "r2_median": float(r2.median()), "below_0.8": float((r2 < 0.8).mean()),
                "mae_mean": float(s["mae"].mean()), "pearson_median": float(s["pearson"].fillna(0.0).median()),
                "coverage_mean": float(s["coverage"].mean()),
            })
    return out


def mask_table(confusion: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per family and overall: IoU and F1 per curve class from the summed confusion matrices."""
    import torch

    from veernet_ray.metrics.segmentation import scores_from_confusion

    if not confusion:
        return []
    fams = {"all": sum(confusion.values()), **confusion}
    out = []
    for fam, cm in fams.items():
        s = scores_from_confusion(torch.as_tensor(np.asarray(cm), dtype=torch.float64))
        out.append({"family": fam, **{k: float(v) for k, v in s.items() if k.split("_")[0] in ("iou", "f1")}})
    return out


QC_TITLE = ("QC on the model's curves (bad: R^2 < 0.8, good: R^2 >= 0.95, "
            "whole good: good over at least 90% of the depth, off: mean error above 3% of the track or no trace)")


def qc_table(rows: list[dict[str, Any]], bad: float = 0.8, good: float = 0.95, whole: float = 0.9,
             off: float = 0.03) -> list[dict[str, Any]]:
    """How QC did on the model's curves: share of bad curves (R^2 < bad) flagged, of good ones (>= good) flagged.

    A good curve traced over only part of the depth is rightly sent to review (R^2 counts only where
    it has values), so the good curves that also cover at least `whole` of the depth ("whole") get
    their own share. R^2 is harsh on a nearly flat curve (a trace a hair off it scores below 0.8), so
    the curves whose mean error is above `off` of the track, or that have no trace ("off"), get theirs.
    """
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["method"] == "model"])
    if df.empty:
        return []
    out = []
    for fam in ["all", *sorted(df["family"].unique())]:
        s = df if fam == "all" else df[df["family"] == fam]
        r2 = s["r2"].fillna(-np.inf)
        badm, goodm = r2 < bad, r2 >= good
        wholem = goodm & (s["coverage"].fillna(0) >= whole)
        offm = s["mae"].fillna(np.inf) > off
        out.append({
            "family": fam, "curves": int(len(s)), "flagged": int(s["flagged"].sum()),
            "bad": int(badm.sum()), "bad_flagged": float(s.loc[badm, "flagged"].mean()) if badm.any() else float("nan"),
            "good": int(goodm.sum()),
            "good_flagged": float(s.loc[goodm, "flagged"].mean()) if goodm.any() else float("nan"),
            "whole_good": int(wholem.sum()),
            "whole_good_flagged": float(s.loc[wholem, "flagged"].mean()) if wholem.any() else float("nan"),
            "off": int(offm.sum()), "off_flagged": float(s.loc[offm, "flagged"].mean()) if offm.any() else float("nan"),
        })
    return out


CURVES_TITLE = "Recovered curves (track-normalised, against the truth LAS)"
QC_RULES_TITLE = "QC rules over all families (alone: flagged by no other rule)"


def qc_rules_table(rows: list[dict[str, Any]], bad: float = 0.8, good: float = 0.95) -> list[dict[str, Any]]:
    """Per QC rule (`trace.qc.reason_rules` of each model curve's reason): curves it flags, bad and good
    ones among them (R^2 < bad, >= good), and the bad and good ones it alone flags. Most flags first."""
    from veernet_ray.trace.qc import reason_rules

    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.get("method") != "model" or not r.get("flagged"):
            continue
        rules = reason_rules(r.get("reason", ""))
        r2 = r.get("r2")
        r2 = -np.inf if r2 is None or not np.isfinite(r2) else r2
        kind = "bad" if r2 < bad else "good" if r2 >= good else None
        for rule in rules:
            c = counts.setdefault(rule, {"flags": 0, "bad": 0, "bad_alone": 0, "good": 0, "good_alone": 0})
            c["flags"] += 1
            if kind:
                c[kind] += 1
                c[f"{kind}_alone"] += len(rules) == 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1]["flags"], kv[0]))
    return [{"rule": rule, **c} for rule, c in ordered]


def _methods(df) -> list[str]:
    order = ["model", "viterbi-ink", "darkest-row"]
    return [m for m in order if m in set(df["method"])] + sorted(set(df["method"]) - set(order))


def markdown(title: str, table: list[dict[str, Any]]) -> str:
    if not table:
        return f"### {title}\n(no rows)\n"
    keys = list(table[0])
    lines = [f"### {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in table:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_sections(tables: dict[str, list[dict]]) -> list[str]:
    """The report's tables as markdown, in the order report.md and the command's printout give them."""
    return [markdown(CURVES_TITLE, tables["curves"]), markdown("Masks (model only)", tables["masks"]),
            markdown(QC_TITLE, tables["qc"]), markdown(QC_RULES_TITLE, tables["qc_rules"])]


def write_report(out_dir: str | os.PathLike, result: EvalResult, meta: dict[str, Any]) -> dict[str, Any]:
    """curves.parquet (every row), report.md and report.json (tables + meta) under out_dir.

    Returns the three paths and `tables` (what report.json holds), so a caller prints them without
    building them again."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(result.rows).to_parquet(out / "curves.parquet", index=False)
    tables = {"curves": curve_table(result.rows), "masks": mask_table(result.confusion),
              "qc": qc_table(result.rows), "qc_rules": qc_rules_table(result.rows)}
    from veernet_ray.evaluate.figure import write_figure

    figure = write_figure(result.rows, out / "report.png",
                          title=f"veernet evaluate: {meta.get('set')}, checkpoint {meta.get('checkpoint_hash', '?')}")
    md = [f"# Evaluation: {meta.get('set')}", "", "```", json.dumps(meta, indent=1, default=str), "```", "",
          f"![every curve's R^2 per style and method; the model's curves by error and QC verdict]({figure.name})", "",
          *report_sections(tables)]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    (out / "report.json").write_text(json.dumps({"meta": meta, **tables, "seconds": result.seconds},
                                                indent=1, default=str), encoding="utf-8")
    return {"parquet": out / "curves.parquet", "markdown": out / "report.md", "json": out / "report.json",
            "figure": figure, "tables": tables}
