"""The three Ray Data stages of `veernet infer`: decode (CPU), model (actor pool), write (CPU).

Each stage takes and returns one dict per scan and never raises for a bad
scan: a failure becomes `status="error"` with a `kind` and a `message`, and
later stages pass such rows through untouched. Pixels cross the object store
as uint8 (the scan) and quantised uint8 probabilities (C x H x W, 0-255),
4x smaller than float32: a 12,800 x 640 scan is 8 MB in, 25 MB out.

Row fields (see `listing.Item`): id, path, las_out, height, width (canonical),
orig_height, orig_width, orientation, sidecar_json, truth_las; added here:
status ("ok" | "skipped" | "error"), kind, message, stage, image, probs,
n_forward, t_decode, t_model, t_write.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from veernet_ray.io import RasterError, atomic_path, read_image
from veernet_ray.las.sidecar import Sidecar, to_canonical_image
from veernet_ray.trace.thresholds import QC_DEFAULTS

#: a scan whose gray levels vary by less than this is blank paper or a no-data frame
BLANK_STD = 2.0
#: ink is at least this many gray levels darker than the paper (the scan's median); a scan with no
#: pixel that dark has nothing to trace. Relative, not absolute: a faded or low-contrast scan (paper
#: 225, ink 142) has ink no darker than 128, and an absolute level of 128 refused it as "no ink"
INK_CONTRAST = 48
#: tile width floor after repeated out-of-memory halving (smaller tiles lose too much context)
MIN_TILE = 512

_EMPTY_IMAGE = np.zeros((1, 1), np.uint8)
_EMPTY_PROBS = np.zeros((1, 1, 1), np.uint8)


def _fail(row: dict, kind: str, message: str, stage: str, status: str = "error") -> dict:
    row.update(status=status, kind=kind, message=message, stage=stage)
    return row


def blank_reason(image: np.ndarray) -> str:
    """Why a canonical uint8 scan holds nothing to digitise ("" when it does)."""
    std = _std_uint8(image)
    if std < BLANK_STD:
        return f"blank or no-data scan: gray-level spread {std:.2f} < {BLANK_STD}"
    paper = float(np.median(image[:: max(1, image.shape[0] // 64)]))  # rows spread over the scan
    darkest = int(image.min())
    if paper - darkest < INK_CONTRAST:
        return (f"no ink: no pixel {INK_CONTRAST} gray levels darker than the paper ({paper:.0f}); the darkest "
                f"is {darkest}")
    return ""


def _std_uint8(image: np.ndarray, rows: int = 256) -> float:
    """Standard deviation of a uint8 image in row chunks: 4 bytes a pixel at most, not numpy's 8 x H x W."""
    n = image.size
    s = sq = 0
    for r in range(0, image.shape[0], rows):
        part = image[r : r + rows].astype(np.uint32)
        s += int(part.sum(dtype=np.uint64))
        sq += int((part * part).sum(dtype=np.uint64))
    mean = s / n
    return math.sqrt(max(0.0, sq / n - mean * mean))


# ------------------------------------------------------------------ decode
def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """Read, convert to gray uint8, turn to canonical orientation, and drop blank scans."""
    t0 = time.perf_counter()
    row = dict(row, status="ok", kind="", message="", stage="", image=_EMPTY_IMAGE, probs=_EMPTY_PROBS,
               n_forward=0, t_decode=0.0, t_model=0.0, t_write=0.0)
    try:
        image = read_image(row["path"])
        if image.shape != (row["orig_height"], row["orig_width"]):
            raise RasterError("shape_mismatch", f"decoded {image.shape} but the header said "
                              f"({row['orig_height']}, {row['orig_width']}); the file changed or is damaged")
        image = to_canonical_image(image, row["orientation"])
        reason = blank_reason(image)
        if reason:
            _fail(row, "blank", reason, "decode", status="skipped")
        else:
            row["image"] = image
    except RasterError as exc:
        _fail(row, exc.kind, str(exc), "decode")
    except MemoryError:
        _fail(row, "out_of_memory", f"{Path(row['path']).name}: not enough host memory to decode", "decode")
    except Exception as exc:  # a decoder bug on one file must not stop the archive
        _fail(row, "decode_failed", f"{type(exc).__name__}: {exc}", "decode")
    row["t_decode"] = time.perf_counter() - t0
    return row


