"""The package's import rules, read from the source with ast (no module is imported).

Training and inference are siblings over model, data, losses, metrics, trace, las and
tracking: neither imports the other. Training never reaches up to plan or tune (they run
or measure it) nor sideways to the generator; it only reads the plan file, whose format
plan/ owns. Every import counts, function-level ones too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "veernet_ray"

# package -> packages it must never import
FORBIDDEN = {
    "infer": {"train", "tune", "plan"},
    "train": {"synth", "infer", "tune", "plan"},
    "model": {"train", "infer", "data", "plan", "tune", "synth"},
    "data": {"train", "infer", "plan", "tune"},
}
# the exceptions, by module: training reads plan.json (`train.plan=`) through the plan file's own reader
ALLOWED = {"train": {"veernet_ray.plan.planfile"}}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every `import veernet_ray...` / `from veernet_ray... import` in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("veernet_ray")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "veernet_ray":  # from veernet_ray import tracking
                out += [(node.lineno, f"veernet_ray.{a.name}") for a in node.names]
            elif node.module.startswith("veernet_ray."):
                out.append((node.lineno, node.module))
    return out


def _violations(package: str, forbidden: set[str]) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for line, module in imports_of(path):
            target = module.split(".")[1] if "." in module else ""
            if target in forbidden and module not in ALLOWED.get(package, ()):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_stage_import_rules(package):
    assert _violations(package, FORBIDDEN[package]) == []


def test_plan_cli_does_not_borrow_from_train_cli():
    assert not [m for _, m in imports_of(PACKAGE / "plan" / "cli.py") if m == "veernet_ray.train.cli"]


def test_the_checker_sees_function_level_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from veernet_ray.train.loop import x\n    from veernet_ray import tracking\n")
    assert imports_of(src) == [(2, "veernet_ray.train.loop"), (3, "veernet_ray.tracking")]
