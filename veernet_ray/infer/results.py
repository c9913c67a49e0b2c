"""What a `veernet infer` run leaves besides the LAS files: the tables, the summary and its MLflow run.

The dataset graph (`pipeline`) hands over one row per scan; here they are merged with
earlier runs' rows into `qc.parquet` (one row per scan and curve, the QC signals of
`trace.qc`, `flagged` and a readable `reason`) and `errors.parquet` (one row per input
that could not be digitised), counted into the run summary, written to
`.veernet/last_summary.json` and logged to MLflow (through `veernet_ray.tracking`).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from veernet_ray import tracking
from veernet_ray.infer.listing import STATE_DIR, Listing, error_row, qc_record_path, read_qc_record
from veernet_ray.io import atomic_path

# pandas and pyarrow are imported where the tables are read and written: the CLI imports this
# module at start-up (through `pipeline`), and `veernet infer --help` should not pay for them.

#: qc_* are the signals of trace.qc (class margin, pen contrast, shared ink, ink support and its contrast against
#: the ink beside the trace, grid share, jumps, wrap cycles spanned, share on the backup scale, spread)
QC_SIGNALS = ["qc_margin", "qc_pen", "qc_shared", "qc_ink", "qc_ink_contrast", "qc_grid", "qc_jumps", "qc_cycles",
              "qc_backup", "qc_spread"]
QC_COLUMNS = ["scan_id", "curve", "class_id", "coverage", "mean_confidence", *QC_SIGNALS, "flagged", "reason",
              "path", "las"]
ERROR_COLUMNS = ["path", "id", "kind", "message", "stage", "status"]


def merge_tables(output: Path, listing: Listing, rows: list[dict], facts: dict) -> dict[str, Any]:
    """Merge this run's rows with earlier runs' into qc.parquet and errors.parquet; the run's counts."""
    import pandas as pd

    listed_ids = {it.id for it in listing.items} | {it.id for it in listing.complete}
    listed_paths = {it.path for it in listing.items} | {it.path for it in listing.complete} | {
        e["path"] for e in listing.errors}
    qc_path, err_path = output / "qc.parquet", output / "errors.parquet"
    old_qc = _read(qc_path, QC_COLUMNS)
    old_err = _read(err_path, ERROR_COLUMNS)

    qc_new: list[dict] = []
    errors = list(listing.errors)
    done = skipped = flagged = 0
    for r in rows:
        if r["status"] == "done":
            done += 1
            q = json.loads(r["qc"])
            qc_new += q
            flagged += any(x["flagged"] for x in q)
        else:
            if r["status"] == "skipped":
                skipped += 1
            errors.append(error_row(r["path"], r["id"], r["kind"], r["message"], r["stage"], r["status"]))
    old_by_scan = {sid: g for sid, g in old_qc.groupby("scan_id")} if len(old_qc) else {}
    for it in listing.complete:  # kept from an earlier run: the old rows, else the scan's QC record
        if it.id in old_by_scan:
            qc_new += old_by_scan[it.id].to_dict("records")
        else:
            record = read_qc_record(qc_record_path(output, it.id))
            qc_new += record["rows"] if record else []
    keep_qc = old_qc[~old_qc["scan_id"].isin(listed_ids)] if len(old_qc) else old_qc
    qc = pd.concat([keep_qc, pd.DataFrame(qc_new, columns=QC_COLUMNS)], ignore_index=True)
    keep_err = old_err[~old_err["path"].isin(listed_paths)] if len(old_err) else old_err
    err = pd.concat([keep_err, pd.DataFrame(errors, columns=ERROR_COLUMNS)], ignore_index=True)
    qc = _typed(qc.sort_values(["scan_id", "class_id"], kind="stable"), QC_COLUMNS)
    err = _typed(err.sort_values(["path", "id"], kind="stable"), ERROR_COLUMNS)
    _write_if_changed(qc, qc_path)
    _write_if_changed(err, err_path)

    n_err = sum(1 for e in errors if e["status"] == "error")
    complete = len(listing.complete)
    succeeded = done + complete
    exit_code = 0 if succeeded > 0 or n_err == 0 else 1
    return {
        "scans": len(listing.items) + complete + len(listing.errors),
        "done": done, "complete": complete, "skipped": skipped, "errors": n_err, "flagged": flagged,
        "other_model": listing.other_model, "other_options": listing.other_options,
        "curves_flagged": int(sum(1 for q in qc_new if q["flagged"])),
        "model_batches": int(sum(int(r.get("n_forward") or 0) for r in rows)),
        "error_kinds": _counts(e["kind"] for e in errors if e["status"] == "error"),
        "output": str(output), "qc_parquet": str(qc_path), "errors_parquet": str(err_path),
        "overlays_dir": str(output / "overlays"), "overlays": sorted(r["overlay"] for r in rows if r.get("overlay")),
        "las_files": sorted(r["las_out"] for r in rows if r["status"] == "done"),
        "t_decode_s": float(sum(r.get("t_decode") or 0 for r in rows)),
        "t_model_s": float(sum(r.get("t_model") or 0 for r in rows)),
        "t_write_s": float(sum(r.get("t_write") or 0 for r in rows)),
        "exit_code": exit_code, **facts,
    }


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _read(path: Path, columns: list[str]):
    import pandas as pd
    import pyarrow

    if path.is_file():
        try:
            df = pd.read_parquet(path)
            if set(columns) <= set(df.columns):
                return df[columns]
        except (OSError, ValueError, pyarrow.ArrowException):
            pass  # a damaged table from a killed run: rebuilt from this run and the QC records
    return pd.DataFrame(columns=columns)


