"""Checkpoints: state dicts and plain config only, loaded with weights_only=True.

One file, `checkpoint.pt`, per Ray Train checkpoint directory. The same
format is what `veernet infer` loads and what the package ships, so there is
one loader.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch

from veernet_ray.model.veernet import VeerNet, VeerNetConfig

CHECKPOINT_FILE = "checkpoint.pt"
OVERLAYS_DIR = "overlays"  # a training checkpoint's validation overlays for its epoch, beside the weights


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP (`.module`) and torch.compile (`._orig_mod`)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_checkpoint(directory: str | Path, *, model: torch.nn.Module, **state: Any) -> Path:
    """Write `checkpoint.pt`: model weights, model config and any extra plain state."""
    net = unwrap(model)
    assert isinstance(net, VeerNet)
    payload = {
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "model_config": dataclasses.asdict(net.cfg),
        **state,
    }
    path = Path(directory) / CHECKPOINT_FILE
    torch.save(payload, path)
    return path


def load_payload(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file (or a directory holding one) safely."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; pass a checkpoint.pt or a Ray Train checkpoint folder")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a VeerNet checkpoint ({_load_reason(exc)}); give a checkpoint.pt written "
                         "by `veernet train`") from exc


def _load_reason(exc: BaseException) -> str:
    """torch's reason in one line, without its advice to retry with weights_only=False.

    That advice would run whatever code the file holds: a checkpoint with objects other
    than tensors and plain config is refused, never loaded unsafely.
    """
    text = str(exc)
    if "unsupported global" in text.lower():
        return "it holds Python objects other than tensors and plain config, which are never loaded"
    if "weights only load failed" in text.lower():
        return "unreadable: not a torch checkpoint file, or a damaged one"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln), "")
    return f"{type(exc).__name__}: {first[:200]}"


def model_from_payload(payload: dict[str, Any]) -> VeerNet:
    if "model" not in payload or "model_config" not in payload:
        raise ValueError("checkpoint lacks 'model' or 'model_config'; was it written by veernet train?")
    cfg = VeerNetConfig(**{**payload["model_config"], "checkpointing": False})
    model = VeerNet(cfg)
    model.load_state_dict(payload["model"])
    return model


def load_model(path: str | Path) -> tuple[VeerNet, dict[str, Any]]:
    """(model in eval mode on CPU, the rest of the checkpoint payload)."""
    payload = load_payload(path)
    model = model_from_payload(payload)
    model.eval()
    return model, payload


def weights_hash(path: str | Path) -> str:
    """Short content hash of a checkpoint file, for provenance in LAS ~P."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]
