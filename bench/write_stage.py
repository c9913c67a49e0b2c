"""The inference write stage per scan on one core: trace, LAS, QC; the ceiling it sets on a node.

    PYTHONPATH=. .venv/bin/python bench/write_stage.py --n 8
    PYTHONPATH=. .venv/bin/python bench/write_stage.py --n 8 --against 3fe505d   # side by side with a revision
    PYTHONPATH=. .venv/bin/python bench/write_stage.py --smoke-test

N generated seed-size scans go once through the model actor's code on this CPU (shipped
weights, batch 1; not timed). Then `write_row`, the stage's own function, runs on each,
timed whole and in its parts (the default decoder, `trace.decode.decode`, on the uint8
probabilities, the LAS, QC's `curve_signals`) on one thread. Reported: seconds per scan and per megapixel, and the
scans/s that 16 and 64 cores of trace-and-write could sustain. On a GPU node the write
tasks must keep up with the model actor; this is their ceiling (issue 13).

`--against REV` runs the same bench on a git revision too (a temporary worktree, its own
package), alternating the two for `--rounds` rounds in one call, and prints the ratio of
`write_row`'s seconds per scan: on a noisy machine only such a side-by-side ratio counts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# --root: the tree whose package is measured (the --against run points it at a worktree)
_root = sys.argv[sys.argv.index("--root") + 1] if "--root" in sys.argv[:-1] else str(REPO)
sys.path.insert(0, _root)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=8, help="scans (default: %(default)s)")
    p.add_argument("--preset", default="seed", choices=("seed", "demo"))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--smoke-test", action="store_true", help="2 demo-size scans, tiny model")
    p.add_argument("--against", metavar="REV", help="also measure git revision REV, alternating with this tree")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the two, with --against (default: %(default)s)")
    p.add_argument("--root", default=str(REPO), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke_test:
        args.n, args.preset = 2, "demo"
    if args.against:
        return compare(args)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    torch.set_num_threads(1)
    from veernet_ray.infer.cli import tiny_checkpoint
    from veernet_ray.infer.listing import list_inputs
    from veernet_ray.infer.stages import ModelStage, canonical_pixels, decode_row, write_row
    from veernet_ray.las.export import build_output, write_digitised_las
    from veernet_ray.synth import generate_dataset
    from veernet_ray.trace import trace_curves
    try:  # the default decoder (ink traced twice, identity from the pen); before it, per-class tracing
        from veernet_ray.trace.decode import decode
    except ImportError:
        decode = None
    from veernet_ray.trace.qc import curve_signals
    from veernet_ray.weights import shipped_checkpoint

    work = Path(tempfile.mkdtemp(prefix="veernet-bench-write-"))
    try:
        manifest = generate_dataset(work / "data", n=args.n, seed=args.seed, preset=args.preset, workers=1,
                                    progress=False, split=(1.0, 0.0, 0.0))
        listing = list_inputs(str(manifest), output=work / "out")
        ckpt = tiny_checkpoint(work / "model") if args.smoke_test else shipped_checkpoint()
        stage = ModelStage(str(ckpt), batch_size=1)
        rows = []
        for it in listing.items:
            d = decode_row(it.row())
            batch = {}
            for k, v in d.items():
                col = np.empty(1, dtype=object)
                col[0] = v
                batch[k] = col
            rows.append({k: v[0] for k, v in stage(batch).items()})
        skipped = [f"{r['id']}: {r['message']}" for r in rows if r["status"] != "ok"]  # e.g. a generated blank page
        rows = [r for r in rows if r["status"] == "ok"]
        if not rows:
            raise SystemExit(f"no scan reached the write stage: {skipped[:3]}")
        prov = {"CKPT": ("bench", "", "")}
        parts = {"trace (decode)": 0.0, "LAS": 0.0, "QC signals": 0.0}
        whole = []
        mpx = sum(int(r["height"]) * int(r["width"]) for r in rows) / 1e6
        # a write task pays its compiled kernels' load (or, on a fresh install, their compile) once
        t0 = time.perf_counter()
        write_row(rows[0], provenance=prov, output=str(work / "warm"), overlays="none")
        first = time.perf_counter() - t0
        for r in rows:
            t0 = time.perf_counter()
            res = write_row(r, provenance=prov, output=str(work / "out"), overlays="none")
            whole.append(time.perf_counter() - t0)
            assert res["status"] == "done", res["message"]
            # the same work in its parts (no sidecar: every class traced)
            probs = np.asarray(r["probs"])  # uint8 p * 255, as write_row passes it
            try:
                trace_curves(probs[:, :2, :2], (1,))
            except ValueError:  # a revision from before the tracer read uint8: what its write_row did
                probs = np.divide(probs, np.float32(255.0), dtype=np.float32)
            t = time.perf_counter()
            ids = tuple(range(1, probs.shape[0]))
            trace = decode(probs, ids) if decode is not None else trace_curves(probs, ids)
            parts["trace (decode)"] += time.perf_counter() - t
            t = time.perf_counter()
            log = build_output(trace, image_shape=probs.shape[1:], sidecar=None)
            write_digitised_las(work / "parts.las", log, prov)
            parts["LAS"] += time.perf_counter() - t
            t = time.perf_counter()
            curve_signals(trace.rows, trace.confidence, trace.class_ids, probs, canonical_pixels(r), None)
            parts["QC signals"] += time.perf_counter() - t
        n = len(rows)
        per = sum(whole) / n
        print(f"{n} `{args.preset}` scans, {mpx / n:.2f} Mpx each on average, one thread"
              + (f"; left out (not digitisable): {'; '.join(skipped)}" if skipped else ""))
        print("\n| part | s per scan | share |\n|---|---|---|")
        total_parts = sum(parts.values())
        for name, s in parts.items():
            print(f"| {name} | {s / n:.3f} | {s / total_parts:.0%} |")
        print(f"\n- `write_row` whole: {per:.3f} s per scan ({per / (mpx / n):.3f} s per Mpx), "
              f"median {np.median(whole):.3f} s")
        print(f"- First call of the process (not counted above; loads or compiles the tracer's kernels): {first:.2f} s")
        print(f"- Ceiling of trace-and-write: {1 / per:.1f} scans/s per core; 16 cores {16 / per:.0f} scans/s, "
              f"64 cores {64 / per:.0f} scans/s")
        print(f"WRITE_ROW_S_PER_SCAN {per:.6f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def compare(args: argparse.Namespace) -> int:
    """This tree and revision `args.against`, alternating, each in its own process."""
    import subprocess

    tree = Path(tempfile.mkdtemp(prefix="veernet-bench-rev-")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree), args.against], check=True)
    runs: dict[str, list[float]] = {args.against: [], "this tree": []}
    try:
        for rnd in range(args.rounds):
            for name, root in ((args.against, tree), ("this tree", REPO)):
                cmd = [sys.executable, __file__, "--n", str(args.n), "--preset", args.preset, "--seed", str(args.seed),
                       "--root", str(root)]
                res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(root)))
                print(f"== {name}, round {rnd + 1}\n{res.stdout.strip()}", flush=True)
                line = [ln for ln in res.stdout.splitlines() if ln.startswith("WRITE_ROW_S_PER_SCAN")]
                if res.returncode or not line:
                    raise SystemExit(f"the bench failed on {name}:\n{res.stderr[-2000:]}")
                runs[name].append(float(line[0].split()[1]))
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(tree.parent, ignore_errors=True)
    old, new = runs[args.against], runs["this tree"]
    print(f"\n| round | {args.against} s/scan | this tree s/scan | ratio |\n|---|---|---|---|")
    for i, (a, b) in enumerate(zip(old, new)):
        print(f"| {i + 1} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")
    print(f"| median | {np.median(old):.3f} | {np.median(new):.3f} | {np.median(old) / np.median(new):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
