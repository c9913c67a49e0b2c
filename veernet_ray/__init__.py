"""VeerNet-Ray: digitise scanned raster well logs into LAS curves, on Ray."""

__version__ = "0.1.0"
