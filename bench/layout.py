"""Sheet layout benchmark: tracks found, labels read, depth error, seconds per sheet, OCR engines compared.

    python bench/layout.py                   # 24 generated sheets (~150 dpi), both OCR engines, + 3 at 300 dpi
    python bench/layout.py --n 8 --no-300dpi
    python bench/layout.py --smoke-test      # 2 small sheets, seconds

Every figure is measured against the generator's exact truth (`ID.truth.json`):
- tracks found: a truth track matched by a found track whose edges are within EDGE_TOL px;
- labels read: a truth label matched by a read label within ROW_TOL rows with the same value;
- depth error: |fit(row) - true depth(row)| at every true label row, over the section's depth span;
  a fit that is off by more than TARGET_REL and not flagged is a *silent miscalibration*;
- time: layout (structure) and OCR (labels + header unit) per sheet, one process, one core.
Sheets are rendered before the clock starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from veernet_ray.layout.digits import get_reader  # noqa: E402
from veernet_ray.layout.sheet import analyse_sheet, read_labels  # noqa: E402
from veernet_ray.synth.sheet import SheetConfig, render_sheet  # noqa: E402

EDGE_TOL = 6
ROW_TOL = 3.0
TARGET_REL = 0.0025  # 0.25% of the section's depth span
#: a 300-dpi sheet: 8.5 in wide, 40 in of log; labels 1:240 (100 ft = 5 in) to 1:600 (2 in), 10-14 pt digits
DPI300 = SheetConfig(width=(2400, 2600), height=(11000, 12500), label_spacing_px=(600, 1500), label_px=(28.0, 42.0))


def score(truth, a) -> dict:
    """Per-sheet figures of an analysis against its truth."""
    L = a.layout
    found = list(L.tracks)
    t_ok = sum(any(abs(f[0] - t[0]) <= EDGE_TOL and abs(f[1] - t[1]) <= EDGE_TOL for f in found) for t in truth.tracks)
    dcol_ok = L.depth_column is not None and all(abs(x - y) <= EDGE_TOL for x, y in zip(L.depth_column,
                                                                                          truth.depth_column))
    read_ok = 0
    for lab in truth.labels:
        read_ok += any(abs(r.row - lab.row) <= ROW_TOL and r.value == lab.value for r in a.labels)
    errs, silent, flagged_bad, unfit = [], 0, 0, 0
    for st in truth.sections:
        # the found section holding this truth section's middle row
        mid = (st.row0 + st.row1) / 2
        k = next((i for i, (r0, r1) in enumerate(L.sections) if r0 <= mid <= r1), None)
        if k is None or not a.fits[k].ok:
            unfit += 1
            continue
        rows = np.array([lab.row for lab in truth.labels if st.row0 <= lab.row <= st.row1])
        span = st.pitch * (st.row1 - st.row0)
        e = float(np.max(np.abs(a.fits[k].depth_at(rows) - st.depth_at(rows))) / span) if rows.size else 0.0
        errs.append(e)
        if e > TARGET_REL and not a.fits[k].flagged:
            silent += 1
        if e > TARGET_REL and a.fits[k].flagged:
            flagged_bad += 1
    return {"tracks": len(truth.tracks), "tracks_ok": t_ok, "dcol_ok": int(dcol_ok), "labels": len(truth.labels),
            "labels_ok": read_ok, "sections": len(truth.sections), "sections_found": len(L.sections),
            "max_rel_err": max(errs) if errs else None, "silent": silent, "flagged_bad": flagged_bad, "unfit": unfit,
            "unit_ok": int(a.unit == truth.sections[0].unit), "flagged": a.flagged,
            "t_layout": a.t_layout, "t_ocr": a.t_ocr}


def compare_ocr(sheets, readers=("digits", "tesseract")) -> dict:
    """Both engines on the same found label boxes: accuracy against truth and ms per label."""
    out = {}
    for name in readers:
        try:
            read = get_reader(name)
            if name == "tesseract":
                import pytesseract

                pytesseract.get_tesseract_version()
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        n = ok = 0
        t = 0.0
        for sheet, a in sheets:
            boxes = a.layout.labels
            t0 = time.perf_counter()
            texts = read_labels(sheet.image, [(b.x0, b.y0, b.x1, b.y1, b.rotated) for b in boxes], read)
            t += time.perf_counter() - t0
            for b, (text, _) in zip(boxes, texts):
                truth = [lab for lab in sheet.truth.labels if abs(lab.row - b.row) <= ROW_TOL]
                if truth:
                    n += 1
                    ok += text == truth[0].text
        out[name] = {"labels": n, "accuracy": ok / max(n, 1), "ms_per_label": 1000 * t / max(n, 1),
                     "note": "rotated labels are read both ways (twice the calls)"}
    return out


def run(n: int, seed: int, config: SheetConfig, compare: bool, reader: str) -> dict:
    sheets = [render_sheet(seed, i, config) for i in range(n)]
    rows, analyses = [], []
    for s in sheets:
        a = analyse_sheet(s.image, reader=reader)
        analyses.append((s, a))
        rows.append(score(s.truth, a))
    tot = lambda k: sum(r[k] for r in rows)  # noqa: E731
    errs = [r["max_rel_err"] for r in rows if r["max_rel_err"] is not None]
    res = {
        "sheets": n, "seed": seed, "size": f"{config.width} x {config.height} px",
        "bitonal": sum(s.truth.bitonal for s in sheets), "rotated_labels": sum(
            bool(s.truth.labels and s.truth.labels[0].rotated) for s in sheets),
        "two_sections": sum(len(s.truth.sections) > 1 for s in sheets),
        "tracks_found": tot("tracks_ok") / tot("tracks"), "depth_column_found": tot("dcol_ok") / n,
        "labels_read": tot("labels_ok") / tot("labels"),
        "sections_fitted": 1 - tot("unfit") / tot("sections"),
        "depth_err_rel_max": max(errs) if errs else None,
        "depth_err_rel_median": float(np.median(errs)) if errs else None,
        "fits_within_target": sum(e <= TARGET_REL for e in errs) / max(len(errs), 1),
        "silent_miscalibrations": tot("silent"), "unit_correct": tot("unit_ok") / n,
        "flagged_sheets": sum(r["flagged"] for r in rows),
        "layout_s_per_sheet": float(np.mean([r["t_layout"] for r in rows])),
        "ocr_s_per_sheet": float(np.mean([r["t_ocr"] for r in rows])),
        "total_s_per_sheet_max": float(max(r["t_layout"] + r["t_ocr"] for r in rows)),
    }
    if compare:
        res["ocr_compare"] = compare_ocr(analyses)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--reader", default="digits+tesseract", help="digits | tesseract | digits+tesseract")
    p.add_argument("--no-compare", action="store_true")
    p.add_argument("--no-300dpi", action="store_true")
    p.add_argument("--n300", type=int, default=3)
    p.add_argument("--smoke-test", action="store_true")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # "per core": one thread
    import cv2

    cv2.setNumThreads(1)
    if args.smoke_test:
        small = SheetConfig(width=(700, 800), height=(1800, 2200))
        res = {"smoke": run(2, 0, small, compare=False, reader="digits")}  # seconds: no Tesseract
        assert res["smoke"]["tracks_found"] > 0, res
    else:
        res = {"150dpi": run(args.n, args.seed, SheetConfig(), not args.no_compare, args.reader)}
        if not args.no_300dpi:
            res["300dpi"] = run(args.n300, args.seed + 1, DPI300, False, args.reader)
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
