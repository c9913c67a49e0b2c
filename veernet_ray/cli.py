"""The `veernet` command line.

Each subcommand lives in the module that owns its pipeline stage and exposes a
thin `main(argv) -> int` that parses arguments and calls an API function
(nnU-Net's `*_entry()` habit). The table below is the one place subcommands
are registered; modules are imported only when their command runs, so
`veernet --help` stays fast and never imports torch or Ray.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module exposing main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("veernet_ray.synth.cli", "generate synthetic raster logs with masks, truth LAS and sidecars"),
    "model-info": ("veernet_ray.model.info", "print VeerNet's parameter count and layer table"),
    "train": ("veernet_ray.train.cli", "train VeerNet on Ray Train (two stages, checkpoints, MLflow)"),
    "infer": ("veernet_ray.infer.cli", "digitise scans into LAS files with QC flags on Ray Data"),
    "review": ("veernet_ray.review.cli", "review flagged curves in a local web page; export the fixes as training data"),
    "evaluate": ("veernet_ray.evaluate.cli", "grade a model beside classical tracers on styles it never trained on"),
    "plan": ("veernet_ray.plan.cli", "plan physical batch, accumulation, epoch time and euros per GPU tier"),
    "tune": ("veernet_ray.tune.cli", "Ray Tune sweeps (losses, capacity) priced per GPU tier, logged to MLflow"),
    "compare": ("veernet_ray.tune.compare", "rank a sweep's runs, plot quality vs euros, recommend one"),
    "demo": ("veernet_ray.demo", "generate -> train -> digitise on local Ray and MLflow, print where results are"),
}


class HelpFormatter(argparse.HelpFormatter):
    """--help with each option's default shown once, and examples kept on their own lines.

    argparse's ArgumentDefaultsHelpFormatter appends "(default: X)" to every option, also where
    the help already names a default in words and where there is none ("(default: None)"), and
    its plain formatter runs an epilog's example lines together.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        # a line that starts with a space (an example) is kept as written; other lines are wrapped
        return "\n".join(indent + line if line[:1].isspace() else super(HelpFormatter, self)._fill_text(line, width, indent)
                         for line in text.splitlines())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or "%(default)" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in ("?", "*"):
            return f"{text} (default: %(default)s)"
        return text


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: veernet <command> [options]",
        "",
        "Digitise scanned raster well logs into LAS curves with VeerNet, on Ray.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run `veernet <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from veernet_ray import __version__

        print(f"veernet {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"veernet: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
