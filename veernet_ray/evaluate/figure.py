"""`veernet evaluate`'s picture: every curve's R^2 per style and method, and where QC's verdicts fall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: R^2 is drawn clipped here: below it a curve is simply wrong, and the axis would be all tail
R2_FLOOR = -1.0
#: the issue's lines: a curve below BAD is bad, one at GOOD or above is good; MAE above OFF is off
BAD, GOOD, OFF = 0.8, 0.95, 0.03


def write_figure(rows: list[dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """report.png: left, box plots of per-curve R^2 for each style family and method (no trace counts
    as R^2 0, as in the tables); right, the model's curves by mean error and R^2, flagged or passed by QC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(rows)
    methods = ["model", *sorted(m for m in df["method"].unique() if m != "model")]
    families = sorted(df["family"].unique())
    palette = ["tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]  # green and red: QC
    colours = {m: matplotlib.colors.to_rgba(palette[i % len(palette)]) for i, m in enumerate(methods)}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.5), dpi=110, gridspec_kw={"width_ratios": [1.4, 1]})

    step = 1.0 / (len(methods) + 1)
    for i, fam in enumerate(families):
        for j, m in enumerate(methods):
            r2 = df[(df["family"] == fam) & (df["method"] == m)]["r2"].fillna(0.0).clip(lower=R2_FLOOR).to_numpy()
            if r2.size == 0:
                continue
            x = i + (j + 1) * step - 0.5
            box = ax.boxplot(r2, positions=[x], widths=step * 0.8, patch_artist=True, showfliers=False)
            for part in box["boxes"]:
                part.set(facecolor=(*colours[m][:3], 0.35), edgecolor=colours[m])
            for part in ("medians", "whiskers", "caps"):
                for line in box[part]:
                    line.set(color=colours[m])
            jitter = np.random.default_rng(i * 31 + j).uniform(-0.25, 0.25, r2.size) * step
            ax.scatter(x + jitter, r2, s=7, color=colours[m], alpha=0.7, zorder=3)
    for y, text in ((BAD, f"bad below {BAD}"), (GOOD, f"good from {GOOD}")):
        ax.axhline(y, color="grey", lw=0.8, ls="--")
        ax.text(-0.55, y, text, ha="left", va="bottom", fontsize=8, color="grey")
    ax.set_xticks(range(len(families)), families, rotation=15, fontsize=9)
    ax.set_xlim(-0.6, len(families) - 0.4)
    ax.set_ylim(R2_FLOOR - 0.05, 1.05)
    ax.set_ylabel(f"curve R^2 (clipped at {R2_FLOOR:g}; no trace = 0)")
    ax.set_title("Recovered curves per style family")
    ax.legend(handles=[plt.Line2D([], [], marker="s", ls="", color=colours[m], label=m) for m in methods],
              loc="lower right", fontsize=8)

    model = df[df["method"] == "model"]
    if "flagged" in model:
        mae = model["mae"].fillna(1.0).clip(lower=1e-4).to_numpy()  # no trace: drawn at the right edge
        r2 = model["r2"].fillna(0.0).clip(lower=R2_FLOOR).to_numpy()
        flagged = model["flagged"].fillna(False).astype(bool).to_numpy()
        bx.scatter(mae[~flagged], r2[~flagged], s=14, marker="o", color="tab:green", alpha=0.7,
                   label=f"passed by QC ({int((~flagged).sum())})")
        bx.scatter(mae[flagged], r2[flagged], s=18, marker="x", color="tab:red", alpha=0.8,
                   label=f"flagged for review ({int(flagged.sum())})")
        bx.axhline(BAD, color="grey", lw=0.8, ls="--")
        bx.axvline(OFF, color="grey", lw=0.8, ls=":")
        bx.text(OFF, R2_FLOOR, f" off: mean error > {OFF:g}", fontsize=8, color="grey", va="bottom")
        bx.set_xscale("log")
        bx.set_xlim(1e-4 * 0.8, 1.3)
        bx.set_ylim(R2_FLOOR - 0.05, 1.05)
        bx.set_xlabel("mean absolute error (track fractions; no trace = 1)")
        bx.set_ylabel("curve R^2 (clipped)")
        bx.set_title("The model's curves and QC: misses are green below the line")
        bx.legend(loc="lower left", fontsize=8)
    else:
        bx.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
