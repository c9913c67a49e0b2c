"""QC thresholds, the one place their defaults live (`trace.qc` judges with them).

Kept apart from `trace.qc` so that command-line parsers and writers can take their defaults
without importing numpy, numba or the tracer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class QCThresholds:
    """A curve is flagged when any signal crosses its threshold."""

    # chosen together on training styles (train-style n=120, 240 curves) for the stage-7 weights and the
    # ink-classes-closed decoder: bench/qc_thresholds.py --min-bad 0.92 --keep max_shared,min_confidence
    # (bench/RESULTS.md, "Curve identity from the classes again"); kept for ink-classes-jumps, where a
    # retune did worse on fresh training-style scans (bench/RESULTS.md, "Curve identity at the paths' jumps");
    # kept for the stage-8 weights (89% / 35% of bad / good curves flagged on the same 240 curves)
    min_coverage: float = 0.65
    # the tuner's 0.75 flagged 1% more bad curves, and a perfect trace of soft probabilities (mean 0.76)
    min_confidence: float = 0.5
    min_margin: float = 0.15  # curve 1: own class minus the other curve class; < 0: the other class wins
    # the same for curve 2 (-1: off); below 0 until stage 7, whose classes split the pens better
    min_margin_2: float = 0.05
    min_pen: float = 0.05  # curve 1's trace at least this much more solid than curve 2's (-1: off)
    # ... checked only where the curve's class margin is below this: the decoder takes identity from the
    # classes as well as the pens, and a decisive margin settles it (bench/RESULTS.md, "QC: the pen rule
    # asks the classes too"; 9: always checked, as before)
    pen_margin: float = 0.6
    max_shared: float = 0.25  # 0.15 flagged good curves that overlap the other for a stretch
    min_ink: float = 0.8
    # of the riding signal (RIDE_COLUMNS, confirmed beyond the trace, the curve seen elsewhere); 0.02
    # (a 40-column run in 2,000) over 0 and 0.05: the best of the three on both training-style sets
    # (bench/RESULTS.md, "QC: riding a grid line, or drawn on one")
    max_grid: float = 0.02
    max_jumps: float = 1.0  # per 1,000 columns
    min_spread: float = 0.035  # std of the trace, track fractions

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


#: the defaults, for signatures and --help
QC_DEFAULTS = QCThresholds()
