"""Inference job for `ray job submit --working-dir . -- python jobs/infer.py --input DIR --output DIR --checkpoint ...`.

The same code path as `veernet infer`; under `ray job submit` RAY_ADDRESS
points at the cluster, so the job joins it instead of starting a local Ray.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the working dir, when not pip-installed

from veernet_ray.infer.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="jobs/infer.py"))
