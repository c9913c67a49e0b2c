"""Ray job: generate a synthetic dataset on a cluster.

    ray job submit --working-dir . -- python jobs/synth.py /shared/synth20k --preset seed --n 20000
    python jobs/synth.py --smoke-test          # tiny demo dataset on a local Ray, seconds

Same arguments as `veernet synth`; joins the running cluster (ray.init()) and
spreads the samples over all its CPUs. The output folder must be on storage
every node can write.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from veernet_ray.synth import cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--smoke-test" in argv:
        argv.remove("--smoke-test")
        out = tempfile.mkdtemp(prefix="veernet-synth-smoke-")
        argv = [str(Path(out) / "ds"), "--n", "4", "--preset", "demo", "--workers", "2", "--preview", "2", "--quiet"] + argv
        return cli.main(argv, prog="jobs/synth.py")
    if "--ray-address" not in argv and "--workers" not in argv:
        argv += ["--ray-address", "auto"]  # a submitted job joins its cluster and uses every CPU
    return cli.main(argv, prog="jobs/synth.py")


if __name__ == "__main__":
    sys.exit(main())
