"""Raster input and output: the one image reader and writer every stage uses.

The generator writes, training reads and inference reads through these
functions, so there is one TIFF reader in the code base (STYLE: never two).

Canonical raster: 2-D uint8, depth along the width (column 0 = shallowest),
value axis along the height (row 0 = top of the track).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = {".tif", ".tiff"}
OTHER_SUFFIXES = {".png", ".jpg", ".jpeg"}
IMAGE_SUFFIXES = TIFF_SUFFIXES | OTHER_SUFFIXES


class RasterError(ValueError):
    """An input that cannot be turned into a canonical raster.

    `kind` is a short machine-readable label (it becomes the `kind` column of
    errors.parquet); the message says what is wrong and what to do.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RasterHeader:
    """What a file header says, read without decoding pixels."""

    height: int
    width: int
    dtype: str
    channels: int


def read_header(path: str | os.PathLike) -> RasterHeader:
    """Shape and sample type from the file header only (planners never decode pixels)."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                shape = tuple(page.shape)
                dtype = str(page.dtype)
        else:
            from PIL import Image  # lazy header parse: PIL reads pixels only on .load()

            with Image.open(path) as im:
                w, h = im.size
                shape = (h, w) if im.mode in ("L", "I;16", "I", "F", "1", "P") else (h, w, len(im.getbands()))
                dtype = {"I;16": "uint16", "I": "int32", "F": "float32"}.get(im.mode, "uint8")
    except RasterError:
        raise
    except Exception as exc:  # any decoder failure is a bad file, not a crash
        raise RasterError("unreadable", f"{path.name}: cannot read the image header ({exc})") from exc
    if len(shape) == 2:
        return RasterHeader(int(shape[0]), int(shape[1]), dtype, 1)
    if len(shape) == 3:
        # tifffile reports planar (C, H, W) or contiguous (H, W, C); the small axis is the channels
        if shape[0] <= 4 and shape[2] > 4:
            return RasterHeader(int(shape[1]), int(shape[2]), dtype, int(shape[0]))
        return RasterHeader(int(shape[0]), int(shape[1]), dtype, int(shape[2]))
    raise RasterError("bad_shape", f"{path.name}: expected a 2-D or 3-D image, the header says shape {shape}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode a TIFF, PNG or JPEG into a 2-D uint8 array, in the file's own orientation.

    RGB(A) becomes luminance; 16-bit is scaled by 1/257; float in [0, 1] is
    scaled by 255, other float ranges are stretched min..max. NaN or infinite
    samples, empty files and undecodable files raise RasterError.
    Orientation (portrait scans) is the caller's business: see
    `veernet_ray.las.sidecar.Sidecar.to_canonical_image`.
    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            # the first page only: a multi-page TIFF is pages of one sheet or several sheets, never
            # colour planes (tifffile.imread would stack same-shaped pages into one array)
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                arr = tiff_pixels(page.asarray(), int(page.photometric), page.colormap, int(page.bitspersample))
        elif suffix in OTHER_SUFFIXES:
            import cv2

            buf = np.fromfile(path, dtype=np.uint8)
            arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            if arr is None:
                raise RasterError("not_an_image", f"{path.name}: OpenCV cannot decode this {suffix} file")
            if arr.ndim == 3:  # OpenCV decodes colour as BGR(A)
                arr = arr[..., 2::-1] if arr.shape[2] >= 3 else arr
        else:
            raise RasterError(
                "unsupported_format",
                f"{path.name}: unsupported file type {suffix!r}; use one of {sorted(IMAGE_SUFFIXES)}",
            )
    except RasterError:
        raise
    except Exception as exc:
        raise RasterError("unreadable", f"{path.name}: cannot decode the image ({type(exc).__name__}: {exc})") from exc
    return to_gray_uint8(np.asarray(arr), name=path.name)


def tiff_pixels(arr: np.ndarray, photometric: int, colormap: np.ndarray | None, bits: int) -> np.ndarray:
    """A TIFF page's samples as intensities, whatever the file says they mean.

    - MINISWHITE (0; most 1-bit CCITT archive scans): 0 is white, so the samples are inverted;
      read as they are, the scan is a negative (black paper, white ink).
    - PALETTE (3): the samples are colour-map indices; the map (16-bit RGB) gives the colours.
    - 2- and 4-bit grey is stretched to 8 bits (0..15 read as 0..255, not as near-black).
    Anything else (MINISBLACK, RGB, ...) is returned as it is.
    """
    if photometric == 3 and colormap is not None:
        cmap = np.asarray(colormap).astype(np.uint32)
        if cmap.max() <= 255:  # a map written with 8-bit values: scale it to the 16 bits the format says
            cmap = cmap * 257
        idx = np.clip(arr.astype(np.int64), 0, cmap.shape[1] - 1)
        return np.moveaxis(cmap[:, idx], 0, -1).astype(np.uint16)  # (H, W, 3)
    if arr.dtype == np.bool_:
        return ~arr if photometric == 0 else arr
    if photometric not in (0, 1):
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        top = (1 << bits) - 1 if 0 < bits < 32 else int(np.iinfo(arr.dtype).max)
        if photometric == 0:
            arr = (top - arr.astype(np.int64)).astype(arr.dtype)
        if 1 < bits < 8:
            arr = (arr.astype(np.uint16) * 255 // top).astype(np.uint8)
        return arr
    return np.nanmax(arr) - arr if photometric == 0 else arr


def to_gray_uint8(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """Any 2-D/3-D numeric array -> contiguous 2-D uint8 (see `read_image` for the rules)."""
    if arr.ndim == 3:
        if arr.shape[0] in (3, 4) and arr.shape[2] not in (3, 4):  # planar -> contiguous
            arr = np.moveaxis(arr, 0, -1)
        if arr.shape[2] == 1:
            arr = arr[..., 0]
        elif arr.shape[2] in (3, 4):
            rgb = arr[..., :3].astype(np.float64)
            # ITU-R BT.601 luma, the weights scanners and OpenCV use
            luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
            # keep the source's sample type so 16-bit and float RGB scale like their gray forms
            arr = luma.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else np.round(luma).astype(arr.dtype)
        else:
            raise RasterError("bad_shape", f"{name}: {arr.shape[2]} channels; expected gray, RGB or RGBA")
    if arr.ndim != 2:
        raise RasterError("bad_shape", f"{name}: expected a 2-D image, got shape {arr.shape}")
    if arr.size == 0:
        raise RasterError("empty", f"{name}: the image has no pixels (shape {arr.shape})")
    return np.ascontiguousarray(_scale_to_uint8(arr, name))


def _scale_to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return np.where(arr, 255, 0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.max == 65535 and info.min == 0:
            return (arr.astype(np.uint32) // 257).astype(np.uint8)
        lo, hi = int(arr.min()), int(arr.max())
        if 0 <= lo and hi <= 255:
            return arr.astype(np.uint8)
        return _stretch(arr.astype(np.float64))
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise RasterError("non_finite", f"{name}: {bad} NaN or infinite samples; fix or mask the scan first")
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 1.0:
            return np.round(arr * 255.0).astype(np.uint8)
        if lo >= 0.0 and hi <= 255.0 and hi > 1.0:
            return np.round(arr).astype(np.uint8)
        return _stretch(arr.astype(np.float64))
    raise RasterError("bad_dtype", f"{name}: unsupported sample type {arr.dtype}")


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.full(arr.shape, 255, np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise RasterError("missing", f"{path}: no such file")
    if path.is_dir():
        raise RasterError("not_a_file", f"{path}: is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise RasterError("empty_file", f"{path.name}: the file is empty (0 bytes)")


def write_tiff(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a 2-D uint8 array as a zlib-compressed TIFF, atomically and byte-reproducibly."""
    import tifffile

    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"write_tiff expects a 2-D uint8 array, got {image.dtype} {image.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        # no datetime tag and a fixed software tag: same pixels, same bytes. zlib level 1:
        # scanned paper noise barely compresses at higher levels, which cost 3x the time.
        tifffile.imwrite(tmp, image, compression="zlib", compressionargs={"level": 1}, software="veernet-ray",
                         metadata=None)


class atomic_path:
    """Context manager yielding a temporary path beside `path`, renamed onto it on success.

    A crash or exception leaves no partial file under the final name.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a file name holds 255 bytes: the temporary keeps at most 200 of the final name's, so
        # a long (but legal) final name does not fail on its temporary's ".XXXXXXXX.part"
        head = self.path.name.encode("utf-8", errors="surrogateescape")[:200].decode("utf-8", errors="ignore")
        fd, tmp = tempfile.mkstemp(prefix=f".{head}.", suffix=".part", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.tmp is not None
        if exc_type is None:
            # mkstemp makes 0600 files; give the result the permissions a plain open() would
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False
