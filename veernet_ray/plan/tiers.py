"""GPU tiers to plan for: `configs/tiers.yaml`, or one card given on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from veernet_ray.config import PROJECT_ROOT

DEFAULT_TIERS = PROJECT_ROOT / "configs" / "tiers.yaml"
HOURS_PER_MONTH = 730.0  # 365 x 24 / 12: the hourly rate of a card rented around the clock


class TierError(ValueError):
    """A tiers file or tier choice that cannot be used; the message says what is valid."""


@dataclass(frozen=True)
class Tier:
    """One rentable card: memory in GiB, price per month, optional known throughput (Mpx/s)."""

    name: str
    gpu_mem_gb: float
    eur_month: float
    throughput_mpx_s: float | None = None
    hours_per_month: float = HOURS_PER_MONTH

    def __post_init__(self) -> None:
        if not self.gpu_mem_gb > 0:
            raise TierError(f"tier {self.name!r}: gpu_mem_gb must be positive, got {self.gpu_mem_gb}")
        if not self.eur_month >= 0:
            raise TierError(f"tier {self.name!r}: eur_month must be >= 0, got {self.eur_month}")
        if self.throughput_mpx_s is not None and not self.throughput_mpx_s > 0:
            raise TierError(f"tier {self.name!r}: throughput_mpx_s must be positive or null")

    @property
    def eur_hour(self) -> float:
        return self.eur_month / self.hours_per_month

    @property
    def mem_bytes(self) -> float:
        return self.gpu_mem_gb * 2**30


def load_tiers(path: str | Path | None = None) -> list[Tier]:
    """Tiers from a YAML file (default `configs/tiers.yaml`); unknown keys fail loudly."""
    path = Path(path) if path else DEFAULT_TIERS
    if not path.is_file():
        raise TierError(f"tiers file {path} not found; the shipped one is {DEFAULT_TIERS}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TierError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tiers"), list) or not data["tiers"]:
        raise TierError(f"{path}: expected a mapping with a non-empty 'tiers' list (see {DEFAULT_TIERS})")
    hours = float(data.get("hours_per_month", HOURS_PER_MONTH))
    fields = {"name", "gpu_mem_gb", "eur_month", "throughput_mpx_s"}
    tiers = []
    for i, row in enumerate(data["tiers"]):
        if not isinstance(row, dict):
            raise TierError(f"{path}: tiers[{i}] must be a mapping with keys {sorted(fields)}")
        unknown = set(row) - fields
        missing = {"name", "gpu_mem_gb", "eur_month"} - set(row)
        if unknown or missing:
            raise TierError(f"{path}: tiers[{i}] has unknown {sorted(unknown)} / missing {sorted(missing)} keys; "
                            f"valid keys: {sorted(fields)}")
        try:
            tiers.append(Tier(str(row["name"]), float(row["gpu_mem_gb"]), float(row["eur_month"]),
                              None if row.get("throughput_mpx_s") is None else float(row["throughput_mpx_s"]), hours))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, TierError):
                raise
            raise TierError(f"{path}: tiers[{i}]: {exc}") from exc
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise TierError(f"{path}: tier names must be unique, got {names}")
    return tiers


def select_tier(tiers: list[Tier], name: str | None) -> Tier | None:
    """The named tier (None: let the planner choose); an unknown name lists the valid ones."""
    if name is None:
        return None
    for t in tiers:
        if t.name == name:
            return t
    raise TierError(f"unknown tier {name!r}; valid tiers: {', '.join(t.name for t in tiers)}")
