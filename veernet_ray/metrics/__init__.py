"""Evaluation: mask metrics (confusion matrix over valid pixels) and recovered-curve metrics.

The curve metrics are pure NumPy and import eagerly; the mask metrics need
torch and load on first use, so NumPy-only callers (LAS export) stay light.
"""

from veernet_ray.metrics.curves import curve_metrics, resample_linear

__all__ = ["SegmentationMeter", "scores_from_confusion", "curve_metrics", "resample_linear"]


def __getattr__(name):
    if name in ("SegmentationMeter", "scores_from_confusion"):
        from veernet_ray.metrics import segmentation

        return getattr(segmentation, name)
    raise AttributeError(name)
