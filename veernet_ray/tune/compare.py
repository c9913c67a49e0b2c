"""`veernet compare`: rank a sweep's child runs, plot quality against euros per tier, recommend one.

Reads only MLflow (the parent run and its children, by the tags `veernet tune`
writes), so it works on any sweep in any tracking server, while it runs or long
after. A CPU sweep's single run per variant appears once per tier it was priced
for; its euros are cost arithmetic on the CPU's wall clock, and say so.

Metrics are each child run's latest values (the last epoch it finished).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from veernet_ray.tune.pricing import CPU_BASIS
from veernet_ray.tune.trainable import (CPU_TIER, TAG_BASIS, TAG_KIND, TAG_LABEL, TAG_PRICED, TAG_STATUS, TAG_SWEEP,
                                        TAG_TIER)

PROG = "veernet compare"
DEFAULT_METRIC = "val_curve_r2_median"
LOWER_IS_BETTER = ("mae", "mse", "loss")  # a metric whose name holds one of these ranks ascending
TIE_BREAK = "val_miou_fg"


class CompareError(ValueError):
    """No sweep to compare; the message says what exists."""


@dataclass
class Row:
    """One (run, priced tier) pair: a GPU trial gives one row, a CPU run one per tier."""

    label: str
    tier: str  # the tier priced in this row
    run_tier: str  # the tier the run ran under ("cpu" for cost-only runs)
    status: str
    basis: str
    run_name: str
    run_id: str
    eur: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    rank: int | None = None

    def get(self, key: str) -> float | None:
        v = self.metrics.get(key)
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


@dataclass
class CompareReport:
    rows: list[Row]
    table: str
    table_path: Path | None
    figure: Path | None
    recommendation: str


# ----------------------------------------------------------------- MLflow
def find_parent(client, experiment: str, sweep: str | None = None):
    """(experiment id, parent run): the named sweep (run name or id), else the newest sweep in the experiment."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in client.search_experiments()]
        raise CompareError(f"no MLflow experiment {experiment!r}; experiments here: {names}")
    parents = [r for r in client.search_runs([exp.experiment_id], filter_string=f"tags.`{TAG_KIND}` != ''",
                                             order_by=["attributes.start_time DESC"], max_results=500)
               if "mlflow.parentRunId" not in r.data.tags]
    if not parents:
        raise CompareError(f"experiment {experiment!r} has no sweep (parent run tagged {TAG_KIND}); "
                           "run `veernet tune losses --smoke` first")
    if sweep is None:
        return exp.experiment_id, parents[0]
    for r in parents:
        if sweep in (r.info.run_id, r.data.tags.get(TAG_SWEEP), r.info.run_name):
            return exp.experiment_id, r
    raise CompareError(f"no sweep {sweep!r} in {experiment!r}; sweeps: "
                       f"{', '.join(r.data.tags.get(TAG_SWEEP, r.info.run_id) for r in parents)}")


def load_rows(client, experiment_id: str, parent_id: str) -> list[Row]:
    children = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
                                  max_results=5000)
    rows = []
    for run in children:
        tags, metrics = run.data.tags, dict(run.data.metrics)
        status = tags.get(TAG_STATUS) or ("running" if run.info.status == "RUNNING" else run.info.status.lower())
        for tier in filter(None, tags.get(TAG_PRICED, "").split(",")):
            rows.append(Row(label=tags.get(TAG_LABEL, run.info.run_name), tier=tier,
                            run_tier=tags.get(TAG_TIER, ""), status=status, basis=tags.get(TAG_BASIS, ""),
                            run_name=run.info.run_name, run_id=run.info.run_id, eur=metrics.get(f"eur_{tier}"),
                            metrics=metrics))
    return rows


# ----------------------------------------------------------------- ranking
def lower_is_better(metric: str) -> bool:
    return any(k in metric for k in LOWER_IS_BETTER)


def rank_rows(rows: Sequence[Row], metric: str) -> list[Row]:
    """Finished rows by metric (best first), then mIoU, then euros; others after, unranked."""
    sign = 1.0 if lower_is_better(metric) else -1.0

    def key(r: Row):
        q, t = r.get(metric), r.get(TIE_BREAK)
        return (q is None, sign * (q or 0.0), -(t or 0.0), r.eur if r.eur is not None else math.inf, r.label, r.tier)

    done = sorted((r for r in rows if r.status == "finished"), key=key)
    rest = sorted((r for r in rows if r.status != "finished"), key=key)
    for i, r in enumerate(done, 1):
        r.rank = i
    return done + rest


