"""Ship a trained checkpoint: `python -m veernet_ray.weights.export CKPT --report REPORT.json [...]`.

Writes `veernet_ray/weights/veernet.pt` (inference-only payload) and `veernet.json`, the
model card: training data and config (from the checkpoint), the command, device and
wall clock given here, and the leave-style-out figures of a `veernet evaluate` report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from veernet_ray.model.checkpoint import load_payload
    from veernet_ray.weights import SHIPPED, export_weights

    p = argparse.ArgumentParser(prog="python -m veernet_ray.weights.export", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="checkpoint.pt (or a folder holding one) to ship")
    p.add_argument("--report", required=True, help="report.json of `veernet evaluate` on this checkpoint")
    p.add_argument("--data", required=True, help="what the model was trained on (one line)")
    p.add_argument("--command", required=True, help="the commands that trained it")
    p.add_argument("--device", required=True, help="where it was trained")
    p.add_argument("--wall-clock", required=True, help="training wall clock, e.g. '95 min'")
    p.add_argument("--dest", default=str(SHIPPED), help="where to write (default: the package's weights)")
    args = p.parse_args(argv)
    payload = load_payload(args.checkpoint)
    history = json.loads(payload.get("history", "[]")) if isinstance(payload.get("history"), str) else []
    report = json.loads(Path(args.report).read_text(encoding="utf-8"))
    card = {
        "data": args.data,
        "command": args.command,
        "device": args.device,
        "wall_clock": args.wall_clock,
        "epochs": int(payload.get("epoch", -1)) + 1,
        "config": payload.get("config", {}),
        "model_config": payload.get("model_config", {}),
        "training_history": history,
        "evaluation": {k: report.get(k) for k in ("meta", "curves", "masks", "qc")},
    }
    dest = export_weights(args.checkpoint, args.dest, card=card)
    print(f"{dest} ({dest.stat().st_size / 2**20:.2f} MiB) and {dest.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
