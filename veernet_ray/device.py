"""Device helpers shared by training, inference and planning: precision and memory."""

from __future__ import annotations

import contextlib

import torch


def autocast_for(device: torch.device | str, amp: str):
    """bf16 autocast on GPU by default ("auto"); float32 on CPU unless asked ("bf16")."""
    device = torch.device(device)
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by this process, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
