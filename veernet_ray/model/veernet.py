"""VeerNet: a residual U-Net with a transformer bottleneck, for thin curve traces.

Read top to bottom: config, building blocks, the network, builders. The network
is encoder -> bottleneck -> decoder -> head, and `VeerNet.forward` says exactly
that. Images are never resized (a one-pixel trace smears into the paper), so the
network takes any H and W that are multiples of `2 ** len(widths)` and
`veernet_ray.data.pad_collate` pads batches to get there.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from veernet_ray.model.config import VeerNetConfig

__all__ = ["VeerNetConfig", "VeerNet", "build_model", "count_parameters", "gn", "valid_region"]


# --------------------------------------------------------------------------- valid regions

#: during `VeerNet.forward(x, valid=...)`: ((B, 2) valid (H, W) per image at input resolution, (H, W) of x).
#: A module global, not a ContextVar: torch.compile traces a global read (None outside a region)
#: without a graph break. One forward at a time per process sets it (a model actor, a training loop).
_VALID: tuple[torch.Tensor, tuple[int, int]] | None = None


@contextlib.contextmanager
def valid_region(valid: torch.Tensor, full: tuple[int, int]) -> Iterator[None]:
    """Within the block, GroupNorm statistics and attention keys count only each image's valid region.

    valid: (B, 2) (H, W) per image, at the input's resolution; full: the input's (H, W). A layer at
    1/s of the input sees ceil(valid / s) rows and columns of each image.
    """
    global _VALID
    before, _VALID = _VALID, (valid, (int(full[0]), int(full[1])))
    try:
        yield
    finally:
        _VALID = before


def _valid_at(h: int, w: int) -> torch.Tensor | None:
    """(B, 2) valid rows and columns at a layer of size (h, w), or None outside `valid_region`."""
    state = _VALID
    if state is None:
        return None
    valid, (H, W) = state
    sh, sw = max(1, H // h), max(1, W // w)
    return torch.stack([(valid[:, 0] + sh - 1) // sh, (valid[:, 1] + sw - 1) // sw], dim=1).clamp(
        min=torch.ones(2, dtype=valid.dtype, device=valid.device),
        max=torch.tensor([h, w], dtype=valid.dtype, device=valid.device))


def _region_mask(valid: torch.Tensor, h: int, w: int, device) -> torch.Tensor:
    """(B, h, w) bool: True inside each image's valid region (top-left)."""
    valid = valid.to(device)
    rows = torch.arange(h, device=device)[None, :] < valid[:, :1]
    cols = torch.arange(w, device=device)[None, :] < valid[:, 1:]
    return rows[:, :, None] & cols[:, None, :]


