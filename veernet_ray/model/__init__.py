"""VeerNet, the segmentation network: its config, builders and checkpoints.

The configs (`veernet_ray.model.config`) are torch-free and imported here at once; the
network and checkpoint helpers import torch, so they load on first use (PEP 562
`__getattr__`): loading a run config or starting a CLI never pays for torch.
"""

from veernet_ray.model.config import ModelConfig, VeerNetConfig, model_config

__all__ = ["ModelConfig", "VeerNetConfig", "model_config", "VeerNet", "build_model", "count_parameters"]

_LAZY = {"VeerNet", "build_model", "count_parameters"}


def __getattr__(name: str):
    if name in _LAZY:
        from veernet_ray.model import veernet

        return getattr(veernet, name)
    raise AttributeError(f"module 'veernet_ray.model' has no attribute {name!r}")
