"""Capacity ablation: encoder width multiplier x depth (DOMAIN.md's small-data lesson) x GPU tier, priced per trial.

Same as `veernet tune capacity`; see `--help`. Smoke test on CPU in a few minutes:

    python tuning/capacity_ablation.py --smoke
"""

import sys

from veernet_ray.tune.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="tuning/capacity_ablation.py", kind="capacity"))
