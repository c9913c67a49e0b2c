"""End-to-end inference throughput: the Ray Data pipeline vs a naive one-scan-at-a-time loop.

    PYTHONPATH=. .venv/bin/python bench/infer_throughput.py --n 4 --preset seed
    PYTHONPATH=. .venv/bin/python bench/infer_throughput.py --smoke-test

Both sides digitise the same N generated scans with the same checkpoint (the
shipped weights unless --checkpoint names another, or `tiny` for a fixed-seed
tiny VeerNet) and write LAS files:
- naive: one process; decode, infer at batch 1 in float32, trace, write; one scan at a time;
- pipeline: `run_inference` on Ray Data (decode tasks, model actor pool, write tasks).
Reported: scans/s each, with and without start-up (Ray start, actor and model
load), the ratio, the GPU's busy fraction sampled by nvidia-smi (GPU only), the
model actor's batching (`--batching`: grid or buckets), scans/s per CPU core on
CPU-only inference, and the projected time and euro cost for the 136,771-scan
archive on the device measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ARCHIVE = 136_771
HOURS_PER_MONTH = 730.0
TIERS = {"high-end card (750 EUR/month)": 750.0, "advanced card (1,800 EUR/month)": 1800.0}


def naive(items, ckpt: Path, out: Path) -> float:
    """Seconds to digitise `items` one at a time in this process, batch 1, float32."""
    import numpy as np
    import torch

    from veernet_ray.data.collate import pad_collate, to_tensors
    from veernet_ray.io import read_image
    from veernet_ray.las.export import build_output, output_path, write_digitised_las
    from veernet_ray.las.sidecar import Sidecar
    from veernet_ray.model.checkpoint import load_model
    from veernet_ray.trace import trace_curves

    model, _ = load_model(ckpt)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    t0 = time.perf_counter()
    for it in items:
        img = read_image(it.image)
        with torch.inference_mode():
            logits = model(to_tensors(pad_collate([img], multiple=model.multiple), device=device)["image"])
            probs = torch.softmax(logits.float(), 1)[0, :, : img.shape[0], : img.shape[1]].cpu().numpy()
        sc = Sidecar.load(it.calibration)
        trace = trace_curves(probs.astype(np.float32), tuple(c.class_id for c in sc.curves),
                             wrap_px={c.class_id: c.wrap.period * c.track_px for c in sc.curves if c.wrap})
        log = build_output(trace, image_shape=img.shape, sidecar=sc)
        write_digitised_las(output_path(out, f"{it.id}.tif"), log, {"MODEL": "naive"})
    return time.perf_counter() - t0


def project(rate: float, eur_per_month: float) -> tuple[float, float]:
    """(hours, euros) for the archive at `rate` scans/s on a tier costing `eur_per_month`."""
    hours = ARCHIVE / rate / 3600.0
    return hours, hours * eur_per_month / HOURS_PER_MONTH


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4, help="scans (default: %(default)s)")
    p.add_argument("--preset", default="seed", choices=("seed", "demo"),
                   help="scan size: seed = 3200-12800 x 480-640 px, demo = 640-2560 x 96-128 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--checkpoint", default="shipped",
                   help="checkpoint to use: shipped (the package's weights), tiny (a fixed-seed tiny VeerNet: "
                        "stem 8, widths 8-16-16-32-32) or a path (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--naive-n", type=int, help="time the naive loop on the first N scans only (its rate is per "
                   "scan; default: all)")
    p.add_argument("--batching", default="auto", choices=("auto", "grid", "buckets"),
                   help="the model actor's batches (veernet infer --batching; default: %(default)s)")
    p.add_argument("--model-actors", type=int, help="model actors (veernet infer --model-actors)")
    p.add_argument("--decode-cpus", type=float, default=0.5)
    p.add_argument("--write-cpus", type=float, default=0.5)
    p.add_argument("--cpu-node-eur-month", type=float, default=150.0,
                   help="assumed monthly price of one CPU node like this one, for the projection (default: %(default)s)")
    p.add_argument("--results", help="append a section to this markdown file (e.g. bench/RESULTS.md)")
    p.add_argument("--device-label", default="2-core x86_64 CPU, no GPU")
    p.add_argument("--date", default=str(date.today()))
    p.add_argument("--smoke-test", action="store_true", help="2 demo-size scans, for the test suite")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.n, args.preset, args.checkpoint = 2, "demo", "tiny"

    import ray
    import torch

    from veernet_ray.data.pipeline import load_items
    from veernet_ray.infer import InferOptions, run_inference
    from veernet_ray.infer.cli import tiny_checkpoint
    from veernet_ray.synth import generate_dataset

    work = Path(tempfile.mkdtemp(prefix="veernet-bench-infer-"))
    try:
        manifest = generate_dataset(work / "data", n=args.n, seed=args.seed, preset=args.preset,
                                    workers=max(1, min(8, (os.cpu_count() or 1) // 2)),
                                    progress=False, split=(1.0, 0.0, 0.0))
        items = load_items(manifest, "train")
        if args.checkpoint == "tiny":
            ckpt, ckpt_text = tiny_checkpoint(work / "model"), "fixed-seed tiny VeerNet (stem 8, widths 8-16-16-32-32)"
        elif args.checkpoint == "shipped":
            from veernet_ray.weights import shipped_checkpoint

            ckpt, ckpt_text = shipped_checkpoint(), "the shipped weights"
            if ckpt is None:
                p.error("this build ships no weights: give --checkpoint tiny or a checkpoint path")
        else:
            ckpt, ckpt_text = Path(args.checkpoint), f"`{args.checkpoint}`"
        cores = os.cpu_count() or 1
        gpu = torch.cuda.is_available()

        naive_items = items[: args.naive_n] if args.naive_n else items
        t_naive = naive(naive_items, ckpt, work / "naive") * len(items) / len(naive_items)  # per scan, scaled
        from veernet_ray.raycluster import init_ray

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from gpu_busy import GpuBusy

        t_start = time.perf_counter()
        init_ray(None, log_to_driver=False)  # a private local Ray, never the one /tmp/ray names
        ray_start_s = time.perf_counter() - t_start
        with GpuBusy() as busy:
            s = run_inference(InferOptions(input=str(manifest), output=str(work / "ray"), checkpoint=str(ckpt),
                                           batch_size=args.batch_size, batching=args.batching, tracking=False,
                                           progress=False, verbose=False, overlays="none",
                                           model_actors=args.model_actors, decode_cpus=args.decode_cpus,
                                           write_cpus=args.write_cpus))
        with_startup_s = time.perf_counter() - t_start
        ray.shutdown()
        naive_rate = len(items) / t_naive
        ray_rate = s["scans_per_s"]
        mpx = sum(it.height * it.width for it in items) / 1e6
        rows = [
            ("naive loop (1 process, batch 1, float32" + (f"; timed on {len(naive_items)} scans, wall scaled"
                                                          if len(naive_items) < len(items) else "") + ")",
             naive_rate, t_naive),
            (f"Ray Data pipeline (batch {args.batch_size}, {s['model_actors']} model actor(s) x "
             f"{s['model_cpus']:g} CPU, {s['device']})", ray_rate, s["pipeline_s"]),
        ]
        lines = [
            f"- Scans: {len(items)} generated `{args.preset}`-size scans ({mpx:.1f} Mpx in all), "
            f"checkpoint {ckpt_text}",
            "",
            "| path | scans/s | wall s | scans/s per core |",
            "|---|---|---|---|",
        ]
        lines += [f"| {name} | {rate:.3f} | {wall:.1f} | {rate / cores:.3f} |" for name, rate, wall in rows]
        lines += [
            "",
            f"- Ratio pipeline / naive: **{ray_rate / naive_rate:.2f}x** without start-up; with start-up (Ray "
            f"{ray_start_s:.1f} s, actors and model load) {len(items) / with_startup_s:.3f} scans/s, "
            f"**{len(items) / with_startup_s / naive_rate:.2f}x**",
            f"- Model batching: {s.get('batching', 'buckets')}" + (f", grid {s['grid']}" if s.get("grid") else ""),
            f"- Pipeline stage time (summed over scans): decode {s['t_decode_s']:.1f} s, "
            f"model {s['t_model_s']:.1f} s, trace+write {s['t_write_s']:.1f} s; {s['model_batches']} model batches",
            "- GPU busy (nvidia-smi, whole run): " + (busy.text() if gpu else "n/a (no GPU)"),
            f"- Projection for {ARCHIVE:,} scans (rate x hours; {HOURS_PER_MONTH:.0f} h/month):",
        ]
        best = max(ray_rate, naive_rate)
        h, eur = project(best, args.cpu_node_eur_month)
        if not gpu:  # CPU-only figures: a GPU's rate is not a CPU node's
            lines.append(f"  - this CPU node ({cores} cores, assumed {args.cpu_node_eur_month:.0f} EUR/month): "
                         f"{h:,.0f} h, {eur:,.0f} EUR at {best:.3f} scans/s")
        per_core = best / cores
        for c in ((16, 64) if not gpu else ()):
            h, eur = project(per_core * c, args.cpu_node_eur_month * c / cores)
            lines.append(f"  - {c}-core CPU node at the measured {per_core:.3f} scans/s per core (linear scaling "
                         f"assumed, {args.cpu_node_eur_month * c / cores:,.0f} EUR/month): {h:,.0f} h, {eur:,.0f} EUR")
        for tier, price in TIERS.items():
            if gpu:
                h, eur = project(ray_rate, price)
                lines.append(f"  - {tier}: {h:,.1f} h, {eur:,.0f} EUR at {ray_rate:.2f} scans/s")
            else:
                lines.append(f"  - {tier}: not measured here (no GPU); cost = {ARCHIVE:,} / rate / 3600 h x "
                             f"{price / HOURS_PER_MONTH:.2f} EUR/h")
        body = "\n".join(lines)
        import shlex

        cmd = "PYTHONPATH=. .venv/bin/python bench/infer_throughput.py " + shlex.join(argv or sys.argv[1:])
        section = (f"\n## Inference throughput (bench/infer_throughput.py)\n\n- Command: `{cmd.strip()}`\n"
                   f"- Device: {args.device_label}\n- Date: {args.date}\n{body}\n")
        print(section)
        print(json.dumps({"naive_scans_per_s": naive_rate, "pipeline_scans_per_s": ray_rate,
                          "ratio": ray_rate / naive_rate}))
        if args.results:
            with open(args.results, "a", encoding="utf-8") as fh:
                fh.write(section)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
