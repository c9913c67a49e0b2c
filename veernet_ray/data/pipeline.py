"""Ray Data pipelines for training and validation.

The driver plans micro-batches from the manifest's shapes (no pixels read),
and Ray Data decodes and collates each planned batch in CPU tasks, so one
dataset row is one padded micro-batch with its validity mask (the
collate-in-the-pipeline pattern). Pixels stay uint8 in the object store (a
12,800 x 640 log is 8 MB as uint8, 33 MB as float32); workers convert to
float on the device.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from veernet_ray.data.buckets import PaddingStats, plan_batches
from veernet_ray.data.collate import pad_collate, round_up
from veernet_ray.data.shapes import DeviceCost, ShapeGrid, plan_grid

#: how micro-batches are formed: a fixed shape grid (few shapes, full batches: a GPU's choice) or
#: height buckets capped at data.max_padding (least padding: a CPU's choice); "auto" picks by device
BATCHING = ("auto", "grid", "buckets")


@dataclass(frozen=True)
class Item:
    id: str
    image: str
    mask: str | None
    las: str | None
    calibration: str | None
    height: int
    width: int


def load_items(manifest: str | Path, split: str, limit: int | None = None) -> list[Item]:
    """Rows of one split of a manifest, paths made absolute."""
    from veernet_ray.data.manifest import read_manifest

    df = read_manifest(manifest)
    df = df[df["split"] == split]
    if limit is not None:
        df = df.head(limit)

    def opt(v: Any) -> str | None:
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    return [
        Item(str(r.id), str(r.image), opt(r.mask), opt(r.las), opt(r.calibration), int(r.height), int(r.width))
        for r in df.itertuples(index=False)
    ]


@dataclass(frozen=True)
class BatchPlan:
    batches: list[list[int]]  # item indices per micro-batch
    padding: PaddingStats
    pad_to: list[tuple[int, int]]  # padded (H, W) of each micro-batch: its grid cell, or its members' rounded max
    grid: ShapeGrid | None = None  # the shape grid, when the plan uses one

    @property
    def distinct_shapes(self) -> int:
        """Distinct (batch size, padded H, padded W) the device sees: each costs a warm-up on a GPU."""
        return len({(len(b), *s) for b, s in zip(self.batches, self.pad_to)})

    def fill(self, physical_batch: int) -> float:
        """Mean micro-batch size over the physical batch."""
        return float(np.mean([len(b) for b in self.batches])) / physical_batch if self.batches else 0.0

    def rows(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        return [
            {"batch": b, "items": json.dumps([items[i].__dict__ for i in members]),
             "pad_to": json.dumps(list(self.pad_to[b]))}
            for b, members in enumerate(self.batches)
        ]


def plan_split(
    items: Sequence[Item], physical_batch: int, *, multiple: int, num_workers: int = 1, bucketed: bool = True,
    max_padding: float = 0.03, seed: int = 0, grid: ShapeGrid | None = None, cost: DeviceCost | None = None,
) -> BatchPlan:
    """Micro-batches for one split; the count is made a multiple of `num_workers`.

    `multiple` is the model's padding multiple (`cfg.model.multiple`); it has no default
    so a pipeline cannot pad for another network than the one it feeds. With a `grid`
    (`data.shapes.choose_grid`), every item is padded to its grid cell and micro-batches
    fill to `physical_batch` inside a cell (`cost` prices the plan); else height buckets
    capped at `max_padding`.

    Every worker must take the same number of steps (DDP all-reduces each
    step). Rather than drop the tail, the first batches are visited once more
    to fill the last round; the number repeated is < num_workers.
    """
    shapes = [(it.height, it.width) for it in items]
    if grid is not None:
        from veernet_ray.data.shapes import GPU_COST

        gp = plan_grid(shapes, grid, physical_batch, cost or GPU_COST, seed=seed)
        batches, pad_to = gp.batches, gp.shapes
    else:
        batches = plan_batches(shapes, physical_batch, multiple=multiple, bucketed=bucketed, max_padding=max_padding,
                               seed=seed)
        pad_to = [(round_up(max(shapes[i][0] for i in b), multiple), round_up(max(shapes[i][1] for i in b), multiple))
                  for b in batches]
    if num_workers > 1 and batches and len(batches) % num_workers:
        extra = num_workers - len(batches) % num_workers
        batches, pad_to = batches + batches[:extra], pad_to + pad_to[:extra]
    real = sum(shapes[i][0] * shapes[i][1] for b in batches for i in b)
    rounded = sum(round_up(shapes[i][0], multiple) * round_up(shapes[i][1], multiple) for b in batches for i in b)
    computed = sum(len(b) * h * w for b, (h, w) in zip(batches, pad_to))
    return BatchPlan(batches, PaddingStats(real, rounded, computed), pad_to, grid)


def decode_batch(row: dict[str, Any], *, binary: bool, with_truth: bool, multiple: int) -> dict[str, Any]:
    """One planned micro-batch -> one pre-collated row (runs in a Ray Data CPU task)."""
    from veernet_ray.io import read_image

    members = [Item(**d) for d in json.loads(row["items"])]
    images = [read_image(it.image) for it in members]
    masks = [read_image(it.mask) for it in members] if all(it.mask for it in members) else None
    if masks is not None and binary:
        # binary stage: curve 1 and curve 2 merge into one "curve" class
        masks = [(m > 0).astype(np.uint8) for m in masks]
    pad_to = json.loads(row["pad_to"]) if row.get("pad_to") else None
    batch = pad_collate(images, masks, multiple=multiple, pad_to=tuple(pad_to) if pad_to else None)
    out: dict[str, Any] = {
        "image": batch["image"],
        "valid": batch["valid"],
        "shape": batch["shape"],
        "ids": json.dumps([it.id for it in members]),
    }
    if masks is not None:
        out["mask"] = batch["mask"]
    if with_truth:
        from veernet_ray.evaluate import truth_positions

        wp = batch["image"].shape[2]
        truth = np.full((len(members), 2, wp), np.nan, np.float32)
        wrap = np.full((len(members), 2), np.nan, np.float32)
        for b, it in enumerate(members):
            if it.las and it.calibration:
                try:
                    t = truth_positions(it.las, it.calibration, it.height, it.width)
                except (OSError, ValueError) as exc:  # SidecarError and LAS errors are ValueErrors
                    # one unreadable truth must not end a training run at its validation: the scan's masks
                    # still count, its curves (NaN truth) are left out of the curve metrics, and it says so
                    print(f"[veernet] {it.id}: truth unreadable ({exc}); its curves are left out of the "
                          "validation curve metrics (the masks still count). Fix or regenerate that sample.",
                          file=sys.stderr, flush=True)
                    continue
                truth[b, : t.positions.shape[0], : it.width] = t.positions
                wrap[b, : t.positions.shape[0]] = [np.nan if w is None else w for w in t.wrap_px]
        out["truth"] = truth
        out["wrap_px"] = wrap
    return out


def build_dataset(
    items: Sequence[Item], plan: BatchPlan, *, binary: bool, with_truth: bool, multiple: int, decode_cpus: float = 0.25
):
    """A Ray Dataset whose rows are the plan's pre-collated micro-batches, in plan order."""
    import ray.data

    rows = plan.rows(items)
    # one row per block so decode tasks spread across CPUs and stream to workers one batch at a time
    ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    return ds.map(
        decode_batch,
        fn_kwargs={"binary": binary, "with_truth": with_truth, "multiple": multiple},
        num_cpus=decode_cpus,
    )


def unwrap_row(batch: dict[str, Any]) -> dict[str, Any]:
    """`iter_batches(batch_size=1)` over pre-collated rows -> the row's own arrays.

    Variable-shaped tensor columns come back as object arrays of one element;
    fixed-shape ones as arrays with a leading axis of 1. Indexing [0] gives the
    row's array in both cases.
    """
    return {k: (v[0] if isinstance(v, np.ndarray) else v[0]) for k, v in batch.items()}
