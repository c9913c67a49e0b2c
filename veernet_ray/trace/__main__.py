"""`python -m veernet_ray.trace`: compile the tracer's Numba kernels once, into their on-disk cache.

The first process to trace after an install (or an edit of trace/) compiles them, about 10 s
on one core; every later process loads them in well under a second. `make demo` and
`make test` run this first, so that the Ray workers of a fresh clone do not all compile the
same kernels at once.
"""

from __future__ import annotations

import time

import numpy as np


def compile_kernels() -> float:
    """Trace and QC a tiny map in every dtype the pipeline uses (uint8 model output, float32 and
    float64 probabilities, a wrapped curve); returns the seconds it took."""
    from veernet_ray.trace import trace_curves
    from veernet_ray.trace.qc import curve_signals

    t0 = time.perf_counter()
    h, w = 40, 64
    probs = np.zeros((3, h, w), np.float64)
    probs[1, 10], probs[2, 25] = 0.9, 0.8
    probs[0] = 1.0 - probs[1:].sum(axis=0)
    image = np.full((h, w), 220, np.uint8)
    image[10], image[25] = 20, 60
    quantised = np.round(probs * 255).astype(np.uint8)
    for p in (quantised, probs.astype(np.float32), probs):
        trace = trace_curves(p, (1, 2), wrap_px={2: 20.0})
        curve_signals(trace.rows, trace.confidence, trace.class_ids, p, image)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"tracer kernels ready ({compile_kernels():.1f} s; compiled once, then loaded from numba's cache)")
