"""VeerNet, the segmentation network, and its builders."""

from veernet_ray.model.veernet import VeerNet, VeerNetConfig, build_model, count_parameters

__all__ = ["VeerNet", "VeerNetConfig", "build_model", "count_parameters"]