def recommend(rows: Sequence[Row], metric: str, tolerance: float = 0.01) -> tuple[Row | None, str]:
    """The cheapest finished row whose metric is within `tolerance` of the best, and one line saying so."""
    scored = [r for r in rows if r.status == "finished" and r.get(metric) is not None and r.eur is not None]
    if not scored:
        return None, "Recommendation: none - no trial finished with a value for " + metric
    low = lower_is_better(metric)
    best = (min if low else max)(r.get(metric) for r in scored)
    near = [r for r in scored if (r.get(metric) <= best + tolerance if low else r.get(metric) >= best - tolerance)]
    pick = min(near, key=lambda r: (r.eur, -(r.get(TIE_BREAK) or 0.0)))
    cost_only = " (CPU wall clock priced at tier rates: cost arithmetic only)" if pick.run_tier == CPU_TIER else ""
    line = (f"Recommendation: {pick.label} on {pick.tier} - {metric} {pick.get(metric):.4g} "
            f"(best {best:.4g}) for {fmt_eur(pick.eur)} EUR per run, the cheapest within {tolerance:g} "
            f"of the best{cost_only}.")
    return pick, line


# ----------------------------------------------------------------- table
def fmt_eur(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v >= 1 else f"{v:.2g}" if v < 0.001 else f"{v:.4f}"


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def class_ids(rows: Sequence[Row]) -> list[int]:
    return sorted({int(k.rsplit("_", 1)[1]) for r in rows for k in r.metrics
                   if k.startswith("val_iou_") and k.rsplit("_", 1)[1].isdigit()})


def format_table(rows: Sequence[Row], metric: str) -> str:
    """A markdown table, one line per (run, tier), best first; `metric` is the ranked column."""
    classes = class_ids(rows)
    cls = {0: "bg", 1: "c1", 2: "c2"}
    cols: list[tuple[str, Any]] = [
        ("#", lambda r: str(r.rank) if r.rank else "-"),
        ("variant", lambda r: r.label),
        ("tier", lambda r: r.tier),
        (f"{metric} (ranked)", lambda r: _num(r.get(metric), 4)),
    ]
    extra = [("val_curve_r2_median", "curve R2"), ("val_curve_mae", "curve MAE"), ("val_miou_fg", "mIoU fg")]
    cols += [(title, (lambda k: lambda r: _num(r.get(k), 4))(k)) for k, title in extra if k != metric]
    cols += [(f"IoU {cls.get(c, c)}", (lambda c: lambda r: _num(r.get(f"val_iou_{c}")))(c)) for c in classes]
    cols += [(f"F1 {cls.get(c, c)}", (lambda c: lambda r: _num(r.get(f"val_f1_{c}")))(c)) for c in classes if c]
    if len({r.get("model_params") for r in rows}) > 1:
        cols.append(("params (M)", lambda r: _num((r.get("model_params") or 0) / 1e6, 2)))
    cols += [
        ("wall clock", lambda r: fmt_time(r.get("wall_clock_s"))),
        ("peak mem (GB)", lambda r: _num(r.get("peak_memory_gb"), 2)),
        ("EUR", lambda r: fmt_eur(r.eur)),
        ("status", lambda r: r.status),
    ]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(f(r) for _, f in cols) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------- figure
def write_figure(rows: Sequence[Row], metric: str, path: str | Path, *, title: str, pick: Row | None = None) -> Path:
    """Quality against euros per run, one colour per tier; the recommended trial ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.status == "finished" and r.get(metric) is not None and r.eur is not None]
    tiers = list(dict.fromkeys(r.tier for r in rows))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    for i, tier in enumerate(tiers):
        sel = [r for r in pts if r.tier == tier]
        ax.scatter([r.eur for r in sel], [r.get(metric) for r in sel], s=60, color=colours(i % 10),
                   marker="os^Dv"[i % 5], label=tier, zorder=3, edgecolor="black", linewidth=0.5)
        # labels fanned out vertically where points stack (equal quality, as in short smoke runs)
        seen: dict[tuple[float, float], int] = {}
        for r in sorted(sel, key=lambda r: (r.eur, r.get(metric))):
            k = (round(math.log10(max(r.eur, 1e-12)), 1), round(r.get(metric), 3))
            n = seen[k] = seen.get(k, -1) + 1
            ax.annotate(r.label, (r.eur, r.get(metric)), textcoords="offset points", xytext=(9, -3 + 9 * n),
                        fontsize=8, color=colours(i % 10))
    if pick is not None:
        ax.scatter([pick.eur], [pick.get(metric)], s=260, facecolors="none", edgecolors="crimson", linewidth=2,
                   zorder=4, label=f"recommended: {pick.label} on {pick.tier}")
    eurs = [r.eur for r in pts if r.eur > 0]
    if eurs and max(eurs) / min(eurs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("euros per run (wall clock x tier hourly rate)")
    ax.set_ylabel(metric + (" (lower is better)" if lower_is_better(metric) else " (higher is better)"))
    bases = {r.basis for r in rows if r.basis}
    ax.set_title(title + ("\n" + CPU_BASIS if CPU_BASIS in bases else ""), fontsize=10)
    ax.margins(x=0.15, y=0.1)  # room for the labels right of the outermost points
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------- API + CLI
def compare_sweep(tracking_uri: str, experiment: str, sweep: str | None = None, *, metric: str = DEFAULT_METRIC,
                  tolerance: float = 0.01, out: str | Path | None = None) -> CompareReport:
    """Rank the sweep's child runs; write compare.md and compare.png into `out` when given."""
    from veernet_ray import tracking

    client = tracking.reader(tracking_uri)
    exp_id, parent = find_parent(client, experiment, sweep)
    rows = load_rows(client, exp_id, parent.info.run_id)
    if not rows:
        raise CompareError(f"sweep {parent.info.run_name!r} has no child runs yet")
    rows = rank_rows(rows, metric)
    pick, line = recommend(rows, metric, tolerance)
    table = format_table(rows, metric)
    table_path = figure = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        sweep_name = parent.data.tags.get(TAG_SWEEP, parent.info.run_name)
        figure = write_figure(rows, metric, out / "compare.png", pick=pick,
                              title=f"{experiment} / {sweep_name}: {metric} against euros, per tier")
        table_path = out / "compare.md"
        table_path.write_text(f"# Sweep {sweep_name} ({experiment})\n\n{table}\n\n{line}\n")
    return CompareReport(rows, table, table_path, figure, line)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Rank a sweep's child runs (markdown table), plot quality against euros per tier (PNG) "
        "and recommend the cheapest trial within a tolerance of the best.",
        epilog="examples:\n"
        "  veernet compare --experiment veernet-tune-losses\n"
        "  veernet compare --experiment veernet-tune-capacity --metric val_miou_fg --out runs/compare",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--experiment", required=True, help="MLflow experiment holding the sweep")
    p.add_argument("--sweep", help="sweep name or parent run id (default: the newest sweep in the experiment)")
    p.add_argument("--metric", default=DEFAULT_METRIC, help="quality metric to rank by (default: %(default)s)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="recommend the cheapest trial within this much of the best metric (default: %(default)s)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else runs/mlflow.db)")
    p.add_argument("--out", help="folder for compare.md and compare.png (default: runs/compare/<sweep>)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    from veernet_ray import tracking
    from veernet_ray.config import PROJECT_ROOT

    uri = tracking.resolve_tracking_uri(args.tracking_uri, PROJECT_ROOT / "runs")
    try:
        _, parent = find_parent(tracking.reader(uri), args.experiment, args.sweep)
        out = Path(args.out) if args.out else PROJECT_ROOT / "runs" / "compare" / parent.data.tags.get(TAG_SWEEP, parent.info.run_id)
        report = compare_sweep(uri, args.experiment, parent.info.run_id, metric=args.metric,
                               tolerance=args.tolerance, out=out)
    except CompareError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(report.table)
    print()
    print(report.recommendation)
    print(f"[veernet] wrote {report.table_path} and {report.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
