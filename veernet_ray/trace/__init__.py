"""Curve tracing: class probabilities -> one sub-pixel row per depth column per curve."""

from veernet_ray.trace.tracer import MIN_CONFIDENCE, TraceResult, trace_curves

__all__ = ["MIN_CONFIDENCE", "TraceResult", "trace_curves"]
