"""`veernet model-info`: parameter count and layer table of a VeerNet.

Shapes come from one forward pass on the meta device: no memory is allocated
and no arithmetic runs, so a 640 x 12,800 input costs nothing on any machine.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from veernet_ray.cli import HelpFormatter
from veernet_ray.model.veernet import (
    Bottleneck,
    ResidualDown,
    TransformerLayer,
    UpStage,
    VeerNet,
    VeerNetConfig,
    build_model,
    count_parameters,
)

__all__ = ["layer_table", "main"]

# The rows of the default table: the blocks the architecture is described in.
_BLOCKS = (ResidualDown, Bottleneck, TransformerLayer, UpStage)
_NAMED = ("encoder.stem", "head")


def _parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be comma-separated ints, e.g. 24,32,64,96,128; got {text!r}")
    if not widths:
        raise argparse.ArgumentTypeError("widths needs at least one int")
    return widths


def layer_table(
    model: VeerNet, height: int, width: int, batch: int = 1, all_layers: bool = False
) -> tuple[list[tuple[str, str, tuple[int, ...], int]], int]:
    """Run a meta-device forward and record each module's output shape.

    Args:
        model: any VeerNet (its weights are not used; a meta-device copy is built).
        height, width: input size; must be multiples of `model.multiple`.
        batch: batch size of the shapes.
        all_layers: every leaf module instead of the architectural blocks.

    Returns:
        (rows, activation_elements): rows of (name, type, output shape, parameters),
        in execution order, and the summed output elements of all leaf modules, a
        rough count of what autograd keeps for backward at this input.
    """
    with torch.device("meta"):
        meta_model = build_model(model.cfg)
    meta_model.train()
    rows: list[tuple[str, str, tuple[int, ...], int]] = []
    leaf_elements = [0]
    hooks = []
    for name, module in meta_model.named_modules():
        is_leaf = not any(True for _ in module.children())
        shown = (is_leaf if all_layers else isinstance(module, _BLOCKS) or name in _NAMED) and name

        def hook(mod: nn.Module, _inp, out, name=name, shown=shown, is_leaf=is_leaf) -> None:
            if not isinstance(out, torch.Tensor):
                return
            if is_leaf:
                leaf_elements[0] += out.numel()
            if shown:
                rows.append((name, type(mod).__name__, tuple(out.shape), count_parameters(mod)))

        hooks.append(module.register_forward_hook(hook))
    try:
        meta_model(torch.empty(batch, model.cfg.in_channels, height, width, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return rows, leaf_elements[0]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="veernet model-info",
        description=(
            "Print VeerNet's parameter count (and fp32 size) and a layer table with each block's "
            "output shape for a given input. Shapes come from a meta-device pass, so any input size is instant."
        ),
        formatter_class=HelpFormatter,
    )
    d = VeerNetConfig()
    p.add_argument("--classes", type=int, choices=(2, 3), default=d.num_classes,
                   help="output classes: 2 = binary stage (background, curve), 3 = multiclass stage")
    p.add_argument("--widths", type=_parse_widths, default=",".join(map(str, d.widths)),
                   help="encoder block widths, comma-separated; one stride-2 block each, last = attention width")
    p.add_argument("--stem-width", type=int, default=d.stem_width, help="channels of the full-resolution stem")
    p.add_argument("--attn-layers", type=int, default=d.attn_layers, help="transformer layers in the bottleneck")
    p.add_argument("--attn-heads", type=int, default=d.attn_heads, help="attention heads (must divide the last width)")
    p.add_argument("--height", type=int, default=640, help="input height in pixels (multiple of 2**len(widths))")
    p.add_argument("--width", type=int, default=12800, help="input width (depth axis) in pixels")
    p.add_argument("--batch", type=int, default=1, help="batch size for the shapes and the activation estimate")
    p.add_argument("--all", action="store_true", help="list every leaf layer instead of the architectural blocks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = VeerNetConfig(
            num_classes=args.classes,
            widths=args.widths,
            stem_width=args.stem_width,
            attn_layers=args.attn_layers,
            attn_heads=args.attn_heads,
        )
        model = build_model(cfg)
        model._check_input(torch.empty(args.batch, cfg.in_channels, args.height, args.width, device="meta"))
    except ValueError as e:
        print(f"veernet model-info: {e}", file=sys.stderr)
        return 2

    total = count_parameters(model)
    rows, activations = layer_table(model, args.height, args.width, args.batch, all_layers=args.all)
    print(f"VeerNet  classes={cfg.num_classes}  stem={cfg.stem_width}  widths={','.join(map(str, cfg.widths))}  "
          f"attn_layers={cfg.attn_layers}x{cfg.attn_heads} heads  multiple={cfg.multiple}")
    print(f"parameters: {total:,} ({total * 4 / 2**20:.2f} MiB in fp32)")
    print(f"input: ({args.batch}, {cfg.in_channels}, {args.height}, {args.width}); "
          f"attention tokens: {(args.height // cfg.multiple) * (args.width // cfg.multiple):,} per image")
    print(f"leaf-layer outputs (rough activation memory for training, fp32): {activations * 4 / 2**30:.2f} GiB")
    print()
    name_w = max(len("module"), *(len(r[0]) for r in rows))
    type_w = max(len("type"), *(len(r[1]) for r in rows))
    shape_w = max(len("output shape"), *(len(str(r[2])) for r in rows))
    print(f"{'module':<{name_w}}  {'type':<{type_w}}  {'output shape':<{shape_w}}  {'params':>10}")
    print("-" * (name_w + type_w + shape_w + 16))
    for name, kind, shape, params in rows:
        print(f"{name:<{name_w}}  {kind:<{type_w}}  {str(shape):<{shape_w}}  {params:>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