def _masked_group_norm(x: torch.Tensor, valid: torch.Tensor, groups: int, weight: torch.Tensor,
                       bias: torch.Tensor, eps: float, act: bool) -> torch.Tensor:
    """GroupNorm (+ SiLU) whose statistics are taken over each image's region only (valid: (B, 2) rows
    and columns at this layer, top-left), float32 inside, output in x's dtype and 0 outside the region.
    Inside, it equals GroupNorm of each image cropped to its region; outside, the 0 is what a cropped
    image's zero-padded convolutions read.

    Per image, the statistics come from the region's float32 copy (`torch.var_mean`); the normalisation
    is then one multiply-add over the tensor with per-channel scale and shift, and the padding is
    zeroed by slicing: about a native GroupNorm's passes plus the region's copy.
    """
    B, C, h, w = x.shape
    sizes = [(int(vh), int(vw)) for vh, vw in valid.tolist()]
    means, rstds = [], []
    for b, (vh, vw) in enumerate(sizes):
        var, mean = torch.var_mean(x[b, :, :vh, :vw].float().reshape(groups, -1), dim=1, unbiased=False)
        means.append(mean)
        rstds.append(torch.rsqrt(var + eps))
    scale = torch.stack(rstds).repeat_interleave(C // groups, dim=1) * weight.float()  # (B, C)
    shift = bias.float() - torch.stack(means).repeat_interleave(C // groups, dim=1) * scale
    y = torch.addcmul(shift[:, :, None, None], x.float(), scale[:, :, None, None])
    if torch.is_grad_enabled():  # out of place, so autograd keeps what backward reads
        keep = torch.zeros(B, 1, h, w, dtype=y.dtype, device=y.device)
        for b, (vh, vw) in enumerate(sizes):
            keep[b, :, :vh, :vw] = 1
        return ((F.silu(y) if act else y) * keep).to(x.dtype)
    if act:
        F.silu(y, inplace=True)
    for b, (vh, vw) in enumerate(sizes):
        y[b, :, vh:] = 0
        y[b, :, :vh, vw:] = 0
    return y.to(x.dtype)


# --------------------------------------------------------------------------- blocks


def _groups(channels: int) -> int:
    groups = max(1, min(channels // 2, 16))
    while channels % groups:
        groups -= 1
    return groups


LOW_PRECISION = (torch.float16, torch.bfloat16)
#: group-aligned channel chunks `_GroupNormAct` works through one at a time (bounds its float32 temporaries)
NORM_CHUNKS = 4


def _chunks(channels: int, groups: int) -> list[tuple[int, int, int, int]]:
    """(first channel, last channel, first group, last group) of up to NORM_CHUNKS group-aligned slices."""
    per = channels // groups
    step = -(-groups // min(groups, NORM_CHUNKS))
    return [(g * per, min(groups, g + step) * per, g, min(groups, g + step)) for g in range(0, groups, step)]


class _GroupNormAct(torch.autograd.Function):
    """GroupNorm (+ SiLU) on a bf16/fp16 input: float32 arithmetic, output in the input's dtype,
    only the input kept for backward.

    Autocast on a GPU runs GroupNorm in float32: its input is copied up, its output
    and the SiLU after it are float32, and autograd keeps all three for backward
    (10 bytes per channel per pixel where a bf16 run needs 2). Here the statistics
    and the normalisation are float32 as there, but the output is cast back to the
    input's dtype, and backward recomputes the normalised value and the SiLU from
    the saved input and the per-group mean and 1/std. Both directions work through
    group-aligned channel slices (NORM_CHUNKS), so their float32 temporaries are a
    fraction of one full-size tensor: at the start of backward, where the peak is,
    a full-size float32 copy of the widest full-resolution layer would undo the saving.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, eps: float, act: bool):
        N, C = x.shape[:2]
        y = torch.empty_like(x)
        mean = x.new_empty((N, groups), dtype=torch.float32)
        rstd = x.new_empty((N, groups), dtype=torch.float32)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        for c0, c1, g0, g1 in _chunks(C, groups):
            xg = x[:, c0:c1].float()
            grouped = xg.reshape(N, g1 - g0, -1)
            var, mu = torch.var_mean(grouped, dim=2, unbiased=False)
            r = torch.rsqrt(var + eps)
            mean[:, g0:g1], rstd[:, g0:g1] = mu, r
            out = ((grouped - mu.unsqueeze(2)) * r.unsqueeze(2)).view_as(xg)
            out = out * weight[c0:c1].float().view(shape) + bias[c0:c1].float().view(shape)
            y[:, c0:c1] = F.silu(out) if act else out
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.act = act
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        N, C = x.shape[:2]
        groups = mean.shape[1]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        gx = torch.empty_like(x)
        gw = torch.zeros(C, dtype=torch.float32, device=x.device)
        gb = torch.zeros(C, dtype=torch.float32, device=x.device)
        reduce_dims = (0,) + tuple(range(2, x.dim()))
        for c0, c1, g0, g1 in _chunks(C, groups):
            xg = x[:, c0:c1].float()
            mu, r = mean[:, g0:g1].unsqueeze(2), rstd[:, g0:g1].unsqueeze(2)
            xhat = ((xg.reshape(N, g1 - g0, -1) - mu) * r).view_as(xg)
            del xg
            w = weight[c0:c1].float().view(shape)
            dy = grad[:, c0:c1].float()
            if ctx.act:  # d silu(y) / dy = s (1 + y (1 - s)), s = sigmoid(y)
                y = xhat * w + bias[c0:c1].float().view(shape)
                s = torch.sigmoid(y)
                dy = dy * (s * (1 + y * (1 - s)))
                del y, s
            gw[c0:c1] = (dy * xhat).sum(reduce_dims)
            gb[c0:c1] = dy.sum(reduce_dims)
            dxhat = (dy * w).reshape(N, g1 - g0, -1)
            del dy
            xhat = xhat.reshape(N, g1 - g0, -1)
            m1 = dxhat.mean(dim=2, keepdim=True)
            m2 = (dxhat * xhat).mean(dim=2, keepdim=True)
            gx[:, c0:c1] = (r * (dxhat - m1 - xhat * m2)).view(N, c1 - c0, *x.shape[2:])
        return gx, gw.to(weight.dtype), gb.to(bias.dtype), None, None, None


class _NativeGroupNormAct(torch.autograd.Function):
    """GroupNorm (+ SiLU) on a bf16/fp16 input through torch's own GroupNorm kernels, only the
    input kept for backward.

    `_GroupNormAct` spells the float32 arithmetic out in PyTorch operators: one training step of
    the seed model then moves about 27 KB per pixel, mostly that arithmetic's elementwise
    temporaries (`bench/step_floor.py`), and an H200 ran it at 73 computed Mpx/s. The native
    kernels keep float32 statistics and arithmetic inside one kernel per direction and read and
    write the input's dtype: about 4.8 KB per pixel. The affine parameters enter in the input's
    dtype (the kernels take one dtype); their gradients are returned in float32. Backward
    recomputes the normalised value with one more forward kernel, so the SiLU's input is not kept.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, eps: float, act: bool):
        N, C = x.shape[:2]
        hw = x.numel() // max(1, N * C)
        w, b = weight.to(x.dtype), bias.to(x.dtype)
        out_format = _format(x)
        # CUDA's GroupNorm kernels take NCHW only (they raise "Expected X.is_contiguous(memory_format)"
        # on channels_last; the CPU kernels take either): the copy is kept for backward in x's place
        x = x.contiguous() if x.is_cuda else x
        y, mean, rstd = torch.ops.aten.native_group_norm(x, w, b, N, C, hw, groups, eps)
        ctx.save_for_backward(x, w, b, mean, rstd)
        ctx.meta = (groups, eps, act, weight.dtype, out_format)
        return (F.silu(y) if act else y).contiguous(memory_format=out_format)

    @staticmethod
    def backward(ctx, grad):
        x, w, b, mean, rstd = ctx.saved_tensors
        groups, eps, act, pdtype, out_format = ctx.meta
        N, C = x.shape[:2]
        hw = x.numel() // max(1, N * C)
        if act:
            y = torch.ops.aten.native_group_norm(x, w, b, N, C, hw, groups, eps)[0]
            grad = torch.ops.aten.silu_backward(grad.contiguous(memory_format=_format(y)), y)
            del y
        gx, gw, gb = torch.ops.aten.native_group_norm_backward(
            grad.contiguous(memory_format=_format(x)), x, mean, rstd, w, N, C, hw, groups, [True, True, True])
        return gx.contiguous(memory_format=out_format), gw.to(pdtype), gb.to(pdtype), None, None, None


def _format(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format


#: VeerNet's GroupNorm on a bf16/fp16 input: "native" (`_NativeGroupNormAct`, training and inference) or
#: "sliced" (`_GroupNormAct`, float32 arithmetic in PyTorch operators, training only), kept to compare:
#: bench/train_throughput.py's grid_sliced regime, bench/step_floor.py and bench/gpu_profile.py --norm
NORM_KERNEL = "native"


class GroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` with groups = min(C // 2, 16) and, when `act`, the SiLU after it.

    Statistics per image, so batch 1 is fine. On a bf16/fp16 input (autocast) it
    runs `_NativeGroupNormAct` (or, with NORM_KERNEL "sliced", `_GroupNormAct` in
    training): float32 statistics and arithmetic, output in the input's dtype,
    only the input kept for backward. On float32 it is torch's GroupNorm and SiLU.
    Parameters and state-dict keys are `nn.GroupNorm`'s, so checkpoints load either way.
    """

    def __init__(self, channels: int, act: bool = False) -> None:
        super().__init__(_groups(channels), channels)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        valid = _valid_at(x.shape[-2], x.shape[-1])
        if valid is not None:
            return _masked_group_norm(x, valid, self.num_groups, self.weight, self.bias, self.eps, self.act)
        if x.dtype in LOW_PRECISION and x.device.type != "meta":
            if NORM_KERNEL == "native":  # training and inference: bf16 in and out, float32 inside the kernel
                return _NativeGroupNormAct.apply(x, self.weight, self.bias, self.num_groups, self.eps, self.act)
            if torch.is_grad_enabled():
                return _GroupNormAct.apply(x, self.weight, self.bias, self.num_groups, self.eps, self.act)
        y = F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return (F.silu(y) if self.act else y).to(x.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", act=SiLU" if self.act else "")


def gn(channels: int, act: bool = False) -> GroupNorm:
    """GroupNorm with groups = min(C // 2, 16), SiLU fused after it when `act`.

    GroupNorm needs C divisible by the group count; for widths where min(C // 2, 16)
    does not divide C (e.g. 40) the largest divisor below it is used instead.
    """
    return GroupNorm(channels, act)


# SiLU rather than GELU in the convolutions: smooth like GELU (no dead units on
# faint ink, the failure LeakyReLU was patched around) but cheaper, and fused
# by inductor on every backend. The transformer MLP keeps GELU, its convention.
Act = nn.SiLU


class ConvNormAct(nn.Sequential):
    """conv kxk -> GroupNorm -> SiLU (one fused op). Shape: (B, cin, H, W) -> (B, cout, H / stride, W / stride)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            gn(cout, act=True),
        )


class ResidualDown(nn.Module):
    """Residual block that halves H and W.

    Main path: strided conv3x3-GN-SiLU, conv3x3-GN; shortcut: strided conv1x1-GN;
    SiLU after the sum.

    Shape:
        - Input: (B, cin, H, W), H and W even
        - Output: (B, cout, H / 2, W / 2)
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, 3, stride=2)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = gn(cout)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), gn(cout))
        self.act = Act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm2(self.conv2(self.conv1(x))) + self.shortcut(x))


class Encoder(nn.Module):
    """Full-resolution stem, then one stride-2 residual block per width.

    Shape:
        - Input: (B, in_channels, H, W)
        - Output: list of len(widths) + 1 feature maps, finest first:
          (B, stem_width, H, W), (B, widths[0], H/2, W/2), ..., (B, widths[-1], H/2**n, W/2**n)
    """

    def __init__(self, cfg: VeerNetConfig) -> None:
        super().__init__()
        self.checkpointing = cfg.checkpointing
        self.stem = ConvNormAct(cfg.in_channels, cfg.stem_width)
        cins = (cfg.stem_width, *cfg.widths[:-1])
        self.blocks = nn.ModuleList(ResidualDown(cin, cout) for cin, cout in zip(cins, cfg.widths))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [_maybe_checkpoint(self.stem, self.checkpointing and self.training, x)]
        for block in self.blocks:
            features.append(_maybe_checkpoint(block, self.checkpointing and self.training, features[-1]))
        return features


class TransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer on tokens; attention by fused SDPA.

    LayerNorm here, not GroupNorm: it normalises each token over its channels,
    which is per image (batch-1 safe) and the standard for transformers.

    Shape:
        - Input: (B, N, D) tokens
        - Output: (B, N, D)
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """keys: optional (B, N) bool, the tokens attention may read (the others are padding)."""
        B, N, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if keys is None else keys[:, None, None, :]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(attn.transpose(1, 2).reshape(B, N, D))
        return x + self.mlp(self.norm2(x))


class Bottleneck(nn.Module):
    """Self-attention over the lowest-resolution grid, where it is affordable.

    Positional information comes from a depthwise 3x3 convolution added before
    the tokens are flattened (conditional positional encoding, Chu et al. 2021):
    it works for any H and W without tables, interpolation or shape-dependent
    arithmetic, so nothing breaks the compiled graph, and its zero padding tells
    tokens where the image edges are.

    Shape:
        - Input: (B, D, h, w) with D = widths[-1]
        - Output: (B, D, h, w)
    """

    def __init__(self, cfg: VeerNetConfig) -> None:
        super().__init__()
        dim = cfg.widths[-1]
        self.layers = nn.ModuleList(
            TransformerLayer(dim, cfg.attn_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.attn_layers)
        )
        # No parameters that forward skips (attn_layers=0): DDP rejects unused ones.
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim) if self.layers else nn.Identity()
        self.norm = nn.LayerNorm(dim) if self.layers else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.layers:
            return x
        B, D, h, w = x.shape
        tokens = (x + self.pos(x)).flatten(2).transpose(1, 2)  # (B, h*w, D)
        valid = _valid_at(h, w)
        keys = None if valid is None else _region_mask(valid, h, w, x.device).reshape(B, h * w)
        for layer in self.layers:
            tokens = layer(tokens, keys)
        out = self.norm(tokens).transpose(1, 2).reshape(B, D, h, w)
        return out if keys is None else out * keys.reshape(B, 1, h, w).to(out.dtype)


#: CUDA's channels-last nearest-upsample kernels index with 32-bit integers: on an H200 the backward
#: of a batch of 16 widest logs (16 x 24 x 640 x 11,424 elements) raised "upsample_nearest_nhwc only
#: supports grad_output tensors with less than INT_MAX elements"
INT32_ELEMENTS = 2**31 - 1


def upsample2x(x: torch.Tensor, broadcast: bool | None = None) -> torch.Tensor:
    """x2 nearest upsample. Past INT32_ELEMENTS output elements (or with `broadcast=True`) it is the
    same copy written as a broadcast, whose backward is a sum that PyTorch splits for 32-bit indexing;
    the memory format (channels-last or not) is kept."""
    n, c, h, w = x.shape
    if broadcast is None:
        broadcast = 4 * x.numel() > INT32_ELEMENTS
    if not broadcast:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    if _format(x) is torch.channels_last:
        y = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, h, 2, w, 2, c)
        return y.reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


class UpStage(nn.Module):
    """x2 nearest upsample, concatenate the U-Net skip, two conv3x3-GN-SiLU.

    Nearest, not bilinear: the skip carries the fine detail, and nearest is exact
    and cheapest on every backend.

    Shape:
        - Input: x (B, cin, h, w), skip (B, cskip, 2h, 2w)
        - Output: (B, cout, 2h, 2w)
    """

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(ConvNormAct(cin + cskip, cout), ConvNormAct(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = upsample2x(x)
        # conv(cat(x, skip)) as conv(x) + conv(skip) over the two slices of the one weight: the
        # same function and parameters, but autograd keeps x and the skip (which the encoder
        # keeps anyway) instead of a new full-size concatenation
        first = self.convs[0]
        conv, cin = first[0], x.shape[1]
        y = (F.conv2d(x, conv.weight[:, :cin], padding=conv.padding)
             + F.conv2d(skip, conv.weight[:, cin:], padding=conv.padding))
        return self.convs[1](first[1](y))


class Decoder(nn.Module):
    """One UpStage per encoder block, coarsest first; the stem features are the last skip.

    Shape:
        - Input: bottleneck output (B, widths[-1], H/2**n, W/2**n) and the encoder
          features (finest first, as returned by `Encoder`)
        - Output: (B, stem_width, H, W)
    """

    def __init__(self, cfg: VeerNetConfig) -> None:
        super().__init__()
        self.checkpointing = cfg.checkpointing
        # Coarsest first; each stage returns to its skip's width, so the last
        # stage (stem skip) ends at stem_width, full resolution.
        skips = (cfg.stem_width, *cfg.widths[:-1])[::-1]
        cins = (cfg.widths[-1], *skips[:-1])
        self.stages = nn.ModuleList(UpStage(cin, c, c) for cin, c in zip(cins, skips))

    def forward(self, x: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        last = len(self.stages) - 1
        for i, (stage, skip) in enumerate(zip(self.stages, features[-2::-1])):
            # not the last (full-resolution) stage: backward starts there, at the memory peak, so
            # recomputing it would put back at the peak what checkpointing took out of it
            x = _maybe_checkpoint(stage, self.checkpointing and self.training and i < last, x, skip)
        return x


def _maybe_checkpoint(module: nn.Module, enabled: bool, *args: torch.Tensor) -> torch.Tensor:
    # Non-reentrant checkpointing: works with autocast, torch.compile and inputs
    # that do not require grad (the reentrant variant silently drops their grads).
    if enabled:
        return checkpoint(module, *args, use_reentrant=False)
    return module(*args)


# --------------------------------------------------------------------------- network


class VeerNet(nn.Module):
    """Segment curve pixels in a grayscale well-log scan.

    Encoder (stem + len(widths) stride-2 residual blocks), transformer
    bottleneck, U-Net decoder, 1x1 head. Feed it `normalize_image` output
    (ink ~1, paper 0) padded by `pad_collate`.

    Shape:
        - Input: (B, in_channels, H, W) float; H and W multiples of `multiple` (32 by default)
        - Output: (B, num_classes, H, W) logits
    """

    # Parameter-name prefixes that make up the backbone shared across stages.
    BACKBONE_PREFIXES = ("encoder.", "bottleneck.")

    def __init__(self, cfg: VeerNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or VeerNetConfig()
        self.encoder = Encoder(self.cfg)
        self.bottleneck = Bottleneck(self.cfg)
        self.decoder = Decoder(self.cfg)
        self.head = nn.Conv2d(self.cfg.stem_width, self.cfg.num_classes, 1)

    @property
    def multiple(self) -> int:
        return self.cfg.multiple

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """valid: optional (B, 2) (H, W) of each image's own region (top-left; the rest is batch padding).
        GroupNorm statistics and attention then ignore the padding, and every normalised feature is 0
        outside the region (what a convolution reads beyond an image's edge), so inside its region an
        image's output is what it is alone in a tensor of the region's size, whatever it was batched
        with. The region's sides must be multiples of `multiple` for that to be exact.
        None, or a region that fills the input: the plain network."""
        self._check_input(x)
        if valid is not None:
            valid = torch.as_tensor(valid, dtype=torch.long).reshape(-1, 2)
            if bool((valid[:, 0] < x.shape[-2]).any() or (valid[:, 1] < x.shape[-1]).any()):
                with valid_region(valid.cpu(), (x.shape[-2], x.shape[-1])):
                    return self._forward(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        x = self.bottleneck(features[-1])
        x = self.decoder(x, features)
        return self.head(x)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"VeerNet expects input of shape (B, {self.cfg.in_channels}, H, W); got {tuple(x.shape)}"
            )
        m = self.multiple
        H, W = x.shape[-2], x.shape[-1]
        if H % m or W % m:
            Hp, Wp = -(-H // m) * m, -(-W // m) * m
            raise ValueError(
                f"VeerNet needs H and W to be multiples of {m}; got ({H}, {W}): "
                f"pad to ({Hp}, {Wp}) (veernet_ray.data.pad_collate does this)"
            )

    def load_backbone_from(self, state_dict: Mapping[str, torch.Tensor], everything: bool = False) -> list[str]:
        """Copy encoder (stem + blocks) and bottleneck weights from another VeerNet.

        Used to start stage 2 (3 classes) from stage 1 (binary). Keys outside the
        backbone (decoder, head) and keys whose shape differs are skipped, so a
        model of another width loads what fits. Prefixes added by torch.compile
        (`_orig_mod.`) and DDP (`module.`) are stripped first. With `everything`,
        decoder and head tensors load too where their shapes match (continuing a
        stage from a model of the same architecture).

        Returns:
            The sorted list of parameter/buffer names that were loaded.
        """
        own = self.state_dict()
        loaded: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            for prefix in ("_orig_mod.", "module."):
                if key.startswith(prefix):
                    key = key[len(prefix) :]
            if (everything or key.startswith(self.BACKBONE_PREFIXES)) and key in own and own[key].shape == value.shape:
                loaded[key] = value
        self.load_state_dict(loaded, strict=False)
        return sorted(loaded)


# --------------------------------------------------------------------------- builders


def build_model(cfg: VeerNetConfig | None = None) -> VeerNet:
    """Build a VeerNet from its config (default config when None)."""
    return VeerNet(cfg or VeerNetConfig())


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (of all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
