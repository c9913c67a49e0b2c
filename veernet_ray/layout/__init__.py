"""Whole archive sheets: find the tracks, read the depth labels, fit depth, cut one sidecar per track.

    detect.py     pure layout: sections, track borders, depth column, label boxes
    digits.py     the shipped digit reader (and the Tesseract alternative), READERS registry
    calibrate.py  pure depth fit per section: robust line through the labels, with its verdict
    sheet.py      one sheet end to end (`analyse_sheet`), track sidecars, scales files, overlays
    stages.py     the Ray Data stages `veernet infer --layout sheet|auto` runs, and the per-sheet LAS

See docs/sheets.md for the workflow and the files it writes.
"""

from veernet_ray.layout.calibrate import DepthFit, fit_depth
from veernet_ray.layout.detect import Layout, find_layout
from veernet_ray.layout.sheet import SheetAnalysis, analyse_sheet

__all__ = ["DepthFit", "Layout", "SheetAnalysis", "analyse_sheet", "find_layout", "fit_depth"]
