"""Peak tensor memory of a real training step, counted on any device (issue 13, item 2).

`LiveBytes` is a dispatch mode that sees every tensor an operator returns and
follows its storage until Python frees it, so it knows the bytes alive after
every operator of forward *and* backward: the same quantity
`torch.cuda.max_memory_allocated` reports on a GPU, less the caching allocator's
rounding. On a CPU it runs the real step at the real dtypes, so a memory lever
(a bf16 GroupNorm, activation checkpointing, a split concatenation) can be
measured exactly before a GPU is at hand.

One difference from a GPU is the precision policy: a GPU's autocast runs
`group_norm` in float32, a CPU's in bf16. VeerNet's own GroupNorm fixes its
dtype on every device, so its figures transfer; `cuda_autocast_groupnorm`
reproduces the GPU policy for torch's GroupNorm (the reference in
`bench/activation_memory.py`).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["LiveBytes", "step_peak_bytes", "cuda_autocast_groupnorm"]


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage alive, and their peak, over the operators run inside the mode.

    Storages that exist before the mode starts (parameters, inputs) are not counted;
    gradients and optimiser state created inside are.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._alive: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key = id(storage)
                if key in self._alive:
                    continue
                self._alive.add(key)
                size = storage.nbytes()
                self.live += size
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._freed, key, size)
        return out

    def _freed(self, key: int, size: int) -> None:
        if key in self._alive:
            self._alive.discard(key)
            self.live -= size


def step_peak_bytes(model: torch.nn.Module, batch: int, height: int, width: int, *, num_classes: int,
                    amp: str = "bf16", seed: int = 0) -> int:
    """Peak bytes of one forward + backward of `model` on a (batch, 1, height, width) input.

    bf16 autocast on the model's device when `amp` is "bf16"; the loss is cross-entropy in
    float32 over every pixel, as the trainer casts logits up before its losses.
    """
    device = next(model.parameters()).device
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.rand(batch, 1, height, width, generator=g).to(device)
    target = torch.randint(0, num_classes, (batch, height, width), generator=g).to(device)
    model.zero_grad(set_to_none=True)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext()
    with LiveBytes() as live:
        with ctx:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), target)
        loss.backward()
        del logits, loss
    model.zero_grad(set_to_none=True)
    return live.peak


@contextlib.contextmanager
def cuda_autocast_groupnorm() -> Iterator[None]:
    """Within the block, torch's `F.group_norm` follows a GPU autocast's policy on any device:
    a low-precision input is cast up and the float32 output is kept (the SiLU after it then
    runs in float32 too)."""
    original = F.group_norm

    def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
        if x.dtype in (torch.float16, torch.bfloat16):
            with torch.autocast(x.device.type, enabled=False):
                return original(x.float(), num_groups, weight, bias, eps)
        return original(x, num_groups, weight, bias, eps)

    F.group_norm = group_norm
    try:
        yield
    finally:
        F.group_norm = original
