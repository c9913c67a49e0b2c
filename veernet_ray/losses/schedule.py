"""Loss schedules: one loss, or a chain that switches at given epochs.

Spec strings: "sce" (one loss throughout), "sce->lovasz" (switch at the midpoint),
"sce->lovasz@3" (switch at epoch 3, epochs counted from 0), and longer chains
such as "sce->dice@2->lovasz@6" (stages without "@" are spaced evenly).
Each stage's loss is built once, so its module can be reused every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from veernet_ray.losses import LOSSES, SegLoss, build_loss

__all__ = ["LossSchedule", "parse_schedule"]


@dataclass(frozen=True)
class LossSchedule:
    """Stage i uses loss `names[i]` from epoch `starts[i]` (starts[0] == 0) up to the next start."""

    spec: str
    epochs: int
    names: tuple[str, ...]
    starts: tuple[int, ...]
    losses: tuple[SegLoss, ...] = field(repr=False, compare=False)

    def stage_for_epoch(self, epoch: int) -> int:
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch {epoch} is outside the schedule's range [0, {self.epochs})")
        return max(i for i, s in enumerate(self.starts) if s <= epoch)

    def loss_for_epoch(self, epoch: int) -> SegLoss:
        """The loss module to train with in `epoch` (0-based); its `.unit` may change between stages."""
        return self.losses[self.stage_for_epoch(epoch)]

    def name_for_epoch(self, epoch: int) -> str:
        return self.names[self.stage_for_epoch(epoch)]


def parse_schedule(
    spec: str, epochs: int, params: Mapping[str, Mapping[str, object]] | None = None
) -> LossSchedule:
    """Parse a schedule spec for a run of `epochs` epochs.

    Args:
        spec: e.g. "sce", "sce->lovasz", "sce->lovasz@3".
        epochs: total epochs of the run (>= number of stages).
        params: optional keyword parameters per loss name,
            e.g. {"tversky": {"alpha": 0.3, "beta": 0.7}}.

    Raises:
        KeyError: an unknown loss name (the message lists the valid names).
        ValueError: malformed spec, or switch epochs not strictly increasing
            within [1, epochs - 1] (every stage must get at least one epoch).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}")
    params = dict(params or {})
    parts = [p.strip() for p in spec.split("->")]
    if not spec.strip() or any(not p for p in parts):
        raise ValueError(f"malformed loss schedule {spec!r}; expected e.g. 'sce', 'sce->lovasz' or 'sce->lovasz@3'")
    names: list[str] = []
    starts: list[int | None] = []
    for i, part in enumerate(parts):
        name, _, at = part.partition("@")
        name = name.strip()
        if name not in LOSSES:
            raise KeyError(f"unknown loss {name!r} in schedule {spec!r}; valid losses: {', '.join(LOSSES)}")
        if i == 0 and at:
            raise ValueError(f"the first loss in {spec!r} starts at epoch 0; drop its '@{at}'")
        try:
            starts.append(0 if i == 0 else (int(at) if at else None))
        except ValueError:
            raise ValueError(f"switch epoch {at!r} in {spec!r} is not an integer") from None
        names.append(name)
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise KeyError(f"params given for loss(es) not in schedule {spec!r}: {', '.join(unknown)}")
    n = len(names)
    # Stages without "@": evenly spaced, so "a->b" switches at epochs // 2.
    resolved = [s if s is not None else (i * epochs) // n for i, s in enumerate(starts)]
    for i in range(1, n):
        if not 1 <= resolved[i] <= epochs - 1:
            raise ValueError(
                f"switch to {names[i]!r} at epoch {resolved[i]} is outside [1, {epochs - 1}] for a {epochs}-epoch run"
            )
        if resolved[i] <= resolved[i - 1]:
            raise ValueError(f"switch epochs in {spec!r} must be strictly increasing; got {resolved}")
    losses = tuple(build_loss(name, **dict(params.get(name, {}))) for name in names)
    return LossSchedule(spec=spec, epochs=epochs, names=tuple(names), starts=tuple(resolved), losses=losses)
