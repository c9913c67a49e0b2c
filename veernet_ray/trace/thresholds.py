"""QC thresholds, the one place their defaults live (`trace.qc` judges with them).

Kept apart from `trace.qc` so that command-line parsers and writers can take their defaults
without importing numpy, numba or the tracer.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class QCThresholds:
    """A curve is flagged when any signal crosses its threshold."""

    # chosen together on training styles (train-style n=120, 240 curves) for the stage-7 weights and the
    # ink-classes-closed decoder: bench/qc_thresholds.py --min-bad 0.92 --keep max_shared,min_confidence
    # (bench/RESULTS.md, "Curve identity from the classes again"); kept for ink-classes-jumps, where a
    # retune did worse on fresh training-style scans (bench/RESULTS.md, "Curve identity at the paths' jumps");
    # kept for the stage-8 weights (89% / 35% of bad / good curves flagged on the same 240 curves), and for
    # stages 10 and 11, where a retune on training and validation styles did no better on scans it was not
    # tuned on (bench/RESULTS.md, "A validation set of unseen styles"). For stage 12, retuned on the
    # training and validation styles together (528 curves): bench/qc_thresholds.py --min-bad 0.88 --keep
    # max_shared,min_confidence,max_cycles,min_coverage, which did better than the thresholds before on both
    # fresh training-style sets it was not tuned on (bench/RESULTS.md, "QC retuned for stage 12"): the class
    # margins, the grid share, the backup share and the spread moved, and the pen rule went off
    min_coverage: float = 0.65
    # the tuner's 0.75 flagged 1% more bad curves, and a perfect trace of soft probabilities (mean 0.76)
    min_confidence: float = 0.5
    min_margin: float = 0.5  # curve 1: own class minus the other curve class; < 0: the other class wins
    # the same for curve 2 (-1: off); below 0 until stage 7, whose classes split the pens better
    min_margin_2: float = 0.3
    min_pen: float = -1.0  # curve 1's trace at least this much more solid than curve 2's (-1: off)
    # ... checked only where the curve's class margin is below this: the decoder takes identity from the
    # classes as well as the pens, and a decisive margin settles it (bench/RESULTS.md, "QC: the pen rule
    # asks the classes too"; 9: always checked, as before)
    pen_margin: float = 0.6
    max_shared: float = 0.25  # 0.15 flagged good curves that overlap the other for a stretch
    # 0.8 until the contrast below; with it, 0.85 (bench/RESULTS.md, "QC: ink support against the ink beside it")
    min_ink: float = 0.85
    # ... checked only where the ink under the trace is less than this above the ink a few rows off it
    # (ink_contrast): a broken pen's gaps lower a right trace's support but not its contrast (9: always
    # checked, as before)
    ink_contrast: float = 0.6
    # of the riding signal (RIDE_COLUMNS, confirmed beyond the trace, the curve seen elsewhere); 0.02
    # (a 40-column run in 2,000) over 0 and 0.05: the best of the three on both training-style sets
    # (bench/RESULTS.md, "QC: riding a grid line, or drawn on one"); 0.05 since stage 12's retune
    max_grid: float = 0.05
    max_jumps: float = 1.0  # per 1,000 columns
    # wrap cycles a backed-up trace spans: 1 is a backup beyond one end of the scale, as drawn; not tuned
    # (bench/RESULTS.md, "QC: a trace that backs up both ways"; 9: off)
    max_cycles: float = 1.0
    # share of a backed-up trace on its backup scale: the unwrap calls the cycle most of the trace is on the
    # main scale, so a share near a half leaves it in doubt; 0.4 was "within 0.1 of a half", untuned (the
    # search on training and validation styles took 0.3, one bad curve apart; bench/RESULTS.md, "QC: the
    # main scale in doubt"; 9: off); 0.45 since stage 12's retune
    max_backup: float = 0.45
    min_spread: float = 0.025  # std of the trace, track fractions

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


#: the defaults, for signatures and --help
QC_DEFAULTS = QCThresholds()


#: a reason's trailing "value < limit" or "value > limit"
_FIGURES = re.compile(r"\s+-?(?:inf|nan|[\d.]+)\s*[<>]\s*-?(?:inf|nan|[\d.]+)$")


def reason_rules(reason: str) -> list[str]:
    """The rules a `judge` reason names, without their figures.

    'low coverage 0.41 < 0.65; curves hard to tell apart: class margin -0.07 < 0.15'
    -> ['low coverage', 'curves hard to tell apart: class margin'].
    """
    return [_FIGURES.sub("", part.strip()).strip() for part in str(reason or "").split(";") if part.strip()]


def reason_categories(reason: str) -> list[str]:
    """The rules a reason names, by category (the text before a rule's colon): what the review page filters on.

    'low coverage 0.41 < 0.65; curves hard to tell apart: pen contrast 0.01 < 0.05; uncalibrated'
    -> ['low coverage', 'curves hard to tell apart', 'uncalibrated'].
    """
    return [rule.split(":", 1)[0].strip() for rule in reason_rules(reason)]