def _typed(df, columns: list[str]):
    df = df[columns].reset_index(drop=True)
    for c in columns:
        if c in ("coverage", "mean_confidence", *QC_SIGNALS):
            df[c] = df[c].astype("float64")
        elif c == "class_id":
            df[c] = df[c].astype("int64")
        elif c == "flagged":
            df[c] = df[c].astype("bool")
        else:
            df[c] = df[c].astype("string")
    return df


def _write_if_changed(df, path: Path) -> bool:
    """Write a parquet table atomically, and only when its content changed (idempotent re-runs)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    data = buf.getvalue()
    if path.is_file() and path.read_bytes() == data:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


def write_summary(output: Path, summary: dict[str, Any]) -> None:
    slim = {k: v for k, v in summary.items() if k not in ("las_files", "overlays")}
    with atomic_path(output / STATE_DIR / "last_summary.json") as tmp:
        tmp.write_text(json.dumps(slim, indent=1, default=str) + "\n", encoding="utf-8")


def log_run(opts, output: Path, summary: dict[str, Any]) -> tuple[str | None, str]:
    """One MLflow run per invocation: checkpoint, counts, scans/s, qc.parquet and errors.parquet."""
    state = output / STATE_DIR
    uri = tracking.resolve_tracking_uri(opts.tracking_uri, state)
    exp = tracking.ensure_experiment(uri, opts.experiment, state)
    run_id, _ = tracking.get_or_create_run(uri, exp, f"infer-{output.name}", resume=False,
                                           tags={"veernet.stage": "infer"})
    params = {k: v for k, v in asdict(opts).items() if k not in ("progress", "verbose", "tracking")}
    params.update(checkpoint_hash=summary["checkpoint_hash"], model_name=summary["model_name"],
                  checkpoint_resolved=summary["ckpt_path"], device=summary.get("device", "none"),
                  model_actors=summary.get("model_actors"))
    tracking.log_params(uri, run_id, params)
    keys = ("scans", "done", "complete", "skipped", "errors", "flagged", "curves_flagged", "model_batches",
            "other_model", "other_options",
            "scans_per_s", "wall_s", "pipeline_s", "ray_init_s")
    tracking.log_metrics(uri, run_id, {k: float(summary.get(k) or 0.0) for k in keys}, step=0)
    for name in ("qc.parquet", "errors.parquet"):
        tracking.log_artifact(uri, run_id, output / name)
    tracking.finish_run(uri, run_id, "FINISHED" if summary["exit_code"] == 0 else "FAILED")
    return run_id, uri


def format_summary(s: dict[str, Any]) -> str:
    """The human summary the CLI prints."""
    lines = [
        f"[veernet] infer: {s['done']} done, {s['complete']} already complete, {s['skipped']} skipped (blank), "
        f"{s['flagged']} flagged, {s['errors']} errors, of {s['scans']} scans; "
        f"{s['scans_per_s']:.2f} scans/s ({s['pipeline_s']:.1f} s pipeline, {s['wall_s']:.1f} s wall, "
        f"{s['model_batches']} model batches)",
        *([f"[veernet] redone: {s['other_model']} made by another model, {s['other_options']} with other "
           "calibration or options"] if s.get("other_model") or s.get("other_options") else []),
        f"[veernet] LAS files: {s['output']}/*.las",
        f"[veernet] QC: {s['qc_parquet']}  errors: {s['errors_parquet']}"
        + (f"  overlays: {s['overlays_dir']}/ ({len(s['overlays'])} new)" if s.get("overlays") else ""),
    ]
    if s.get("error_kinds"):
        lines.append("[veernet] error kinds: " + ", ".join(f"{k} x{v}" for k, v in s["error_kinds"].items()))
    if s.get("mlflow_run_id"):
        lines.append(f"[veernet] MLflow run {s['mlflow_run_id']} at {s['tracking_uri']}")
    return "\n".join(lines)
