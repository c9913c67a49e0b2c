"""VeerNet's configuration: the architecture (`ModelConfig`, the run config's `model:` section)
and the network it builds (`VeerNetConfig` = the architecture + input channels and classes).

Torch-free, so loading a run config never imports torch. One class holds the architecture
and its checks; `VeerNetConfig` only adds what the task decides (grayscale input, the class
count from `train.stage`), and both give the padding multiple from the same property.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from veernet_ray.config import RunConfig

__all__ = ["ModelConfig", "VeerNetConfig", "model_config"]


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of one VeerNet; the `model:` section of a run config.

    Attributes:
        stem_width: channels of the full-resolution stem (the last skip).
        widths: output channels of the encoder blocks, one stride-2 block each;
            `widths[-1]` is the token width of the attention bottleneck.
        attn_layers: pre-norm transformer layers in the bottleneck (0 = none).
        attn_heads: attention heads; must divide `widths[-1]`.
        mlp_ratio: hidden width of the transformer MLP relative to `widths[-1]`.
        dropout: dropout in the bottleneck (attention and MLP).
        checkpointing: recompute the stem's, the encoder blocks' and every decoder stage's
            but the last's activations in backward (the last stage's backward runs first, at
            the memory peak, where recomputing it would cost compute and save nothing).

    Checked when made, so a run config with a bad architecture fails when it is loaded,
    before Ray starts (the config loader reports the message as a ConfigError).
    """

    stem_width: int = 16
    widths: tuple[int, ...] = (24, 32, 64, 96, 128)
    attn_layers: int = 2
    attn_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    checkpointing: bool = False

    def __post_init__(self) -> None:
        # YAML gives lists; a frozen dataclass must hold a hashable tuple.
        object.__setattr__(self, "widths", tuple(self.widths))
        if len(self.widths) < 1:
            raise ValueError("widths needs at least one encoder width, e.g. (24, 32, 64, 96, 128)")
        for name in ("stem_width", "attn_heads"):
            if not _positive_int(getattr(self, name)):
                raise ValueError(f"{name} must be a positive int; got {getattr(self, name)!r}")
        for i, w in enumerate(self.widths):
            if not _positive_int(w):
                raise ValueError(f"widths[{i}] must be a positive int; got {w!r}")
        if not isinstance(self.attn_layers, int) or self.attn_layers < 0:
            raise ValueError(f"attn_layers must be an int >= 0; got {self.attn_layers!r}")
        if self.widths[-1] % self.attn_heads:
            raise ValueError(f"widths[-1]={self.widths[-1]} must be divisible by attn_heads={self.attn_heads} "
                             "(the attention tokens have widths[-1] channels)")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be > 0; got {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")

    @property
    def multiple(self) -> int:
        """Padded H and W must be multiples of this: one factor 2 per stride-2 encoder block (32 = 2**5).

        The one source of the padding multiple: training batches, planning, the inference
        listing and tiles all take it from here (through the run config or the loaded model).
        """
        return 2 ** len(self.widths)

    def for_task(self, num_classes: int, in_channels: int = 1) -> "VeerNetConfig":
        """The network this architecture builds for `num_classes` outputs."""
        fields = {k: v for k, v in asdict(self).items()}
        return VeerNetConfig(in_channels=in_channels, num_classes=num_classes, **fields)


@dataclass(frozen=True)
class VeerNetConfig(ModelConfig):
    """Architecture of one VeerNet plus its task; saved in every checkpoint as plain fields.

    Attributes (beyond `ModelConfig`'s):
        in_channels: input channels (1: grayscale scans).
        num_classes: output classes, background included (2 = binary stage,
            3 = background / curve 1 / curve 2).
    """

    in_channels: int = 1
    num_classes: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("in_channels", "num_classes"):
            if not _positive_int(getattr(self, name)):
                raise ValueError(f"VeerNetConfig.{name} must be a positive int; got {getattr(self, name)!r}")
        if self.num_classes < 2:
            raise ValueError(f"VeerNetConfig.num_classes must be >= 2 (binary = background + curve); "
                             f"got {self.num_classes}")


def model_config(cfg: "RunConfig") -> VeerNetConfig:
    """The network a run config trains: its `model:` section with the class count of `train.stage`."""
    return cfg.model.for_task(cfg.train.num_classes)
