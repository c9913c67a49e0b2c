"""Search spaces: named variants, each a set of dotted `RunConfig` overrides.

Tune searches over variant *labels* (and tiers); a trial turns its label back
into overrides and applies them with `RunConfig.with_overrides`, so a sweep
changes the same typed fields a user would change with `--set`, never a
parallel dict of hyperparameters.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from veernet_ray.config import ConfigError, ModelConfig
from veernet_ray.losses.schedule import parse_schedule

# The loss ablation of the issue: the five losses alone and the two warm-up schedules
# the whitepapers argue for (soft-CE first, then Lovasz or Tversky; switch at the midpoint).
LOSS_SWEEP = ("dice", "tversky", "lovasz", "focal", "sce", "sce->lovasz", "sce->tversky")

# Capacity ablation (on small from-scratch data the smallest backbone tends to win).
# width: a multiplier on the config's encoder widths; depth: how many stride-2 encoder blocks.
WIDTH_MULTS = (0.5, 1.0, 2.0)
# 4 and 5 blocks: each block removed quadruples the attention bottleneck's tokens (a 640 x 12,800 seed log
# has 20 x 400 = 8,000 at depth 5, 32,000 at depth 4, 128,000 at depth 3), so shallower is opt-in (--depths).
DEPTHS = (4, 5)


def slug(text: str) -> str:
    """A run-name-safe label: "sce->lovasz" -> "sce_to_lovasz"."""
    return text.replace("->", "_to_").replace("@", "_at").replace(" ", "_")


def loss_variants(losses: Sequence[str] = LOSS_SWEEP, *, epochs: int) -> dict[str, dict[str, Any]]:
    """{label: {"train.loss": spec}}; every spec is parsed for `epochs` now, so a bad one fails before Ray starts."""
    out = {}
    for spec in losses:
        try:
            parse_schedule(spec, epochs)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"loss {spec!r} cannot be swept with train.epochs={epochs}: {exc}") from exc
        out[spec] = {"train.loss": spec}
    return out


def capacity_widths(base: Sequence[int], mult: float, depth: int, *, attn_heads: int) -> tuple[int, ...]:
    """The first `depth` of `base` widths scaled by `mult`, rounded up to multiples of 8.

    8 keeps GroupNorm's groups (min(C // 2, 16)) whole; the last width is also a
    multiple of `attn_heads`, which must divide the attention token width.
    """
    if not 1 <= depth <= len(base):
        raise ConfigError(f"capacity depth must be in [1, {len(base)}] for base widths {list(base)} "
                          f"(one base width per encoder block); got {depth}")
    if mult <= 0:
        raise ConfigError(f"capacity width multiplier must be positive, got {mult}")
    widths = [max(8, 8 * math.ceil(w * mult / 8)) for w in base[:depth]]
    step = math.lcm(8, attn_heads)
    widths[-1] = step * math.ceil(widths[-1] / step)
    return tuple(widths)


def capacity_variants(base: ModelConfig, mults: Sequence[float] = WIDTH_MULTS,
                      depths: Sequence[int] = DEPTHS) -> dict[str, dict[str, Any]]:
    """{label: {"model.stem_width": ..., "model.widths": [...]}} for every width x depth."""
    out = {}
    for d in depths:
        for m in mults:
            widths = capacity_widths(base.widths, m, d, attn_heads=base.attn_heads)
            stem = max(8, 8 * math.ceil(base.stem_width * m / 8))
            out[f"w{m:g}x-d{d}"] = {"model.stem_width": stem, "model.widths": list(widths)}
    return out
