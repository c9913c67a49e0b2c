"""`veernet review OUT` (serve the review page) and `veernet review export OUT --to DATASET`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "veernet review"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Serve a local web page over a `veernet infer` output folder: the flagged curves, worst first; "
        "the scan at full resolution (tiles, pan and zoom along depth) with the traced curves, track grid and axes; "
        "accept, reject, redraw a stretch (clicks snap to the ink), swap the two curves over a depth range, mark a "
        "range absent, undo. Every action is saved at once: the LAS (atomically, ~P says it was reviewed), "
        "reviews.parquet (who, when, before and after) and qc.parquet. Review counts go to the inference run in "
        "MLflow. `veernet review export OUT --to DATASET` turns reviewed curves into training samples.",
        epilog="examples:\n"
        "  veernet review out/                          # then open http://127.0.0.1:8765/\n"
        "  veernet review out/ --port 0 --reviewer ana  # a free port, reviews signed 'ana'\n"
        "  veernet review export out/ --to runs/data/review --mix-with runs/data/demo/manifest.parquet\n"
        "  veernet train --manifest runs/data/review/manifest.parquet\n"
        "keys on the page: a accept, r reject, u undo, n next, arrows pan, +/- zoom, Enter save, Esc cancel",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("output", metavar="OUT", help="the --output folder of `veernet infer` (holds qc.parquet)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only). Anything else lets other "
                   "machines read and change the LAS files: there is no login")
    p.add_argument("--port", type=int, default=8765, help="port (default: %(default)s; 0 = any free port)")
    p.add_argument("--reviewer", help="name recorded with each action (default: your login name; the page can "
                   "change it)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for the review counts (default: the one the "
                   "inference run used, recorded in OUT/.veernet/last_summary.json)")
    p.add_argument("--no-tracking", action="store_true", help="do not log review counts to MLflow")
    p.add_argument("--verbose", action="store_true", help="log every request")
    return p


def build_export_parser(prog: str = PROG + " export") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Turn accepted and corrected curves into training samples in the dataset contract (scan, "
        "mask, truth LAS, sidecar, manifest.parquet with source=review). A scan is exported when each of its "
        "curves is accepted, corrected, or was never flagged; scans with a rejected or unreviewed flagged curve "
        "are listed with what to do.",
        epilog="example:\n"
        "  veernet review export out/ --to runs/data/review --mix-with runs/data/demo/manifest.parquet\n"
        "  veernet train --manifest runs/data/review/manifest.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("output", metavar="OUT", help="the --output folder of `veernet infer` that was reviewed")
    p.add_argument("--to", required=True, metavar="DATASET", help="dataset folder to write (created if missing)")
    p.add_argument("--mix-with", metavar="MANIFEST", help="a dataset manifest whose rows are added, so one "
                   "manifest trains on both (rows of reviewed scans are dropped from it)")
    p.add_argument("--split", default="auto", choices=("auto", "train", "val"),
                   help="split of the review samples (auto: train when the mix has a val split, else every "
                   f"5th sample is val) (default: %(default)s)")
    p.add_argument("--strict", action="store_true", help="export a scan only when every curve was reviewed "
                   "(default: curves QC never flagged count as good)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the inference run's)")
    p.add_argument("--no-tracking", action="store_true", help="do not log the exported count to MLflow")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from veernet_ray.review.store import ReviewError

    try:
        if argv[:1] == ["export"]:
            return _export(build_export_parser().parse_args(argv[1:]))
        return _serve(build_parser().parse_args(argv))
    except ReviewError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    import getpass

    from veernet_ray.review.server import make_server
    from veernet_ray.review.store import ReviewStore

    if not 0 <= args.port <= 65535:
        print(f"{PROG}: error: --port must lie in 0..65535; got {args.port}", file=sys.stderr)
        return 2
    try:
        reviewer = args.reviewer or getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        reviewer = "unknown"
    store = ReviewStore(args.output, reviewer=reviewer)
    logger = None
    if not args.no_tracking:
        from veernet_ray.review.tracking import CountLogger

        logger = CountLogger(store.out, args.tracking_uri)
        store.listeners.append(logger)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"[veernet] WARNING: listening on {args.host}: anyone who can reach this machine on port {args.port} "
              "can read the scans and change the LAS files (there is no login). Use the default 127.0.0.1 and an "
              "SSH tunnel unless you trust the network.", file=sys.stderr)
    try:
        server = make_server(store, args.host, args.port, quiet=not args.verbose)
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pass another "
              "--port (0 picks a free one)", file=sys.stderr)
        return 2
    counts = store.counts()
    print(f"[veernet] review: {counts['left']} of {counts['flagged']} flagged curves left in {store.out}")
    print(f"[veernet] review: open {server.url}  (Ctrl-C to stop; every action is already saved)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\n[veernet] review: stopped")
    finally:
        server.server_close()
        if logger is not None:
            logger.close()
    return 0


def _export(args: argparse.Namespace) -> int:
    from veernet_ray.review.export import export_reviews

    summary = export_reviews(args.output, args.to, mix_with=args.mix_with, split=args.split, strict=args.strict)
    print("\n".join(summary.lines()))
    if not args.no_tracking:
        try:
            from veernet_ray import tracking
            from veernet_ray.review.tracking import resolve_run

            uri, run_id = resolve_run(Path(args.output).expanduser().resolve(), args.tracking_uri)
            tracking.log_metrics(uri, run_id, {"review_exported": float(len(summary.exported))})
        except Exception as exc:  # tracking never fails an export
            print(f"[veernet] review export: could not log to MLflow ({type(exc).__name__}: {exc})")
    return 0 if summary.exported or not summary.skipped else 1


if __name__ == "__main__":
    sys.exit(main())
