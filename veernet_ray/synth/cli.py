"""`veernet synth`: generate a synthetic raster-log dataset (thin entry over `generate_dataset`)."""

from __future__ import annotations

import argparse
import sys

from veernet_ray.cli import HelpFormatter
from veernet_ray.synth.styles import PRESETS, SOURCES, STYLE_FAMILIES, parse_range


def build_parser(prog: str = "veernet synth") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Render scanned-paper raster well logs with pixel-exact masks, truth LAS files and "
            "calibration sidecars, plus manifest.parquet (docs/contracts.md sections 1-3). "
            "Same seed, same bytes, whatever the worker count."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("out", help="output folder (created; must be new, hold the same dataset, or use --overwrite)")
    p.add_argument("--n", type=int, default=100, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="base seed; sample i draws from (seed, i)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                   help="geometry preset: seed = 3200-12800 x 480-640 px, demo = 640-2560 x 96-128 px")
    p.add_argument("--width", default=None, metavar="MIN,MAX", help="image width range in px (overrides the preset)")
    p.add_argument("--height", default=None, metavar="MIN,MAX", help="image height range in px (overrides the preset)")
    p.add_argument("--las-dir", default=None, help="folder of real .las files for the real-curve source")
    p.add_argument("--source", choices=SOURCES, default=None,
                   help="curve source (default: mixed with --las-dir, stochastic without)")
    p.add_argument("--workers", type=int, default=1,
                   help="1 = in-process (no Ray); >1 = Ray tasks on a local Ray with this many CPUs")
    p.add_argument("--ray-address", default=None, help="join this Ray cluster (e.g. 'auto') and use all its CPUs")
    p.add_argument("--split", default="0.8,0.1,0.1", metavar="TRAIN,VAL,TEST", help="split shares")
    p.add_argument("--preview", type=int, default=0, metavar="N", help="write preview.png with N samples")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in OUT")
    p.add_argument("--style", default=None, metavar="JSON",
                   help='ScanStyle overrides as JSON, e.g. \'{"p_skew": 0, "p_wrap": 0.5}\'')
    p.add_argument("--family", choices=sorted(STYLE_FAMILIES), default="train",
                   help="style family: 'train' for training data; 'heldout-*' draw styles and wells training "
                   "never sees (leave-style-out evaluation); 'val-*' draw styles neither sees, from training wells (where choices "
                   "about unseen styles are made); --style overrides apply on top")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--sheets", action="store_true",
                   help="render whole archive sheets instead (header, 2-4 tracks, depth column; ID.tif and "
                   "ID.truth.json per sheet, for `veernet infer --layout sheet` and bench/layout.py)")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    if args.sheets:
        from veernet_ray.synth.sheet import generate_sheets

        paths = generate_sheets(args.out, args.n, args.seed)
        print(f"[veernet] synth: {len(paths)} sheets (ID.tif + ID.truth.json) in {args.out}")
        return 0

    from veernet_ray.synth.generate import generate_dataset
    from veernet_ray.synth.styles import ScanStyle, SynthConfigError

    try:
        split = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        raise SynthConfigError(f"--split must be TRAIN,VAL,TEST numbers, got {args.split!r}") from None
    import dataclasses

    from veernet_ray.synth.styles import style_family

    style = None
    if args.style:
        try:
            changes = json.loads(args.style)
        except json.JSONDecodeError as exc:
            raise SynthConfigError(f"--style is not valid JSON ({exc.msg})") from None
        if not isinstance(changes, dict):
            raise SynthConfigError("--style must be a JSON object of ScanStyle fields")
        style = ScanStyle.from_dict({**dataclasses.asdict(style_family(args.family)), **changes})
    manifest = generate_dataset(
        args.out,
        n=args.n,
        seed=args.seed,
        preset=args.preset,
        width=parse_range(args.width, "width") if args.width else None,
        height=parse_range(args.height, "height") if args.height else None,
        las_dir=args.las_dir,
        source=args.source,
        workers=args.workers,
        split=split,
        preview=args.preview,
        overwrite=args.overwrite,
        style=style,
        style_family=args.family,
        ray_address=args.ray_address,
        progress=not args.quiet,
    )
    print(manifest)
    return 0


def main(argv: list[str] | None = None, prog: str = "veernet synth") -> int:
    import warnings

    args = build_parser(prog).parse_args(argv)
    # warnings (e.g. a skipped LAS file) as one readable line, not a source listing
    warnings.showwarning = lambda message, category, *a, **k: print(f"{prog}: warning: {message}", file=sys.stderr)
    try:
        return run(args)
    except (ValueError, OSError) as exc:  # expected: bad settings, bad inputs, unwritable output
        # raised in a Ray render task: Ray's wrapper's first line names only the task, so say the cause's
        exc = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, OSError) and getattr(exc, "filename", None) and str(exc.filename) not in msg:
            msg = f"{msg}: {exc.filename}"
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
