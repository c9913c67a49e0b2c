"""Sheets in `veernet infer`: the Ray Data CPU stages ahead of the model, and the per-sheet LAS after it.

    listing row -> prepare_rows (flat_map, CPU): read, layout, OCR, depth fit, one row per track crop
               -> ModelStage (unchanged: a track crop is a canonical strip with a sidecar)
               -> write_any (map, CPU): trace + calibrate each track, save its curves
               -> merge_sheets (driver): one LAS per sheet, every track's curves on one depth grid

Rows keep the strip row schema of `infer.stages` and add SHEET_FIELDS, with
defaults on strip rows, so strips and sheets can share one dataset (`--layout
auto`). A track row's id is `<sheet>__s<section>t<track>`; its `las_out` is
the sheet's LAS. Per-track curves go to OUTPUT/.veernet/tracks/<sheet>/ as
.npz (small: a few floats per depth row), not through the object store.

Nothing here raises for a bad sheet: no track -> an error row (kind
`no_track`); labels missing, unreadable or contradictory -> the sheet is
digitised with DEPT in sheet rows (unit PX), flagged in QC and in
OUTPUT/layout/<ID>.json, with an overlay PNG beside it (tracks, labels, depth fit).
The traced curves are drawn on the whole sheet in OUTPUT/overlays/<ID>.png (as
`--overlays` asks: every sheet, flagged ones, or none).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from veernet_ray.infer.stages import _EMPTY_IMAGE, _EMPTY_PROBS, blank_reason, decode_row, write_row
from veernet_ray.io import RasterError, atomic_path, read_image
from veernet_ray.las.sidecar import Sidecar, to_canonical_image
from veernet_ray.trace.thresholds import QC_DEFAULTS

LAYOUT_DIR = "layout"
TRACK_DIR = "tracks"
MODES = ("auto", "sheet", "strip")
#: `--layout auto` looks for a layout only in scans at least this many px across the value axis:
#: a single-track strip is 480-640 px, a sheet of 2+ tracks and a depth column 1,000+
SHEET_MIN_ACROSS = 800
SHEET_FIELDS = {"sheet_id": "", "section": 0, "track": 0, "crop": "", "t_layout": 0.0}


def _with_defaults(row: dict) -> dict:
    for k, v in SHEET_FIELDS.items():
        row.setdefault(k, v)
    return row


def layout_json_path(output: str | Path, sheet_id: str) -> Path:
    return Path(output) / LAYOUT_DIR / f"{sheet_id}.json"


def prepare_rows(row: dict[str, Any], *, mode: str, output: str, scales: dict | None = None,
                 reader: str = "digits+tesseract",
                 depth_unit: str | None = None, overlays: str = "flagged") -> list[dict[str, Any]]:
    """One listing row -> [a decoded strip row] or [one row per (section, track) crop of a sheet]."""
    from veernet_ray.layout.sheet import analyse_sheet, to_portrait, write_overlay

    across = min(int(row["orig_height"]), int(row["orig_width"]))
    if mode == "strip" or (mode == "auto" and (row["sidecar_json"] or across < SHEET_MIN_ACROSS)):
        return [_with_defaults(decode_row(row))]
    t0 = time.perf_counter()
    base = dict(row, status="ok", kind="", message="", stage="", image=_EMPTY_IMAGE, probs=_EMPTY_PROBS,
                n_forward=0, t_decode=0.0, t_model=0.0, t_write=0.0, **SHEET_FIELDS)
    try:
        raw = read_image(row["path"])
        analysis = analyse_sheet(raw, reader=reader, depth_unit=depth_unit)
    except RasterError as exc:
        return [dict(base, status="error", kind=exc.kind, message=str(exc), stage="layout")]
    except MemoryError:
        return [dict(base, status="error", kind="out_of_memory", message="not enough host memory for layout; "
                     "lower --max-pixels or give layout tasks more memory", stage="layout")]
    except Exception as exc:  # a layout bug on one sheet must not stop the archive
        return [dict(base, status="error", kind="layout_failed", message=f"{type(exc).__name__}: {exc}",
                     stage="layout")]
    if mode == "auto" and not analysis.is_sheet:
        image = to_canonical_image(raw, row["orientation"])
        reason = blank_reason(image)
        if reason:
            return [dict(base, status="skipped", kind="blank", message=reason, stage="decode")]
        return [dict(base, image=image, t_decode=time.perf_counter() - t0)]
    sid = row["id"]
    record = analysis.to_dict(id=sid, path=row["path"])
    image, _ = to_portrait(raw)
    own = Path(row["path"]).with_suffix(".scales.json")
    sheet_scales = scales
    if own.is_file():  # a per-sheet scales file beside the scan wins over the archive's
        from veernet_ray.layout.sheet import ScalesError, load_scales

        try:
            sheet_scales = load_scales(own)
        except ScalesError as exc:
            return [dict(base, status="error", kind="bad_scales", message=f"{exc}; fix or remove {own.name}",
                         stage="layout")]
    try:
        if overlays == "all" or (overlays != "none" and analysis.flagged) or not analysis.layout.tracks:
            record["overlay"] = str(write_overlay(Path(output) / LAYOUT_DIR / f"{sid}.png", raw, analysis))
        tracks_rec = []
        for si, ti, (r0, r1, c0, c1) in analysis.track_crops():
            tracks_rec.append({"section": si + 1, "track": ti + 1, "rows": [r0, r1], "columns": [c0, c1],
                               "sidecar": analysis.track_sidecar(si, ti, sheet_scales)})
        record["tracks"] = tracks_rec
        with atomic_path(layout_json_path(output, sid)) as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=float) + "\n", encoding="utf-8")
    except OSError as exc:
        return [dict(base, status="error", kind="write_failed", message=f"layout record: {exc}", stage="layout")]
    if not analysis.layout.tracks:
        why = "; ".join(analysis.reasons) or "no track borders"
        return [dict(base, status="error", kind="no_track", message=f"layout found no track ({why}); see "
                     f"{LAYOUT_DIR}/{sid}.png, or run with --layout strip if this is a single-track strip",
                     stage="layout")]
    t_layout = time.perf_counter() - t0
    out = []
    for rec in tracks_rec:
        r0, r1 = rec["rows"]
        c0, c1 = rec["columns"]
        crop = np.ascontiguousarray(image[r0 : r1 + 1, c0:c1])
        canon = np.ascontiguousarray(np.rot90(crop, 1))
        tid = f"{sid}__s{rec['section']}t{rec['track']}"
        r = dict(base, id=tid, sheet_id=sid, section=rec["section"], track=rec["track"],
                 crop=json.dumps([r0, r1, c0, c1]), orientation="depth_along_height",
                 orig_height=int(crop.shape[0]), orig_width=int(crop.shape[1]),
                 height=int(canon.shape[0]), width=int(canon.shape[1]),
                 sidecar_json=json.dumps(rec["sidecar"]) if rec["sidecar"] else "", t_layout=t_layout / len(tracks_rec))
        reason = blank_reason(canon)
        if reason:
            r.update(status="skipped", kind="blank_track", message=reason, stage="layout")
        else:
            r["image"] = canon
        out.append(r)
    return out


def write_any(row: dict[str, Any], *, provenance: dict[str, Any], output: str, min_coverage: float = QC_DEFAULTS.min_coverage,
              min_confidence: float = QC_DEFAULTS.min_confidence, overlays: str = "flagged") -> dict[str, Any]:
    """Strip rows: `infer.stages.write_row`. Track rows: trace and calibrate, save the curves for the merge."""
    if not row.get("sheet_id"):
        out = write_row(row, provenance=provenance, output=output, min_coverage=min_coverage,
                        min_confidence=min_confidence, overlays=overlays)
        out.update(sheet_id="", section=0, track=0, curves="", t_layout=0.0)
        return out
    from veernet_ray.las.export import build_output
    from veernet_ray.trace.decode import decode
    from veernet_ray.trace.qc import curve_signals

    t0 = time.perf_counter()
    out = {k: row[k] for k in ("id", "path", "las_out", "status", "kind", "message", "stage", "n_forward",
                               "t_decode", "t_model", "sheet_id", "section", "track", "t_layout")}
    out.update(qc="", flagged=False, overlay="", curves="", t_write=0.0)
    if row["status"] != "ok":
        return out
    try:
        probs = np.asarray(row["probs"])  # uint8 p * 255, read as it is (as `infer.stages.write_row` does)
        h, w = int(row["height"]), int(row["width"])
        sidecar = None
        if row["sidecar_json"]:
            sidecar = Sidecar.from_dict(json.loads(row["sidecar_json"]), source=row["id"])
            sidecar = sidecar.canonical((int(row["orig_height"]), int(row["orig_width"])))
        class_ids = tuple(range(1, probs.shape[0]))
        trace = decode(probs, class_ids)
        log = build_output(trace, image_shape=(h, w), sidecar=sidecar)
        r0, r1, c0, c1 = json.loads(row["crop"])
        canon = row.get("image")  # the track's pixels, carried on from layout by the model stage
        if not (isinstance(canon, np.ndarray) and canon.shape == (h, w)):  # else the sheet decoded again
            image = read_image(row["path"])
            if image.shape[1] > 1.5 * image.shape[0]:
                image = np.rot90(image, -1)
            canon = np.ascontiguousarray(np.rot90(image[r0 : r1 + 1, c0:c1], 1))
        signals = curve_signals(trace.rows, trace.confidence, trace.class_ids, probs, canon, None, page=trace.page)
        order = [trace.class_ids.index(c.class_id) for c in log.curves]
        path = Path(output) / ".veernet" / TRACK_DIR / row["sheet_id"] / f"{row['id']}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"depth": log.depth if log.calibrated else log.depth + r0}  # uncalibrated: sheet rows
        meta = []
        for k, c in enumerate(log.curves):
            arrays[f"v{k}"] = c.values
            arrays[f"c{k}"] = c.confidence
            arrays[f"p{k}"] = trace.page[order[k]]  # rows of the track's canonical crop: the sheet overlay
            meta.append({"class_id": c.class_id, "mnemonic": c.mnemonic, "unit": c.unit, "descr": c.descr,
                         "signals": signals[order[k]]})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        out.update(status="done", curves=json.dumps({"npz": str(path), "unit": log.depth_unit, "crop": [r0, r1, c0, c1],
                                                     "calibrated": log.calibrated, "curves": meta}, default=float))
    except OSError as exc:
        out.update(status="error", kind="write_failed", message=f"{type(exc).__name__}: {exc}", stage="write")
    except Exception as exc:
        out.update(status="error", kind="digitise_failed", message=f"{type(exc).__name__}: {exc}", stage="write")
    out["t_write"] = time.perf_counter() - t0
    return out


def merge_sheets(rows: list[dict[str, Any]], *, output: str, provenance: dict[str, Any], min_coverage: float = QC_DEFAULTS.min_coverage,
                 min_confidence: float = QC_DEFAULTS.min_confidence, overlays: str = "flagged") -> list[dict[str, Any]]:
    """Replace each sheet's track rows with one sheet row (its LAS written) plus error rows for failed tracks.

    Strip rows pass through. Shape of a sheet row: that of `infer.stages.write_row`'s output. A sheet's
    traced curves are drawn on it in OUTPUT/overlays/<ID>.png when `overlays` is "all", or "flagged"
    and QC flagged one of its curves (the row's `overlay`; else the layout overlay, if one was drawn).
    """
    from veernet_ray.infer.listing import qc_record_path

    by_sheet: dict[str, list[dict]] = {}
    out = []
    for r in rows:
        if r.get("sheet_id"):
            by_sheet.setdefault(r["sheet_id"], []).append(r)
        else:
            out.append(r)
    for sid, tracks in sorted(by_sheet.items()):
        done = [t for t in tracks if t["status"] == "done"]
        out += [t for t in tracks if t["status"] == "error"]
        head = {k: tracks[0][k] for k in ("path", "las_out")}
        sheet = dict(id=sid, **head, status="done", kind="", message="", stage="", qc="", flagged=False, overlay="",
                     n_forward=int(sum(int(t.get("n_forward") or 0) for t in tracks)),
                     t_decode=float(sum(t.get("t_layout") or 0 for t in tracks)),
                     t_model=float(sum(t.get("t_model") or 0 for t in tracks)),
                     t_write=float(sum(t.get("t_write") or 0 for t in tracks)))
        if not done:
            kinds = sorted({t["kind"] for t in tracks})
            sheet.update(status="error" if any(t["status"] == "error" for t in tracks) else "skipped",
                         kind="no_track_digitised", stage="merge",
                         message=f"no track of the sheet was digitised ({', '.join(kinds)})")
            out.append(sheet)
            continue
        try:
            record = json.loads(layout_json_path(output, sid).read_text(encoding="utf-8"))
            qc = write_sheet_las(sid, done, record, provenance, min_coverage=min_coverage,
                                 min_confidence=min_confidence)
            with atomic_path(qc_record_path(Path(output), sid)) as tmp:
                tmp.write_text(json.dumps(qc), encoding="utf-8")
            flagged = any(q["flagged"] for q in qc)
            overlay = record.get("overlay", "")
            if overlays == "all" or (overlays == "flagged" and flagged):
                try:  # the LAS is written: a picture that cannot be drawn is said, not an error of the sheet
                    overlay = str(write_sheet_overlay(Path(output) / "overlays" / f"{sid}.png", record, done))
                except (OSError, ValueError, KeyError) as exc:
                    sheet["message"] = f"curve overlay not drawn: {type(exc).__name__}: {exc}"
            sheet.update(qc=json.dumps(qc), flagged=flagged, overlay=overlay)
        except Exception as exc:
            sheet.update(status="error", kind="merge_failed", message=f"{type(exc).__name__}: {exc}", stage="merge")
        out.append(sheet)
    return out


#: colours of the traced curves on a sheet overlay (RGB), by class: curve 1 red, curve 2 blue
TRACE_RGB = {1: (220, 20, 20), 2: (20, 70, 235)}


def draw_sheet_traces(portrait: np.ndarray, tracks: list[tuple[tuple[int, int, int, int], dict[int, np.ndarray]]]) -> np.ndarray:
    """The sheet (H, W) uint8, portrait as its layout read it, lightened, with each track's box (green) and
    traced curves drawn 3 px wide; (H, W, 3) uint8 RGB.

    tracks: (crop, {class_id: page rows}) per track. crop = (r0, r1, c0, c1) as the layout cut it
    (rows r0..r1, columns c0..c1-1); page rows are rows of the crop's canonical strip
    `rot90(crop, 1)`, one per crop row (NaN: no value), so canonical (row i, column j) lies at sheet
    (r0 + j, c1 - 1 - i).
    """
    h, w = portrait.shape
    rgb = np.repeat((portrait.astype(np.float32) * 0.45 + 140).astype(np.uint8)[:, :, None], 3, axis=2)
    for (r0, r1, c0, c1), curves in tracks:
        rgb[r0 : r1 + 1, [c0, max(c0, c1 - 1)]] = (0, 170, 0)
        rgb[[r0, r1], c0:c1] = (0, 170, 0)
        for cid, page in curves.items():
            page = np.asarray(page, dtype=np.float64)
            j = np.flatnonzero(np.isfinite(page))
            rows = r0 + j
            cols = c1 - 1 - np.round(page[j]).astype(np.int64)
            colour = TRACE_RGB.get(int(cid), (230, 140, 0))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = rows + dr, cols + dc
                    ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
                    rgb[rr[ok], cc[ok]] = colour
    return rgb


def write_sheet_overlay(path: str | Path, record: dict[str, Any], tracks: list[dict[str, Any]]) -> Path:
    """OUTPUT/overlays/<ID>.png: the sheet with every digitised track's curves on it (`draw_sheet_traces`)."""
    from veernet_ray.layout.sheet import to_portrait, write_rgb_png

    portrait, _ = to_portrait(read_image(record["path"]))
    drawn = []
    for t in tracks:
        info = json.loads(t["curves"])
        with np.load(info["npz"]) as z:
            curves = {c["class_id"]: z[f"p{k}"] for k, c in enumerate(info["curves"]) if f"p{k}" in z}
        drawn.append((tuple(int(v) for v in info["crop"]), curves))
    return write_rgb_png(path, draw_sheet_traces(portrait, drawn), compression=6)


def write_sheet_las(sid: str, tracks: list[dict], record: dict, provenance: dict, *, min_coverage: float,
                    min_confidence: float) -> list[dict]:
    """One LAS for a sheet: DEPT on one grid, a column per (track, curve[, section]); returns its QC rows.

    All sections calibrated: DEPT in the sheet's unit on the first section's pixel pitch, from the
    shallowest to the deepest depth any section covers; a curve is NULL outside its own section.
    Any section without a depth fit: DEPT is the sheet's row (PX) for every track, and ~P says why.
    """
    from veernet_ray.las.export import CALIB_PARAM, CurveOutput, DigitisedLog, qc_rows, write_digitised_las
    from veernet_ray.las.lasfile import unique_mnemonics

    tracks = sorted(tracks, key=lambda t: (t["section"], t["track"]))
    infos = [json.loads(t["curves"]) for t in tracks]
    calibrated = all(i["calibrated"] for i in infos) and all(s["fit"]["ok"] for s in record["sections"])
    loaded = []
    for t, info in zip(tracks, infos):
        with np.load(info["npz"]) as z:
            depth = z["depth"] if calibrated or not info["calibrated"] else None
            if depth is None:  # this track was calibrated but a sibling section was not: back to sheet rows
                depth = _rows_of(record, t)
            loaded.append((t, info, depth, [(z[f"v{k}"], z[f"c{k}"]) for k in range(len(info["curves"]))]))
    if calibrated:
        step = float(record["sections"][0]["fit"]["b"])
        lo = min(float(d[0]) for _, _, d, _ in loaded)
        hi = max(float(d[-1]) for _, _, d, _ in loaded)
        grid = lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)) + 1)
        unit, params = infos[0]["unit"], {"CALIB": ("LAYOUT", "", f"depth from printed labels, unit from "
                                                                 f"{record['unit_source']}")}
    else:
        lo = min(float(d[0]) for _, _, d, _ in loaded)
        hi = max(float(d[-1]) for _, _, d, _ in loaded)
        grid = np.arange(int(round(lo)), int(round(hi)) + 1, dtype=np.float64)
        unit, params = "PX", {"CALIB": CALIB_PARAM[:2] + ("uncalibrated: DEPT is the sheet row; depth labels "
                                                          "could not be fitted (see layout JSON)",)}
    names = unique_mnemonics([f"T{t['track']}_{m['mnemonic']}" + (f"_S{t['section']}" if t["section"] > 1 else "")
                              for t, info, _, _ in loaded for m in info["curves"]], reserved=("DEPT",))
    curves, signals, k = [], [], 0
    for t, info, depth, series in loaded:
        for m, (vals, conf) in zip(info["curves"], series):
            v = np.interp(grid, depth, vals, left=np.nan, right=np.nan)
            # a NULL neighbour makes the interpolated point NULL (never a value bridged across a gap)
            nan_near = np.interp(grid, depth, np.isnan(vals).astype(float), left=1, right=1) > 0
            v[nan_near] = np.nan
            c = np.interp(grid, depth, np.nan_to_num(conf), left=0.0, right=0.0)
            curves.append(CurveOutput(m["class_id"], names[k], m["unit"], v, np.clip(c, 0, 1),
                                      f"track {t['track']} section {t['section']}: {m['descr']}"))
            signals.append(m["signals"])
            k += 1
    log = DigitisedLog(grid, unit, tuple(curves), calibrated, params)
    write_digitised_las(tracks[0]["las_out"], log, provenance)
    qc = qc_rows(sid, log, min_coverage=min_coverage, min_mean_conf=min_confidence, signals=signals)
    for q, (t, info, depth, _) in zip(qc, [(t, i, d, s) for t, i, d, s in loaded for _ in i["curves"]]):
        # a curve covers only its own section: coverage is measured there, not over the whole grid
        inside = (grid >= depth[0]) & (grid <= depth[-1])
        v = log.curves[qc.index(q)].values[inside]
        q["coverage"] = float(np.isfinite(v).mean()) if v.size else 0.0
        reasons = [r for r in q["reason"].split("; ") if r and not r.startswith("low coverage")]
        if q["coverage"] < min_coverage:
            reasons.append(f"low coverage {q['coverage']:.2f} < {min_coverage:.2f}")
        if record["reasons"]:
            reasons.append("sheet: " + " | ".join(record["reasons"]))
        q.update(flagged=bool(reasons), reason="; ".join(reasons), path=t["path"], las=t["las_out"])
    return qc


def _rows_of(record: dict, t: dict) -> np.ndarray:
    for tr in record["tracks"]:
        if tr["section"] == t["section"] and tr["track"] == t["track"]:
            r0, r1 = tr["rows"]
            return np.arange(r0, r1 + 1, dtype=np.float64)
    raise KeyError(f"track {t['id']} is not in the layout record")
