"""Loss ablation: {dice, tversky, lovasz, focal, sce, sce->lovasz, sce->tversky} x GPU tier, priced per trial.

Same as `veernet tune losses`; see `--help`. Smoke test on CPU in a few minutes:

    python tuning/loss_ablation.py --smoke
"""

import sys

from veernet_ray.tune.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="tuning/loss_ablation.py", kind="losses"))
