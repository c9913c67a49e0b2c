"""The weights that ship in the package: `veernet.pt` plus its model card `veernet.json`.

`veernet infer` and `veernet evaluate` use them when no checkpoint is given.
`export_weights` turns a training checkpoint into the shipped file: model
weights, model and run config and the training history only (no optimiser
state), loaded like every checkpoint with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHIPPED = HERE / "veernet.pt"
CARD = HERE / "veernet.json"
#: the package must stay small: the shipped file may not exceed this
MAX_BYTES = 10 * 2**20


def shipped_checkpoint() -> Path | None:
    """The shipped weights file, or None when this build ships none."""
    return SHIPPED if SHIPPED.is_file() else None


def model_card() -> dict[str, Any]:
    """The shipped model's card (data, config, command, device, figures); {} when there is none."""
    return json.loads(CARD.read_text(encoding="utf-8")) if CARD.is_file() else {}


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_weights(checkpoint: str | os.PathLike, dest: str | os.PathLike = SHIPPED, *,
                   card: dict[str, Any] | None = None) -> Path:
    """Write the inference-only part of `checkpoint` to `dest` (atomically) and its card beside it."""
    import torch

    from veernet_ray.io import atomic_path
    from veernet_ray.model.checkpoint import load_payload, model_from_payload

    payload = load_payload(checkpoint)
    model_from_payload(payload)  # refuse anything that does not load as a VeerNet
    keep = {k: payload[k] for k in ("model", "model_config", "config", "history", "epoch") if k in payload}
    dest = Path(dest)
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        # to a file object, not a path: torch.save names its zip records after the path it writes,
        # here a temporary one, so the same weights hashed differently on every export
        torch.save(keep, fh)
    size = dest.stat().st_size
    if size > MAX_BYTES:
        dest.unlink()
        raise ValueError(f"{dest}: {size / 2**20:.1f} MiB is over the {MAX_BYTES / 2**20:.0f} MiB the package may ship")
    full = {**(card or {}), "file": dest.name, "sha256": sha256(dest), "bytes": size}
    with atomic_path(dest.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(full, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return dest
