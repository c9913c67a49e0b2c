"""Capacity ablation: encoder width multiplier x depth x GPU tier, priced per trial (small data favours small backbones).

Same as `veernet tune capacity`; see `--help`. Smoke test on CPU in a few minutes:

    python tuning/capacity_ablation.py --smoke
"""

import sys

from veernet_ray.tune.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="tuning/capacity_ablation.py", kind="capacity"))
