"""Training memory per image, before and after issue 13's memory levers, counted exactly on any device.

    .venv/bin/python bench/activation_memory.py                 # the seed model, bf16 autocast
    .venv/bin/python bench/activation_memory.py --config configs/ship.yaml
    .venv/bin/python bench/activation_memory.py --smoke-test    # the demo model at tiny sizes

For each variant it runs real forward + backward steps of one image at two
sizes under `veernet_ray.plan.memory.LiveBytes` (every tensor storage alive
after every operator, backward included), takes the bytes per pixel as the
slope between them, and projects the peak for the widest log (640 x 12,800)
at batches 1, 4, 8 and 16. The variants:

- before: torch's GroupNorm then SiLU under a GPU autocast's policy (GroupNorm
  in float32, `cuda_autocast_groupnorm`), and the decoder's concatenation, as
  the model was before issue 13;
- after: VeerNet's GroupNorm (bf16 in and out, SiLU fused, only its input kept)
  and the split concatenation, with either kernel: "sliced" (float32 arithmetic
  in PyTorch operators over channel slices) or "native" (torch's GroupNorm
  kernels, the default: far fewer bytes moved, bench/step_floor.py);
- + checkpointing: the same with `model.checkpointing` (stem, encoder blocks,
  every decoder stage but the last).

What each variant computes is the same function; the test suite checks the
outputs and gradients agree (tests/test_memory.py). These are counts of live
tensor bytes, not `torch.cuda.max_memory_allocated`: the caching allocator adds
its rounding on a GPU, and cuDNN its workspaces.
"""

from __future__ import annotations

import argparse
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn

WIDEST = (640, 12_800)
BATCHES = (1, 4, 8, 16)


def reference(model):
    """`model` (a VeerNet) rebuilt as before issue 13: torch GroupNorm + SiLU modules, concatenation."""
    from veernet_ray.model.veernet import GroupNorm, UpStage

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, GroupNorm):
                norm = nn.GroupNorm(child.num_groups, child.num_channels, child.eps)
                norm.weight, norm.bias = child.weight, child.bias
                setattr(module, name, nn.Sequential(norm, nn.SiLU()) if child.act else norm)

    def cat_forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.convs(torch.cat([x, skip], dim=1))

    for module in model.modules():
        if isinstance(module, UpStage):
            module.forward = types.MethodType(cat_forward, module)
    return model


def per_pixel(model, sizes, num_classes: int, amp: str) -> tuple[float, float]:
    """(bytes per pixel, fixed bytes) from peaks at two sizes."""
    from veernet_ray.plan.memory import cuda_autocast_groupnorm, step_peak_bytes

    (h1, w1), (h2, w2) = sizes
    with cuda_autocast_groupnorm():
        p1 = step_peak_bytes(model, 1, h1, w1, num_classes=num_classes, amp=amp)
        p2 = step_peak_bytes(model, 1, h2, w2, num_classes=num_classes, amp=amp)
    slope = (p2 - p1) / (h2 * w2 - h1 * w1)
    return slope, p1 - slope * h1 * w1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None,
                   help="run config whose model: section to measure (default configs/seed.yaml; "
                        "with --smoke-test configs/demo.yaml: bf16 on a CPU is slow, and the smoke test is the code path only)")
    p.add_argument("--amp", choices=("bf16", "off"), default="bf16", help="precision (a GPU run's default: bf16)")
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes: the code path only")
    args = p.parse_args(argv)

    from veernet_ray.config import load_config
    from veernet_ray.model import VeerNet, count_parameters, model_config

    args.config = args.config or ("configs/demo.yaml" if args.smoke_test else "configs/seed.yaml")
    cfg = load_config(args.config)
    net_cfg = model_config(cfg)
    m = net_cfg.multiple
    sizes = ((m, 4 * m), (2 * m, 8 * m)) if args.smoke_test else ((2 * m, 16 * m), (4 * m, 32 * m))
    torch.manual_seed(0)
    ckpt_cfg = type(net_cfg)(**{**net_cfg.__dict__, "checkpointing": True})
    variants = {  # name: (model, VeerNet's GroupNorm kernel)
        "before (torch GroupNorm+SiLU in fp32, concat)": (reference(VeerNet(net_cfg).train()), "native"),
        "after, sliced fp32 GroupNorm (split concat)": (VeerNet(net_cfg).train(), "sliced"),
        "after, native GroupNorm kernels (split concat)": (VeerNet(net_cfg).train(), "native"),
        "after, sliced + checkpointing": (VeerNet(ckpt_cfg).train(), "sliced"),
        "after, native + checkpointing": (VeerNet(ckpt_cfg).train(), "native"),
    }
    px = WIDEST[0] * WIDEST[1]
    print(f"model {args.config} ({count_parameters(variants['after, native + checkpointing'][0]) / 1e6:.2f} M parameters), "
          f"amp {args.amp}, sizes {sizes[0]} and {sizes[1]}; widest log {WIDEST[0]} x {WIDEST[1]}")
    print("| variant | bytes / pixel | GiB / widest image | " + " | ".join(f"batch {b}" for b in BATCHES) + " | vs before |")
    print("|---|---|---|" + "---|" * len(BATCHES) + "---|")
    base = None
    from veernet_ray.model import veernet

    for name, (model, kernel) in variants.items():
        veernet.NORM_KERNEL = kernel
        slope, fixed = per_pixel(model, sizes, net_cfg.num_classes, args.amp)
        base = base or slope
        gib = [(slope * px * b + max(fixed, 0)) / 2**30 for b in BATCHES]
        print(f"| {name} | {slope:.0f} | {slope * px / 2**30:.2f} | " + " | ".join(f"{g:.1f}" for g in gib)
              + f" | {base / slope:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
