"""Evaluation: mask metrics (confusion matrix over valid pixels) and recovered-curve metrics."""

from veernet_ray.metrics.curves import curve_metrics, resample_linear
from veernet_ray.metrics.segmentation import SegmentationMeter, scores_from_confusion

__all__ = ["SegmentationMeter", "scores_from_confusion", "curve_metrics", "resample_linear"]