# ------------------------------------------------------------------- model
def is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and ("out of memory" in str(exc).lower() or isinstance(exc, MemoryError))


#: rows below and columns right of every scan that the model stage keeps as padding
#: (`pad_collate(margin=, fill=)`). Training pads batches bottom-right and masks the padding out, so
#: a model rarely sees valid rows at the tensor's edge, and there it reads the edge as ink: the
#: shipped model drew a solid line along the bottom row of 6 of 48 held-out scans whose height was
#: at or just under a multiple of 32, and the tracer took it for a curve (bench/RESULTS.md, "The
#: bottom-edge line"). 16 rows of white, the fill training pads with, remove it. The scan's own paper
#: grey removed it from 6 rows, but changed what the model sees everywhere: on faded scans it found
#: more ink and 2-10x more false ink.
INFER_MARGIN = 16
#: the margin's grey: "paper" (the scan's own) or a level (255: white, as training pads)
INFER_FILL: int | str = 255


class ModelStage:
    """Callable class for `Dataset.map_batches`: `__init__` loads the model once per actor.

    A batch of rows is split into micro-batches of similar shape with the
    training planner (`plan_batches`), padded with the training collate
    (`pad_collate` + `to_tensors`; at least INFER_MARGIN rows and columns of
    INFER_FILL below and right of every scan), and run under `torch.inference_mode`
    (bf16 autocast on a GPU). Scans wider than `max_width` go through
    overlapping tiles along depth. An out-of-memory error is retried with
    each scan alone, then with tiles half as wide, down to MIN_TILE columns.
    """

    def __init__(self, checkpoint: Any, *, device: str = "cpu", batch_size: int = 8, max_width: int = 8192,
                 overlap: int = 256, amp: str = "auto", num_threads: int | None = None,
                 grid: tuple[Sequence[int], Sequence[int]] | None = None, margin: int = INFER_MARGIN, fill: int | str = INFER_FILL):
        import torch

        from veernet_ray.config import DataConfig

        from veernet_ray.model.checkpoint import load_model

        _injected_start_fault()
        if num_threads:
            torch.set_num_threads(max(1, int(num_threads)))
        data = _resolve(checkpoint)
        if isinstance(data, (bytes, bytearray)):
            # one loader for every checkpoint (model.checkpoint.load_model, weights_only=True)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "checkpoint.pt"
                path.write_bytes(data)
                model, payload = load_model(path)
        else:
            model, payload = load_model(data)
        self.device = torch.device(device)
        # channels-last on a GPU, as in training: bf16 convolutions run on tensor cores in NHWC
        self.channels_last = self.device.type == "cuda"
        self.fill_batches = self.device.type == "cuda"  # grid batches filled to batch_size (see forward)
        self.model = model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.multiple = int(model.multiple)
        # micro-batches are planned as the model was trained: its run's data.max_padding
        trained = (payload.get("config") or {}).get("data") or {}
        self.max_padding = float(trained.get("max_padding", DataConfig.max_padding))
        self.num_classes = int(model.cfg.num_classes)
        self.batch_size = max(1, int(batch_size))
        self.max_width = max(self.multiple, int(max_width))
        self.overlap = int(overlap)
        self.margin = max(0, int(margin))
        self.fill = fill
        self.amp = amp
        self.forwards = 0
        # a fixed grid of batch shapes (the driver's `data.shapes.choose_grid`): scans are padded to
        # their cell and batched by it, so the device sees a few shapes; None: height buckets
        self.grid = None
        if grid is not None:
            from veernet_ray.data.shapes import ShapeGrid

            self.grid = ShapeGrid(tuple(int(h) for h in grid[0]), tuple(int(w) for w in grid[1]))
            if self.device.type == "cuda":
                import torch

                torch.backends.cudnn.benchmark = True  # each grid shape autotuned once, then reused
        self.shapes_seen: set[tuple[int, int, int]] = set()
        #: seconds this actor spent running each grid cell once before its first batch (GPU only)
        self.warmup_s = self.warm_up() if self.grid is not None and self.fill_batches else 0.0

    def warm_up(self) -> float:
        """One blank full batch through every grid cell, so cuDNN's autotuning and the allocator's growth
        happen here, once per cell, before the first scan, not inside the first batch of each cell.
        On an H200 (2026-11-28) 256 seed scans made 27 model batches over 8 cells, and the training
        step's warm-up was 7.2 s a cell: the autotune was most of the actor's 38 s. Returns seconds."""
        import torch

        t0 = time.perf_counter()
        forwards = self.forwards
        for h in self.grid.heights:
            for w in self.grid.widths:
                if h > self.margin and w > self.margin:
                    self.forward([np.full((h - self.margin, w - self.margin), 255, np.uint8)], pad_to=(h, w))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.forwards = forwards  # warm-up passes are not the scans' forwards
        return time.perf_counter() - t0

    # one forward pass over scans of similar shape -> quantised probabilities, cropped
    def forward(self, images: list[np.ndarray], pad_to: tuple[int, int] | None = None) -> list[np.ndarray]:
        import torch

        from veernet_ray.data.collate import pad_collate, to_tensors
        from veernet_ray.device import autocast_for

        n = len(images)
        if pad_to is not None and self.fill_batches and n < self.batch_size:
            # a grid cell's last batch is filled with blank rows: the GPU then sees only (batch, cell)
            # shapes, each autotuned once, instead of one new shape per partial batch
            images = list(images) + [np.zeros(pad_to, np.uint8)] * (self.batch_size - n)
        batch = pad_collate(images, multiple=self.multiple, pad_to=pad_to, margin=self.margin, fill=self.fill)
        self.shapes_seen.add(batch["image"].shape)
        t = to_tensors(batch, device=self.device, channels_last=self.channels_last)
        with torch.inference_mode(), autocast_for(self.device, self.amp):
            logits = self.model(t["image"], valid=self.valid_sizes(batch))
            # quantise on the device: 1 byte per class per pixel crosses the bus and the object store
            q = (torch.softmax(logits[:n].float(), dim=1) * 255.0).round_().to(torch.uint8)
            shapes = batch["shape"][:n]
            if self.device.type == "cuda":
                outs = self._to_host(q, shapes)
            else:
                q = q.cpu().numpy()
                outs = [np.ascontiguousarray(q[b, :, :h, :w]) for b, (h, w) in enumerate(shapes)]
        self.forwards += 1
        return outs

    @staticmethod
    def _to_host(q, shapes) -> list[np.ndarray]:
        """Each scan's own pixels of the device's uint8 probabilities, copied into pinned host memory.
        On an H200 (2026-11-28, bench/gpu-logs/2026-11-28-h200-4/profile.log) the whole padded batch
        copied into pageable memory took 149 ms of the actor's 476 ms step (16 x 640 x 7,328; about
        1.5 GB/s), the host blocked in it; a pinned copy runs at the bus's rate, and
        cropping on the device first leaves the cell's padding and the filler rows behind."""
        import torch

        hosts = []
        for b, (h, w) in enumerate(shapes):
            host = torch.empty((q.shape[1], int(h), int(w)), dtype=torch.uint8, pin_memory=True)
            host.copy_(q[b, :, : int(h), : int(w)], non_blocking=True)
            hosts.append(host)
        torch.cuda.current_stream(q.device).synchronize()  # the copies are done before the arrays are read
        return [host.numpy() for host in hosts]

    def valid_sizes(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """(B, 2) each scan's region for the model's GroupNorm and attention: the scan and its margin,
        rounded up to the model's multiple (what a scan alone is padded to), so a scan batched into a
        larger cell or beside a larger scan gets nearly what it gets alone (`VeerNet.forward`'s valid;
        batch-1 output unchanged). Measured: bench/RESULTS.md, "Batch padding changed the curves"."""
        from veernet_ray.data.collate import round_up

        hp, wp = batch["image"].shape[-2:]
        keep = np.asarray(batch["shape"], dtype=np.int64) + self.margin
        return np.stack([np.minimum([round_up(int(v), self.multiple) for v in keep[:, 0]], hp),
                         np.minimum([round_up(int(v), self.multiple) for v in keep[:, 1]], wp)], axis=1)

    def infer(self, images: list[np.ndarray], pad_to: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Probabilities for scans of similar shape; narrow ones batched, wide ones tiled; OOM retried smaller."""
        if len(images) == 1 and images[0].shape[1] > self.max_width:
            return [self.tiled(images[0], self.max_width)]
        try:
            return self.forward(images, pad_to)
        except Exception as exc:
            if not is_oom(exc):
                raise
            if len(images) > 1:
                raise  # the caller retries each scan alone
            self._free()
            from veernet_ray.data.collate import round_up
            from veernet_ray.infer.tiles import halve

            smaller = halve(round_up(images[0].shape[1], self.multiple), self.multiple, MIN_TILE)
            if not smaller:
                raise
            return [self.tiled(images[0], smaller)]

    def tiled(self, image: np.ndarray, tile: int, batch: int | None = None) -> np.ndarray:
        from veernet_ray.infer.tiles import halve, stitch, tile_spans

        batch = batch or self.batch_size
        spans = tile_spans(image.shape[1], tile, min(self.overlap, tile // 4), self.multiple)
        crops = [image[:, s:e] for s, e in spans]
        try:
            outs = []
            for k in range(0, len(crops), batch):
                outs += self.forward(crops[k : k + batch])
        except Exception as exc:
            if not is_oom(exc):
                raise
            self._free()
            if batch > 1:
                return self.tiled(image, tile, 1)
            smaller = halve(tile, self.multiple, MIN_TILE)
            if not smaller:
                raise
            return self.tiled(image, smaller, 1)
        return np.round(stitch(outs, spans, image.shape[1])).astype(np.uint8)

    def _free(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from veernet_ray.data.buckets import plan_batches

        n = len(batch["id"])
        probs: list[np.ndarray] = [_EMPTY_PROBS] * n
        status, kind, message, stage = (list(batch[k]) for k in ("status", "kind", "message", "stage"))
        n_forward = [0] * n
        t_model = [0.0] * n
        ok = [i for i in range(n) if status[i] == "ok"]
        cells: dict[int, tuple[int, int]] = {}
        if self.grid is not None:  # scans in the grid go by cell; the rest (wider, a sheet's tracks) by bucket
            for i in ok:
                h, w = batch["image"][i].shape
                if w <= self.max_width:
                    with contextlib.suppress(ValueError):
                        cells[i] = self.grid.cell(h + self.margin, w + self.margin)
        groups: list[list[int]] = []
        by_cell: dict[tuple[int, int], list[int]] = {}
        for i, c in cells.items():
            by_cell.setdefault(c, []).append(i)
        for members in by_cell.values():
            groups += [members[a : a + self.batch_size] for a in range(0, len(members), self.batch_size)]
        rest = [i for i in ok if i not in cells]
        shapes = [tuple(batch["image"][i].shape) for i in rest]
        # wide scans are planned alone (their batch is their tiles)
        bucketed = [[rest[j] for j in g] for g in plan_batches(shapes, self.batch_size, multiple=self.multiple,
                                                               max_padding=self.max_padding)] if rest else []
        groups += [g for grp in bucketed for g in ([[i] for i in grp] if any(
            batch["image"][i].shape[1] > self.max_width for i in grp) else [grp])]
        for group in groups:
            t0, f0 = time.perf_counter(), self.forwards
            try:
                outs = self.infer([batch["image"][i] for i in group], cells.get(group[0]))
                for i, p in zip(group, outs):
                    probs[i] = p
            except Exception as exc:
                if not (is_oom(exc) and len(group) > 1):
                    for i in group:
                        status[i], kind[i], message[i], stage[i] = "error", *_model_error(exc)
                else:  # an outlier in the batch: each scan alone, so one failure costs one scan
                    self._free()
                    for i in group:
                        try:
                            probs[i] = self.infer([batch["image"][i]], cells.get(i))[0]
                        except Exception as one:
                            status[i], kind[i], message[i], stage[i] = "error", *_model_error(one)
            dt = (time.perf_counter() - t0) / len(group)
            for i in group:
                t_model[i] = dt
            n_forward[group[0]] = self.forwards - f0
        # the scans' own pixels go on to the write stage with the probabilities: its QC and overlays read
        # them there instead of decoding the file again (a whole sheet once per track, for a sheet's tracks)
        out = {k: v for k, v in batch.items() if k != "image"}
        out["image"] = _objects([batch["image"][i] if status[i] == "ok" else _EMPTY_IMAGE for i in range(n)])
        out.update(status=np.array(status, dtype=object), kind=np.array(kind, dtype=object),
                   message=np.array(message, dtype=object), stage=np.array(stage, dtype=object),
                   probs=_objects(probs), n_forward=np.array(n_forward, np.int64), t_model=np.array(t_model))
        return out


#: fault injection for the fault tests (tests/test_hardening_ray.py), the way issue 14 asks for a write
#: hook that raises ENOSPC: the variable names a file holding a count; each model actor start takes one
#: from it and, while it was above 0, fails as a model load that ran out of memory would
FAULT_START_ENV = "VEERNET_FAULT_MODEL_START"


def _injected_start_fault() -> None:
    path = os.environ.get(FAULT_START_ENV)
    if not path:
        return
    import fcntl

    with open(path, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        left = int(fh.read().strip() or 0)
        if left <= 0:
            return
        fh.seek(0)
        fh.truncate()
        fh.write(str(left - 1))
    raise MemoryError(f"injected by ${FAULT_START_ENV}: the model actor failed to start ({left - 1} more to come)")


def _model_error(exc: BaseException) -> tuple[str, str, str]:
    if is_oom(exc):
        return "out_of_memory", f"out of memory even alone and at {MIN_TILE}-column tiles ({exc})", "model"
    return "model_failed", f"{type(exc).__name__}: {exc}", "model"


def _resolve(checkpoint: Any) -> Any:
    try:
        import ray

        if isinstance(checkpoint, ray.ObjectRef):
            return ray.get(checkpoint)
    except ImportError:  # pragma: no cover - ray is a dependency
        pass
    return checkpoint


def _objects(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


# ------------------------------------------------------------------- write
def write_row(row: dict[str, Any], *, provenance: dict[str, Any], output: str, min_coverage: float = QC_DEFAULTS.min_coverage,
              min_confidence: float = QC_DEFAULTS.min_confidence, overlays: str = "flagged") -> dict[str, Any]:
    """Trace, calibrate, write the LAS (atomically), then the QC record that marks the scan complete.

    Returns a small row (no pixels): id, path, las_out, status, kind, message,
    stage, qc (JSON list of qc.parquet rows), flagged, overlay, n_forward, timings.
    """
    from veernet_ray.infer.listing import qc_record_path
    from veernet_ray.las.export import build_output, qc_rows, write_digitised_las
    from veernet_ray.trace.decode import decode
    from veernet_ray.trace.qc import curve_signals

    t0 = time.perf_counter()
    out = {k: row[k] for k in ("id", "path", "las_out", "status", "kind", "message", "stage", "n_forward",
                               "t_decode", "t_model")}
    out.update(qc="", flagged=False, overlay="", t_write=0.0)
    if row["status"] != "ok":
        return out
    try:
        probs = np.asarray(row["probs"])  # uint8 p * 255: the tracer and QC read it as it is, no float copy
        h, w = int(row["height"]), int(row["width"])
        if probs.shape[1:] != (h, w):
            raise ValueError(f"probabilities have shape {probs.shape[1:]}, the scan is {(h, w)}")
        sidecar = None
        if row["sidecar_json"]:
            sidecar = Sidecar.from_dict(json.loads(row["sidecar_json"]), source=Path(row["path"]).name)
            sidecar = sidecar.canonical((int(row["orig_height"]), int(row["orig_width"])))
            class_ids = tuple(c.class_id for c in sidecar.curves)
            wrap = {c.class_id: c.wrap.period * c.track_px for c in sidecar.curves if c.wrap is not None}
        else:
            class_ids, wrap = tuple(range(1, probs.shape[0])), None
        trace = decode(probs, class_ids, wrap_px=wrap)
        log = build_output(trace, image_shape=(h, w), sidecar=sidecar)
        write_digitised_las(row["las_out"], log, provenance)
        # QC's second opinion reads the scan's own ink, carried on from decode by the model stage
        image = canonical_pixels(row)
        signals = curve_signals(trace.rows, trace.confidence, trace.class_ids, probs, image, wrap, page=trace.page)
        order = [trace.class_ids.index(c.class_id) for c in log.curves]
        qc = qc_rows(row["id"], log, min_coverage=min_coverage, min_mean_conf=min_confidence,
                     signals=[signals[i] for i in order])
        for q in qc:
            q.update(path=row["path"], las=row["las_out"])
        # the QC record after the LAS: its presence means "this scan is complete" on a re-run
        # with what made the LAS: a re-run skips the scan only for the same model, calibration and options
        ckpt = provenance.get("CKPT", ("",))
        record = {"ckpt": str(ckpt[0] if isinstance(ckpt, tuple) else ckpt),
                  "fingerprint": str(row.get("fingerprint", "")), "rows": qc}
        with atomic_path(qc_record_path(Path(output), row["id"])) as tmp:
            tmp.write_text(json.dumps(record), encoding="utf-8")
        flagged = any(q["flagged"] for q in qc)
        out.update(status="done", qc=json.dumps(qc), flagged=flagged)
        if overlays == "all" or (overlays == "flagged" and flagged):
            out["overlay"] = str(write_overlay(Path(output) / "overlays" / f"{row['id']}.png", row, probs, trace))
    except OSError as exc:
        _fail(out, "write_failed", f"{type(exc).__name__}: {exc}", "write")
    except Exception as exc:
        _fail(out, "digitise_failed", f"{type(exc).__name__}: {exc}", "write")
    out["t_write"] = time.perf_counter() - t0
    return out


def canonical_pixels(row: dict[str, Any]) -> np.ndarray:
    """The row's canonical scan: the pixels the model stage carried on, else decoded from its file again."""
    image = row.get("image")
    if isinstance(image, np.ndarray) and image.shape == (int(row["height"]), int(row["width"])):
        return image
    return to_canonical_image(read_image(row["path"]), row["orientation"])


def write_overlay(path: Path, row: dict[str, Any], probs: np.ndarray, trace) -> Path:
    """The canonical scan with class pixels tinted and traced curves drawn: curve 1 red, curve 2 blue."""
    import cv2

    image = canonical_pixels(row)
    from veernet_ray.visual import COLOURS, overlay

    rgb = overlay(image, probs.argmax(0), alpha=0.5)
    colours = COLOURS
    cols = np.arange(image.shape[1])
    for k, cid in enumerate(trace.class_ids):
        r = trace.rows[k]
        ok = np.isfinite(r)
        rr = np.clip(np.round(r[ok]).astype(int) % image.shape[0], 0, image.shape[0] - 1)
        rgb[rr, cols[ok]] = colours.get(cid, (0, 160, 0))
    good, buf = cv2.imencode(".png", rgb)
    if not good:
        raise OSError(f"cannot encode the overlay for {row['id']}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path


__all__ = ["BLANK_STD", "INK_CONTRAST", "ModelStage", "blank_reason", "decode_row", "is_oom", "write_row",
           "write_overlay"]
