"""Curve tracing: class probabilities -> one sub-pixel row per depth column per curve.

The tracer's names load on first use, so `veernet_ray.trace.thresholds` (QC defaults for
parsers and writers) imports without numba.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from veernet_ray.trace.tracer import MIN_CONFIDENCE, TraceResult, trace_curves

__all__ = ["MIN_CONFIDENCE", "TraceResult", "trace_curves"]


def __getattr__(name: str):
    if name in __all__:
        from veernet_ray.trace import tracer

        return getattr(tracer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
