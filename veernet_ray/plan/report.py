"""The plan for people: a short printed table and `plan.png` (memory curves beside the cost ledger)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from veernet_ray.plan.fit import GIB, MemoryFit


def _hours(h: float) -> str:
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"


def _epoch(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def format_table(plan: dict[str, Any]) -> str:
    """The tiers as a fixed-width table, with the basis of every figure underneath."""
    n = plan["retrains"]
    head = ("tier", "GiB", "EUR/mo", "batch", "accum", "peak GiB", "pad bkt/rnd", "epoch", "run",
            "EUR/run", f"EUR/{n} runs", "runs/day")
    rows = []
    for r in plan["tiers"]:
        mark = "*" if r["name"] == plan["tier"] else " "
        if not r["fits"]:
            rows.append((mark + r["name"], f"{r['gpu_mem_gib']:g}", f"{r['eur_month']:,.0f}", "0", "-",
                         f"{r['peak_gib_batch1']:.1f}", "too small for batch 1 of the widest log", "", "", "", "", ""))
            continue
        rows.append((
            mark + r["name"], f"{r['gpu_mem_gib']:g}", f"{r['eur_month']:,.0f}", str(r["physical_batch"]),
            str(r["accumulation_steps"]), f"{r['peak_gib']:.1f}",
            f"{r['padding_bucketed']:.1%}/{r['padding_random']:.1%}", _epoch(r["epoch_s"]), _hours(r["run_h"]),
            f"{r['eur_per_run']:,.2f}", f"{r['eur_per_retrains']:,.0f}", f"{r['retrains_per_day']:.1f}",
        ))
    widths = [max([len(h)] + [len(row[i]) for row in rows if not row[6].startswith("too small") or i < 6])
              for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    for row in rows:
        if row[6].startswith("too small"):
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row[:6], widths)))
                         + "  " + row[6])
        else:
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    b = plan["basis"]
    m = plan["manifest"]
    lines += [
        f"* = plan.json's tier ({plan['chosen_by']}): physical batch {plan['physical_batch']} x accumulation "
        f"{plan['accumulation_steps']} x {plan['num_workers']} worker(s) = effective batch {plan['effective_batch']}; "
        f"{plan['epochs']} epochs per run, amp {plan['amp']}",
        f"manifest: {m['logs']} logs ({m['split']}), widths {m['width']['min']:,}-{m['width']['max']:,} px, "
        f"widest padded {m['widest_padded']['height']} x {m['widest_padded']['width']:,}",
        f"memory: {b['memory']} ({b['memory_detail']})",
        f"time:   {b['throughput']} ({b['throughput_detail']})",
    ]
    if plan.get("holdout"):
        h = plan["holdout"]
        lines.append(f"check:  held-out {h['batch']} x {h['height']} x {h['width']}: predicted "
                     f"{h['predicted_bytes'] / GIB:.2f} GiB, measured {h['measured_bytes'] / GIB:.2f} GiB "
                     f"({h['rel_error']:+.1%})")
    lines += [f"note:   {n}" for n in b.get("notes", [])]
    return "\n".join(lines)


def write_figure(plan: dict[str, Any], mem: MemoryFit, path: str | Path) -> Path:
    """plan.png: predicted peak memory against padded width per physical batch, tier ceilings drawn in,
    beside the cost ledger."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.transforms
    import numpy as np

    m = plan["manifest"]
    hp, wp = m["widest_padded"]["height"], m["widest_padded"]["width"]
    fits = [r for r in plan["tiers"] if r["fits"]]
    chosen = {r["physical_batch"] for r in fits}
    top = max(chosen | {4})
    batches = sorted({b for b in (1, 2, 4, 8, 16, 32, 64) if b <= top} | chosen)
    widths = np.linspace(32, wp * 1.1, 200)

    fig, (ax, side) = plt.subplots(1, 2, figsize=(15, 6.8), gridspec_kw={"width_ratios": [1.25, 1]})
    cmap = plt.get_cmap("viridis")
    for i, b in enumerate(batches):
        gib = [mem.predict(b, hp, w) / GIB for w in widths]
        tiers_here = [r["name"] for r in fits if r["physical_batch"] == b]
        ax.plot(widths, gib, color=cmap(i / max(1, len(batches) - 1) * 0.9), lw=2.6 if tiers_here else 1.4,
                label=f"batch {b}" + (f" ({', '.join(tiers_here)})" if tiers_here else ""))
    tier_colors = plt.get_cmap("tab10")
    ymax = max(mem.predict(batches[-1], hp, wp * 1.1) / GIB, *(r["usable_gib"] for r in plan["tiers"])) * 1.08
    for j, r in enumerate(plan["tiers"]):
        c = tier_colors(j + 3)
        ax.axhline(r["usable_gib"], color=c, ls="--", lw=1.5)
        ax.text(widths[0], r["usable_gib"], f" {r['name']}: {r['usable_gib']:.1f} of {r['gpu_mem_gib']:g} GiB usable",
                color=c, ha="left", va="bottom", fontsize=10)
    ax.axvline(wp, color="0.3", ls=":", lw=1.5)
    ax.text(wp, 0.45, f"widest log: {wp:,} px ", rotation=90, ha="right", va="center", fontsize=9, color="0.3",
            transform=matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes))
    counts, edges = m["width_histogram"]["counts"], m["width_histogram"]["edges"]
    if counts:  # the manifest's width distribution, on its own axis along the bottom
        hist = ax.twinx()
        hist.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="0.88", edgecolor="0.6", zorder=0)
        hist.set_ylim(0, max(counts) * 8)
        hist.set_ylabel("logs per width bin (grey bars)", color="0.45")
        hist.tick_params(axis="y", colors="0.45")
        ax.set_zorder(hist.get_zorder() + 1)
        ax.patch.set_visible(False)
    ax.set_xlim(0, widths[-1])
    curve_top = mem.predict(batches[-1], hp, widths[-1]) / GIB
    if ymax > 6 * curve_top:  # ceilings far above the curves: a log axis keeps both readable
        ax.set_yscale("log")
        ax.set_ylim(min(mem.predict(1, hp, widths[0]) / GIB, 0.05) * 0.8, ymax * 1.5)
    else:
        ax.set_ylim(0, ymax)
    ax.set_xlabel(f"padded width (px); height {hp} px, the tallest padded log")
    ax.set_ylabel("predicted peak training memory (GiB)")
    ax.set_title(f"Peak memory per physical batch ({plan['basis']['memory']}, amp {plan['amp']})", fontsize=12)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=min(6, len(batches)), fontsize=9, frameon=False)
    ax.grid(alpha=0.3)

    side.axis("off")
    n = plan["retrains"]
    cols = ["tier", "batch x accum", "epoch", "run", "EUR/run", f"EUR/{n} runs", "runs/day"]
    cells = []
    for r in plan["tiers"]:
        name = r["name"] + (" *" if r["name"] == plan["tier"] else "")
        if r["fits"]:
            cells.append([name, f"{r['physical_batch']} x {r['accumulation_steps']}", _epoch(r["epoch_s"]),
                          _hours(r["run_h"]), f"{r['eur_per_run']:,.2f}", f"{r['eur_per_retrains']:,.0f}",
                          f"{r['retrains_per_day']:.1f}"])
        else:
            cells.append([name, "too small", "-", "-", "-", "-", "-"])
    table = side.table(cellText=cells, colLabels=cols, cellLoc="center", bbox=[0.0, 0.62, 1.0, 0.3])
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.auto_set_column_width(list(range(len(cols))))
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("0.9")
    side.set_title(f"Cost ledger: {plan['epochs']} epochs per run, {m['logs']:,} logs per epoch", fontsize=12)
    b = plan["basis"]
    first = plan["tiers"][0] if plan["tiers"] else {}
    notes = [
        f"* plan.json's tier ({plan['chosen_by']}):",
        f"   physical batch {plan['physical_batch']} x accumulation {plan['accumulation_steps']} "
        f"x {plan['num_workers']} worker(s) = effective batch {plan['effective_batch']}",
        f"memory basis: {b['memory']}",
        f"time basis: {b['throughput']} ({plan['throughput']['mpx_per_s']:.3g} Mpx/s)",
        f"EUR/hour = EUR/month / {first.get('hours_per_month', 730):g} h per month",
    ] + [f"padding on {r['name']}: {r['padding_bucketed']:.1%} with width bucketing, "
         f"{r['padding_random']:.1%} with random batches" for r in fits]
    if b["throughput"] == "cpu-measured":
        notes.append("times and euros are at this CPU's speed: GPU throughput\n   unknown until measured on a GPU or given (--throughput)")
    if b["memory"] == "estimate":
        notes.append("memory is an estimate (no GPU here), not a measurement")
    side.text(0.0, 0.55, "\n".join(notes), transform=side.transAxes, va="top", fontsize=10, linespacing=1.5)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
