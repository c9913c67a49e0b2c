"""The two floors of a VeerNet step: bytes moved and operations done, per pixel, counted on any device.

METHOD.md's "two numbers first" for issue 13: every operator of one real step (bf16
autocast, channels_last, VeerNet's own GroupNorm, AdamW for training) runs under a
dispatch mode that adds up the bytes each operator reads and writes (every tensor
argument read once, every result written once: the fewest bytes a kernel could
move) and, through `torch.utils.flop_counter`, the floating-point operations of
convolutions, matrix products and attention. Divided by the pixels of the batch,
they give bytes/px and FLOP/px; over a GPU's measured ceilings they give the
fastest a step could run, to set beside the measured rate.

    PYTHONPATH=. .venv/bin/python bench/step_floor.py                  # seed model, 1 x 640 x 2048
    PYTHONPATH=. .venv/bin/python bench/step_floor.py --measured-train-mpx 72 --measured-infer-mpx 40

The per-pixel figures hardly depend on the size: the network is convolutional, and
the attention's share (tokens at 1/32 of each side) is printed on its own. One
difference from a GPU: attention runs through the CPU's math path, which
materialises its score matrices; flash attention on a GPU does not.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from veernet_ray.model import VeerNet, VeerNetConfig  # noqa: E402

#: operators that move no data (views, metadata)
NO_DATA = {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "slice", "select", "unsqueeze",
           "squeeze", "as_strided", "detach", "alias", "split", "split_with_sizes", "unbind", "chunk", "empty",
           "empty_like", "empty_strided", "lift_fresh", "_to_copy_noop", "is_same_size", "new_empty",
           "new_empty_strided", "set_", "resize_", "_reshape_alias", "zeros_like_meta"}
#: H200 ceilings measured on this workplace's machines (device KINDS.md, 2026-10-28/11-04)
H200 = {"bytes_per_s": 4.3e12, "flop_per_s": 790e12}


class ByteTraffic(TorchDispatchMode):
    """Bytes read (tensor arguments) and written (results) per aten operator, views excluded."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name not in NO_DATA:
            moved = sum(t.numel() * t.element_size() for t in tree_flatten((args, kwargs or {}))[0]
                        if isinstance(t, torch.Tensor))
            moved += sum(t.numel() * t.element_size() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
            self.bytes[name] += moved
            self.calls[name] += 1
        return out


def count(model: VeerNet, batch: int, height: int, width: int, *, train: bool, num_classes: int = 3):
    """(bytes by operator, calls by operator, FLOPs by operator) of one step."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, height, width, generator=g).contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, num_classes, (batch, height, width), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True) if train else None
    traffic, flops = ByteTraffic(), FlopCounterMode(display=False)
    with flops, traffic:
        if train:
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
            loss.backward()
            opt.step()
        else:
            model.eval()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(x)
                (torch.softmax(logits.float(), 1) * 255).round_().to(torch.uint8)
    by_op = {str(k).split(".")[-1]: v for k, v in flops.get_flop_counts().get("Global", {}).items()}
    return dict(traffic.bytes), dict(traffic.calls), by_op


def report(name: str, px: int, moved: dict, calls: dict, flop: dict, measured_mpx: float | None) -> list[str]:
    total_b, total_f = sum(moved.values()), sum(flop.values())
    t_bytes, t_flop = total_b / H200["bytes_per_s"], total_f / H200["flop_per_s"]
    floor_mpx = px / max(t_bytes, t_flop) / 1e6
    lines = [f"### {name}", "",
             f"- {total_b / px:,.0f} bytes/px and {total_f / px:,.0f} FLOP/px over {sum(calls.values()):,} operators",
             f"- H200 floor (4.3 TB/s, 790 TFLOP/s): bytes {px / t_bytes / 1e6:,.0f} Mpx/s, "
             f"FLOPs {px / t_flop / 1e6:,.0f} Mpx/s; the step is bound by "
             f"{'bytes' if t_bytes > t_flop else 'arithmetic'} at **{floor_mpx:,.0f} computed Mpx/s**"]
    if measured_mpx:
        lines.append(f"- Measured: {measured_mpx:g} computed Mpx/s, **{floor_mpx / measured_mpx:.0f}x** under the "
                     "floor")
    lines += ["", "| operator | calls | bytes/px | share of bytes | FLOP/px |", "|---|---|---|---|---|"]
    for op, b in sorted(moved.items(), key=lambda kv: -kv[1])[:14]:
        lines.append(f"| {op} | {calls[op]} | {b / px:,.0f} | {b / total_b:.1%} | {flop.get(op, 0) / px:,.0f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--height", type=int, default=640)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--widths", default=None, help="encoder widths, e.g. 12,16,32,64,128 (default: the seed model)")
    p.add_argument("--stem-width", type=int, default=None)
    p.add_argument("--norm", choices=("native", "sliced"), default="native",
                   help="VeerNet's GroupNorm kernel on bf16 (model.veernet.NORM_KERNEL): torch's native GroupNorm "
                        "kernels, or float32 arithmetic in PyTorch operators over channel slices (default: "
                        "%(default)s)")
    p.add_argument("--smoke-test", action="store_true", help="tiny model and size: the code path only")
    p.add_argument("--measured-train-mpx", type=float, help="a measured training rate to compare, computed Mpx/s")
    p.add_argument("--measured-infer-mpx", type=float, help="a measured inference rate to compare, computed Mpx/s")
    args = p.parse_args(argv)
    kw = {}
    if args.smoke_test:
        args.height, args.width, args.widths, args.stem_width = 64, 256, "8,16,16,32,32", 8
    if args.widths:
        kw["widths"] = tuple(int(w) for w in args.widths.split(","))
    if args.stem_width:
        kw["stem_width"] = args.stem_width
    from veernet_ray.model import veernet

    veernet.NORM_KERNEL = args.norm
    # counting needs no fast kernel, and oneDNN's AVX-512 bf16 backward of a strided 1x1 channels_last
    # convolution corrupts the heap on some CPUs (torch 2.13, an AMD EPYC with avx512_bf16): take
    # torch's own kernels, which run the same operators
    torch.backends.mkldnn.enabled = False
    torch.manual_seed(0)
    model = VeerNet(VeerNetConfig(num_classes=3, **kw)).to(memory_format=torch.channels_last)
    px = args.batch * args.height * args.width
    lines = [f"Model widths {model.cfg.widths}, stem {model.cfg.stem_width}; {args.batch} x {args.height} x "
             f"{args.width}, bf16 autocast, channels_last, GroupNorm {args.norm}", ""]
    lines += report("Training step (forward, backward, AdamW)", px, *count(model, args.batch, args.height, args.width,
                                                                         train=True), args.measured_train_mpx)
    lines += report("Inference (forward, softmax, uint8)", px, *count(model, args.batch, args.height, args.width,
                                                                    train=False), args.measured_infer_mpx)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
