"""Batching shared by training and inference: padded collate and normalisation."""

from veernet_ray.data.collate import normalize_image, pad_collate, padding_fraction, round_up, to_tensors

__all__ = ["pad_collate", "padding_fraction", "to_tensors", "normalize_image", "round_up"]
