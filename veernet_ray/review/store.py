"""The review state of one inference output folder, and the one place it is changed.

An action (accept, reject, redraw, swap, absent, undo) is applied under a lock
(a thread lock and an flock on `OUT/.veernet/review.lock`, so two servers on one
folder also take turns) and saved at once, each file atomically (temporary file,
then rename):

1. the LAS, rewritten with the edited values and ~P provenance (REVIEWED,
   REVIEW_TOOL, REVIEW_BY, REVIEW_AT, REVIEW_N and `<MNEMONIC>_REV` per curve);
2. `reviews.parquet`, one more row (who, when, what, the LAS rows before and
   after); rows are only ever added;
3. `qc.parquet`: the curve's `review` status, `reviewed_by`, `reviewed_at`, and
   coverage and mean confidence recomputed from the edited LAS.

Versioning is optimistic and per scan: a scan's version is the number of review
rows it has. A request names the version its page was drawn from; a request
from a stale page (another tab saved in between) is refused with StaleError
and changes nothing, so no edit is lost silently.

Statuses: "" (not reviewed), "accepted", "corrected" (redrawn, swapped or
marked absent somewhere), "rejected" (every value NULL). `flagged` and
`reason` in qc.parquet stay QC's verdict on the model's trace; the curves left
for a person are the flagged ones with no status.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
import threading
from collections import OrderedDict
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from veernet_ray.io import atomic_path
from veernet_ray.review import edits
from veernet_ray.review.scan import (CONF_SUFFIX, Geometry, LasTable, ScanError, load_canonical_image,
                                     load_geometry, read_las_table, write_las_table)
from veernet_ray.trace.thresholds import reason_categories

REVIEWS_FILE = "reviews.parquet"
QC_FILE = "qc.parquet"
STATE_DIR = ".veernet"  # infer.listing.STATE_DIR
LOCK_FILE = "review.lock"
REVIEW_COLUMNS = ["review_id", "scan_id", "curve", "action", "who", "at", "version", "depth_from", "depth_to",
                  "points", "before", "after", "status_before", "status_after", "undoes"]
#: what each action does to the status of the curves it touches
ACTION_STATUS = {"accept": "accepted", "reject": "rejected", "redraw": "corrected", "swap": "corrected",
                 "absent": "corrected"}
ACTIONS = (*ACTION_STATUS, "undo")
STATUSES = ("", "accepted", "corrected", "rejected")
#: most points one redraw may carry (a whole 12,800-column scan clicked every 20 columns is 640)
MAX_POINTS = 2000
#: scans whose decoded pixels stay in memory (a 12,800 x 640 scan is 8 MB; its ink map 33 MB)
IMAGE_CACHE = 4
_WHO_BAD = re.compile(r"[^\w .@-]")


class ReviewError(ValueError):
    """A request that cannot be done; `status` is the HTTP status the server answers with."""

    status = 400


class NotFound(ReviewError):
    status = 404


class StaleError(ReviewError):
    status = 409


def clean_who(who: object) -> str:
    """A reviewer name fit for a LAS header and a table: letters, digits, space . @ - _, at most 64 characters."""
    text = _WHO_BAD.sub("_", str(who or "").strip())[:64].strip()
    return text or "unknown"


def severity(row: dict) -> float:
    """Worst first: the number of failed QC checks, then how little of the curve is there and how sure."""
    n = len(reason_categories(row.get("reason", "")))
    cov = float(row.get("coverage") or 0.0)
    conf = float(row.get("mean_confidence") or 0.0)
    return n + (1.0 - cov * conf)


class ReviewStore:
    """The review state of one `veernet infer` output folder (see the module docstring)."""

    def __init__(self, out: str | Path, reviewer: str = "unknown"):
        self.out = Path(out).expanduser().resolve()
        if not self.out.is_dir():
            raise ReviewError(f"{out}: no such folder; give the --output folder of `veernet infer`")
        self.qc_path = self.out / QC_FILE
        if not self.qc_path.is_file():
            raise ReviewError(f"{self.out} holds no {QC_FILE}; run `veernet infer --input SCANS --output {out}` first")
        self.reviews_path = self.out / REVIEWS_FILE
        self.reviewer = clean_who(reviewer)
        self._lock = threading.RLock()
        self._images: OrderedDict[str, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._orientations: dict[str, str] = {}
        self._image_lock = threading.Lock()
        self.listeners: list[Any] = []  # callables(counts) run after each saved action (MLflow logging)
        self._load_qc()

    # ------------------------------------------------------------ reading
    def _load_qc(self) -> None:
        try:
            qc = pd.read_parquet(self.qc_path)
        except Exception as exc:
            raise ReviewError(f"{self.qc_path}: cannot read ({type(exc).__name__}: {exc})") from exc
        missing = [c for c in ("scan_id", "curve", "class_id", "flagged", "reason") if c not in qc.columns]
        if missing:
            raise ReviewError(f"{self.qc_path}: missing column(s) {missing}; was it written by `veernet infer`?")
        self.qc = qc

    def read_reviews(self) -> pd.DataFrame:
        if not self.reviews_path.is_file():
            return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in REVIEW_COLUMNS})
        try:
            return pd.read_parquet(self.reviews_path)
        except Exception as exc:
            raise ReviewError(f"{self.reviews_path}: cannot read ({type(exc).__name__}: {exc}); restore it from a "
                              "backup before reviewing further") from exc

    @staticmethod
    def statuses(reviews: pd.DataFrame) -> dict[tuple[str, str], str]:
        """(scan, curve) -> status, replaying status_after in order."""
        out: dict[tuple[str, str], str] = {}
        for scan_id, after in zip(reviews["scan_id"], reviews["status_after"]):
            for curve, status in json.loads(after or "{}").items():
                out[(scan_id, curve)] = status
        return out

    def scan_ids(self) -> set[str]:
        return set(self.qc["scan_id"].astype(str))

    def _check_scan(self, scan_id: object) -> str:
        sid = str(scan_id or "")
        if sid not in self.scan_ids():
            raise NotFound(f"unknown scan {sid[:80]!r}: it has no row in {QC_FILE}")
        return sid

    def las_path(self, scan_id: str) -> Path:
        """The scan's LAS: a file directly in the output folder, never anywhere else.

        qc.parquet records absolute LAS paths; only the file name is used, so a moved or
        copied output folder still works and no value in qc.parquet can point a write
        elsewhere. A name that is not a plain `*.las`, or a link out of the folder, is refused.
        """
        rows = self.qc[self.qc["scan_id"].astype(str) == scan_id]
        recorded = rows["las"].iloc[0] if "las" in rows.columns and len(rows) else None
        name = re.split(r"[\\/]", recorded)[-1] if isinstance(recorded, str) and recorded else f"{scan_id}.las"
        path = self.out / name
        if name in ("", ".", "..") or not name.lower().endswith(".las") or path.resolve().parent != self.out:
            raise ReviewError(f"the LAS of {scan_id!r} ({recorded!r} in {QC_FILE}) is not a .las file in {self.out}; "
                              "refusing to read or write it (re-run `veernet infer` to rebuild qc.parquet)")
        if not path.is_file():
            raise NotFound(f"the LAS of {scan_id!r} ({name}) is missing from {self.out}; re-run `veernet infer`")
        return path.resolve()

    def scan_path(self, scan_id: str) -> Path:
        rows = self.qc[self.qc["scan_id"].astype(str) == scan_id]
        if "path" not in rows.columns or not isinstance(rows["path"].iloc[0], str):
            raise ReviewError(f"{QC_FILE} does not say which scan {scan_id!r} came from (no 'path' column)")
        path = Path(rows["path"].iloc[0])
        if not path.is_file():
            raise NotFound(f"the scan of {scan_id!r} is gone: {path}; put it back to review this curve")
        return path

    def is_sheet(self, scan_id: str) -> bool:
        """Whole-sheet outputs (several tracks in one LAS, `--layout sheet`) are not reviewed here yet."""
        return (self.out / "layout" / f"{scan_id}.json").is_file()

    def _open(self, scan_id: str) -> tuple[LasTable, Geometry, str]:
        from veernet_ray.io import RasterError, read_header

        if self.is_sheet(scan_id):
            raise ReviewError(f"{scan_id!r} is a whole sheet (several tracks); review of sheets is not supported yet")
        table = read_las_table(self.las_path(scan_id))
        rows = self.qc[self.qc["scan_id"].astype(str) == scan_id]
        class_ids = dict(zip(rows["curve"].astype(str), rows["class_id"].astype(int)))
        path = self.scan_path(scan_id)
        try:
            header = read_header(path)
        except RasterError as exc:
            raise ScanError(str(exc)) from exc
        geometry, orientation = load_geometry(table, path, class_ids, (header.height, header.width))
        return table, geometry, orientation

    def image(self, scan_id: str, orientation: str, with_ink: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """The canonical scan (and its ink map when asked), cached for the last IMAGE_CACHE scans."""
        from veernet_ray.trace.ink import darkness

        # one loader at a time: the page asks for several tiles of a new scan at once, and each
        # would otherwise decode the scan itself
        with self._image_lock:
            img, ink = self._images.pop(scan_id, (None, None))
            if img is None:
                img = load_canonical_image(self.scan_path(scan_id), orientation)
            if with_ink and ink is None:
                ink = darkness(img)
            self._images[scan_id] = (img, ink)
            while len(self._images) > IMAGE_CACHE:
                self._images.popitem(last=False)
        return img, ink

    def _orientation(self, scan_id: str) -> str:
        """The scan's own orientation as inference read it (tiles need no LAS), cached."""
        with self._lock:
            if scan_id in self._orientations:
                return self._orientations[scan_id]
        _, _, orientation = self._open(scan_id)
        with self._lock:
            self._orientations[scan_id] = orientation
        return orientation

    # ------------------------------------------------------------ views
    def queue(self) -> dict[str, Any]:
        """Flagged (scan, curve) pairs, worst first, with their status; counts of what is left."""
        statuses = self.statuses(self.read_reviews())
        items = []
        for row in self.qc.to_dict("records"):
            sid, curve = str(row["scan_id"]), str(row["curve"])
            status = statuses.get((sid, curve), "")
            if not bool(row["flagged"]) and not status:
                continue
            item = {"scan_id": sid, "curve": curve, "class_id": int(row["class_id"]), "reason": str(row["reason"]),
                    "reasons": reason_categories(row["reason"]), "status": status, "score": severity(row),
                    "sheet": self.is_sheet(sid)}
            item.update({k: _num(v) for k, v in row.items() if k in ("coverage", "mean_confidence")
                         or str(k).startswith("qc_")})
            items.append(item)
        items.sort(key=lambda it: (-it["score"], it["scan_id"], it["class_id"]))
        return {"items": items, "counts": self.counts(statuses), "reviewer": self.reviewer, "output": str(self.out)}

    def counts(self, statuses: dict[tuple[str, str], str] | None = None) -> dict[str, int]:
        if statuses is None:
            statuses = self.statuses(self.read_reviews())
        flagged = {(str(s), str(c)) for s, c, f in zip(self.qc["scan_id"], self.qc["curve"], self.qc["flagged"]) if f}
        out = {"flagged": len(flagged), "left": sum(1 for k in flagged if not statuses.get(k))}
        for status in STATUSES[1:]:
            out[status] = sum(1 for s in statuses.values() if s == status)
        out["actions"] = int(len(self.read_reviews())) if self.reviews_path.is_file() else 0
        return out

    def scan_state(self, scan_id: object) -> dict[str, Any]:
        """Everything the page draws for one scan: geometry, curves (values, rows, confidence), statuses, version."""
        sid = self._check_scan(scan_id)
        with self._lock:
            table, geo, orientation = self._open(sid)
            reviews = self.read_reviews()
        statuses = self.statuses(reviews)
        version = int((reviews["scan_id"] == sid).sum())
        qc = {str(r["curve"]): r for r in self.qc[self.qc["scan_id"].astype(str) == sid].to_dict("records")}
        from veernet_ray.synth.preview import COLOURS  # the overlays' colours (BGR)

        curves = []
        for m in table.value_mnemonics():
            values = table.values(m)
            rows = geo.display_rows(m, geo.rows_of(m, values))
            cid = int(qc[m]["class_id"]) if m in qc else 0
            b, g, r = COLOURS.get(cid, (0, 160, 0))
            curves.append({
                "mnemonic": m, "unit": table.curves[table.index(m)].unit, "class_id": cid,
                "colour": f"rgb({r},{g},{b})", "status": statuses.get((sid, m), ""),
                "flagged": bool(qc[m]["flagged"]) if m in qc else False,
                "reason": str(qc[m]["reason"]) if m in qc else "", "axis": geo.axis_json(m),
                "values": _list(values, 6), "rows": _list(rows, 2), "conf": _list(table.conf(m), 3),
            })
        return {"scan_id": sid, "version": version, "width": geo.width, "height": geo.height,
                "depth_unit": table.depth_unit, "calibrated": geo.calibrated, "depth": _list(table.depth, 6),
                "cols": _list(geo.cols, 3), "curves": curves, "orientation": orientation,
                "reviewed_by": [str(w) for w in reviews.loc[reviews["scan_id"] == sid, "who"].unique()]}

    def tile(self, scan_id: object, x: int, level: int, width: int) -> bytes:
        """PNG of scan columns [x, x + width * level), shrunk `level` times along depth (rows kept)."""
        import cv2

        sid = self._check_scan(scan_id)
        orientation = self._orientation(sid)
        img, _ = self.image(sid, orientation)
        x = int(x)
        if not 0 <= x < img.shape[1]:
            raise NotFound(f"tile x={x} lies outside the scan (0..{img.shape[1] - 1})")
        strip = img[:, x : x + width * level]
        if level > 1:
            w = max(1, math.ceil(strip.shape[1] / level))
            # INTER_AREA averages: thin ink fades but stays; the page draws curves on top anyway
            strip = cv2.resize(strip, (w, strip.shape[0]), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".png", strip, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise ReviewError(f"cannot encode a tile of {sid!r}")
        return buf.tobytes()

    # ------------------------------------------------------------ actions
    @contextmanager
    def _locked(self):
        state = self.out / STATE_DIR
        state.mkdir(parents=True, exist_ok=True)
        with self._lock, open(state / LOCK_FILE, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """Apply one action and save it (see the module docstring); returns the scan's new state.

        request: scan_id, action (accept | reject | redraw | swap | absent | undo), version
        (the scan's version the page shows), curve (the curve acted on; swap: either of the
        two), who (optional; default the server's reviewer), and per action: redraw `points`
        [[col, row], ...] (snapped to the nearest ink here), swap/absent `from_col`, `to_col`.
        """
        if not isinstance(request, dict):
            raise ReviewError("the request body must be a JSON object")
        sid = self._check_scan(request.get("scan_id"))
        action = str(request.get("action", ""))
        if action not in ACTIONS:
            raise ReviewError(f"unknown action {action!r}; valid actions: {', '.join(ACTIONS)}")
        try:
            version = int(request["version"])
        except (KeyError, TypeError, ValueError):
            raise ReviewError("the request must carry the scan's version (an integer); reload the page") from None
        who = clean_who(request.get("who") or self.reviewer)
        with self._locked():
            reviews = self.read_reviews()
            mine = reviews[reviews["scan_id"] == sid]
            current = int(len(mine))
            if version != current:
                last = mine.iloc[-1] if len(mine) else None
                by = f" by {last['who']} ({last['action']} {last['curve']})" if last is not None else ""
                raise StaleError(f"{sid} changed since this page loaded it (version {current}, the page has "
                                 f"{version}): the last change was{by}. Nothing was saved; reload the scan and "
                                 "redo your edit on the latest version.")
            table, geo, orientation = self._open(sid)
            statuses = self.statuses(reviews)
            record = self._edit(sid, action, request, table, geo, orientation, mine, statuses)
            now = datetime.now(timezone.utc)
            record.update(review_id=int(reviews["review_id"].max()) + 1 if len(reviews) else 1, scan_id=sid,
                          action=action, who=who, at=pd.Timestamp(now), version=current + 1)
            after = {**statuses, **{(sid, c): s for c, s in json.loads(record["status_after"]).items()}}
            self._stamp(table, sid, who, now, current + 1, after)
            # 1. the LAS; 2. the review row; 3. qc.parquet (each atomic; see the module docstring)
            write_las_table(self.las_path(sid), table)
            row = pd.DataFrame([{c: record.get(c) for c in REVIEW_COLUMNS}])
            _write_parquet(pd.concat([reviews, row], ignore_index=True) if len(reviews) else row, self.reviews_path)
            self._update_qc(sid, table, after, who, now)
        counts = self.counts()
        for listener in list(self.listeners):
            listener(counts)
        return self.scan_state(sid)

    def _edit(self, sid: str, action: str, request: dict, table: LasTable, geo: Geometry, orientation: str,
              mine: pd.DataFrame, statuses: dict) -> dict[str, Any]:
        """Change `table` in place; returns the review row's fields that describe the change."""
        names = table.value_mnemonics()
        curve = str(request.get("curve", ""))
        if action == "undo":
            return self._undo(sid, table, mine)
        if curve not in names:
            raise ReviewError(f"{sid} has no curve {curve!r}; its curves: {', '.join(names)}")
        touched = [curve]
        rows = {m: geo.rows_of(m, table.values(m)) for m in names}
        conf = {m: table.conf(m) for m in names}
        new_rows, new_conf = dict(rows), dict(conf)
        idx = np.arange(0)
        d0 = d1 = math.nan
        points: list = []
        if action == "redraw":
            pts = request.get("points")
            if not isinstance(pts, list) or not 2 <= len(pts) <= MAX_POINTS:
                raise ReviewError(f"redraw needs 'points': a list of 2 to {MAX_POINTS} [col, row] pairs")
            try:
                raw = [(float(p[0]), float(p[1])) for p in pts]
            except (TypeError, ValueError, IndexError):
                raise ReviewError("redraw 'points' must be [col, row] number pairs") from None
            if not all(math.isfinite(v) for p in raw for v in p):
                raise ReviewError("redraw 'points' must be finite numbers")
            _, ink = self.image(sid, orientation, with_ink=True)
            points = [(c, edits.snap_to_ink(ink, c, r)) for c, r in raw]
            new_rows[curve], new_conf[curve], idx = edits.redraw(rows[curve], conf[curve], geo.cols, points)
        elif action in ("swap", "absent"):
            try:
                c0, c1 = float(request["from_col"]), float(request["to_col"])
            except (KeyError, TypeError, ValueError):
                raise ReviewError(f"{action} needs 'from_col' and 'to_col': the scan columns of the range") from None
            if not (math.isfinite(c0) and math.isfinite(c1)):
                raise ReviewError("from_col and to_col must be finite numbers")
            if action == "absent":
                new_rows[curve], new_conf[curve], idx = edits.mark_absent(rows[curve], conf[curve], geo.cols, c0, c1)
            else:
                others = [m for m in names if m != curve]
                if len(others) != 1:
                    raise ReviewError(f"swap needs exactly two curves on the scan; {sid} has {len(names)}")
                other = others[0]
                touched = [curve, other]
                (new_rows[curve], new_conf[curve], new_rows[other], new_conf[other],
                 idx) = edits.swap(rows[curve], conf[curve], rows[other], conf[other], geo.cols, c0, c1)
        elif action == "reject":
            new_rows[curve], new_conf[curve], idx = edits.reject(rows[curve], conf[curve])
        # accept: no values change
        if idx.size:
            d0, d1 = float(table.depth[idx].min()), float(table.depth[idx].max())
        lo, hi = (int(idx.min()), int(idx.max()) + 1) if idx.size else (0, 0)
        before = _slice_json(table, touched, lo, hi)
        for m in touched:
            if idx.size:
                values = table.values(m).copy()
                values[idx] = geo.values_of(m, new_rows[m][idx])
                table.set(m, np.where(np.isfinite(values), values, np.nan))
                if _has(table, m + CONF_SUFFIX):
                    c = table.conf(m).copy()
                    c[idx] = new_conf[m][idx]
                    table.set(m + CONF_SUFFIX, c)
        after = _slice_json(table, touched, lo, hi)
        return {"curve": "+".join(touched), "depth_from": d0, "depth_to": d1,
                "points": json.dumps([[round(c, 3), round(r, 3)] for c, r in points]),
                "before": before, "after": after,
                "status_before": json.dumps({m: statuses.get((sid, m), "") for m in touched}),
                "status_after": json.dumps({m: ACTION_STATUS[action] for m in touched}), "undoes": -1}

    def _undo(self, sid: str, table: LasTable, mine: pd.DataFrame) -> dict[str, Any]:
        """Undo the scan's latest action not yet undone (consecutive undos walk back)."""
        undone = set(int(u) for u in mine["undoes"] if int(u) >= 0)
        target = None
        for row in mine.iloc[::-1].to_dict("records"):
            if row["action"] != "undo" and int(row["review_id"]) not in undone:
                target = row
                break
        if target is None:
            raise ReviewError(f"nothing to undo on {sid}")
        saved = json.loads(target["before"])
        lo, hi = saved["rows"]
        if hi > table.depth.size:
            raise ReviewError(f"the LAS of {sid} no longer has the rows that action changed (was it digitised "
                              "again?); nothing to undo there")
        touched = list(saved["curves"])
        before = _slice_json(table, touched, lo, hi)
        for m, cols in saved["curves"].items():
            for name, vals in cols.items():
                if _has(table, name):
                    v = table.values(name).copy()
                    v[lo:hi] = np.array([np.nan if x is None else x for x in vals], dtype=np.float64)
                    table.set(name, v)
        return {"curve": target["curve"], "depth_from": target["depth_from"], "depth_to": target["depth_to"],
                "points": "[]", "before": before, "after": _slice_json(table, touched, lo, hi),
                "status_before": target["status_after"], "status_after": target["status_before"],
                "undoes": int(target["review_id"])}

    def _stamp(self, table: LasTable, sid: str, who: str, now: datetime, version: int, statuses: dict) -> None:
        """~P provenance: reviewed, with what, by whom, when, how many actions; each curve's status."""
        from veernet_ray import __version__

        mine = {c: s for (s_id, c), s in statuses.items() if s_id == sid}
        p = table.params
        p["REVIEWED"] = ("yes" if any(mine.values()) else "no", "", "curves checked by a person in veernet review")
        p["REVIEW_TOOL"] = (f"veernet review {__version__}", "", "reviewed with")
        p["REVIEW_BY"] = (who, "", "last reviewer")
        p["REVIEW_AT"] = (now.strftime("%Y%m%dT%H%M%SZ"), "", "last review UTC")
        p["REVIEW_N"] = (str(version), "", "review actions on this file (reviews.parquet)")
        for m in table.value_mnemonics():
            p[f"{m}_REV"] = (mine.get(m) or "none", "", f"review status of {m}")

    def _update_qc(self, sid: str, table: LasTable, statuses: dict, who: str, now: datetime) -> None:
        qc = self.qc.copy()
        for col, default in (("review", ""), ("reviewed_by", ""), ("reviewed_at", "")):
            if col not in qc.columns:
                qc[col] = default
            qc[col] = qc[col].fillna("").astype("string")
        for i in np.flatnonzero((qc["scan_id"].astype(str) == sid).to_numpy()):
            m = str(qc.at[i, "curve"])
            if not _has(table, m):
                continue
            values, conf = table.values(m), table.conf(m)
            have = np.isfinite(values)
            qc.at[i, "coverage"] = float(have.mean()) if have.size else 0.0
            qc.at[i, "mean_confidence"] = float(np.mean(conf[have])) if have.any() else 0.0
            status = statuses.get((sid, m), "")
            if status != qc.at[i, "review"]:
                qc.at[i, "review"] = status
                qc.at[i, "reviewed_by"] = who if status else ""
                qc.at[i, "reviewed_at"] = now.isoformat(timespec="seconds") if status else ""
        _write_parquet(qc, self.qc_path)
        self.qc = qc


# ------------------------------------------------------------------ helpers
def _has(table: LasTable, name: str) -> bool:
    return any(c.mnemonic == name for c in table.curves)


def _slice_json(table: LasTable, curves: list[str], lo: int, hi: int) -> str:
    """LAS rows [lo, hi) of the curves and their confidences, JSON (NULL as null)."""
    out: dict[str, dict[str, list]] = {}
    for m in curves:
        out[m] = {}
        for name in (m, m + CONF_SUFFIX):
            if _has(table, name):
                out[m][name] = [None if not np.isfinite(v) else float(v) for v in table.values(name)[lo:hi]]
    return json.dumps({"rows": [lo, hi], "curves": out})


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def _dtype(column: str) -> str:
    return {"review_id": "int64", "version": "int64", "undoes": "int64", "depth_from": "float64",
            "depth_to": "float64", "at": "datetime64[ns, UTC]"}.get(column, "object")


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _list(a: np.ndarray, decimals: int) -> list:
    """A JSON-able list with NaN as null, rounded (the page draws and reads these)."""
    a = np.round(np.asarray(a, dtype=np.float64), decimals)
    return [None if not math.isfinite(x) else x for x in a.tolist()]


__all__ = ["ACTIONS", "NotFound", "REVIEWS_FILE", "REVIEW_COLUMNS", "ReviewError", "ReviewStore", "StaleError",
           "clean_who", "reason_categories", "severity"]
