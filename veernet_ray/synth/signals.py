"""Stochastic log-like signals and the registry of curve kinds they are drawn as.

A signal is generated as a *track position* u(column) (0 = the value axis's
left edge, which is the bottom row of the canonical raster; 1 = the right edge,
the top row) and turned into values through the kind's scale, so linear and
log (2-4 decade) curves share one generator. Values beyond the track (u < 0 or
u > 1) are what a backup (wrap-around) segment draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CurveKind:
    """A log curve type: mnemonic, unit, scale and the track scales it is printed on."""

    mnemonic: str
    unit: str
    scale: str  # "linear" | "log"
    scales: tuple[tuple[float, float], ...]  # (left value, right value) choices
    descr: str = ""


_RES = ((0.2, 2000.0), (0.2, 200.0), (0.2, 20.0), (1.0, 1000.0), (2.0, 2000.0), (0.1, 100.0))

#: Registry of curve kinds for the stochastic source (one dict, STYLE practice 2).
CURVE_KINDS: dict[str, CurveKind] = {
    k.mnemonic: k
    for k in (
        CurveKind("GR", "GAPI", "linear", ((0, 150), (0, 200), (0, 100), (0, 120), (20, 170)), "gamma ray"),
        CurveKind("CGR", "GAPI", "linear", ((0, 150), (0, 100)), "computed gamma ray"),
        CurveKind("SP", "MV", "linear", ((-80, 20), (-100, 0), (-60, 40), (-160, 40)), "spontaneous potential"),
        CurveKind("CALI", "IN", "linear", ((6, 16), (4, 14), (8, 18)), "caliper"),
        CurveKind("ILD", "OHMM", "log", _RES, "deep induction resistivity"),
        CurveKind("ILM", "OHMM", "log", _RES, "medium induction resistivity"),
        CurveKind("LLD", "OHMM", "log", _RES, "deep laterolog resistivity"),
        CurveKind("LLS", "OHMM", "log", _RES, "shallow laterolog resistivity"),
        CurveKind("MSFL", "OHMM", "log", _RES, "micro-spherically focused resistivity"),
        CurveKind("SFLU", "OHMM", "log", _RES, "spherically focused resistivity"),
        CurveKind("RHOB", "G/C3", "linear", ((1.95, 2.95), (1.7, 2.7), (2.0, 3.0)), "bulk density"),
        CurveKind("NPHI", "V/V", "linear", ((0.45, -0.15), (0.6, 0.0), (0.3, -0.1)), "neutron porosity"),
        CurveKind("DT", "US/F", "linear", ((140, 40), (189, 40), (240, 40)), "sonic transit time"),
        CurveKind("PEF", "B/E", "linear", ((0, 10), (0, 20)), "photoelectric factor"),
        CurveKind("DRHO", "G/C3", "linear", ((-0.25, 0.25),), "density correction"),
        CurveKind("RES", "OHMM", "linear", ((0, 20), (0, 50), (2, 20)), "normal resistivity (early log)"),
    )
}


def pick_kinds(rng: np.random.Generator, n: int = 2) -> list[CurveKind]:
    """`n` distinct kinds, uniformly."""
    names = sorted(CURVE_KINDS)
    idx = rng.choice(len(names), size=n, replace=False)
    return [CURVE_KINDS[names[i]] for i in idx]


def smooth1d(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along a 1-D array (reflect at the ends)."""
    if sigma <= 0.2:
        return x
    r = int(3 * sigma) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(x, r, mode="reflect") if x.size > r else np.pad(x, r, mode="edge")
    return np.convolve(pad, k, mode="valid")


def log_signal(rng: np.random.Generator, n: int, size_factor: float = 1.0) -> np.ndarray:
    """A raw log-like signal of length n (arbitrary units, roughly 0..1 before normalising).

    Blocky layering (beds with Poisson-spaced boundaries, bimodal sand/shale
    levels), smoothed bed transitions (finite tool resolution), a depth trend,
    fine noise, a few spikes and washout bumps.
    """
    f = max(size_factor, 0.2)
    mean_bed = rng.uniform(15, 300) * f
    n_beds = max(2, int(n / mean_bed) + 2)
    bounds = np.sort(rng.uniform(0, n, size=n_beds))
    edges = np.searchsorted(bounds, np.arange(n))
    # bimodal bed levels (shale-ish vs sand-ish) with variation inside each mode
    mode = rng.random(n_beds + 1) < rng.uniform(0.3, 0.7)
    lo, hi = rng.uniform(0.1, 0.35), rng.uniform(0.55, 0.9)
    levels = np.where(mode, hi, lo) + rng.normal(0, rng.uniform(0.03, 0.12), n_beds + 1)
    x = levels[edges]
    # thin interbeds inside some beds (laminated sequences)
    if rng.random() < 0.5:
        lam = smooth1d(rng.normal(0, 1, n), rng.uniform(2, 10) * f)
        x = x + np.sign(lam) * rng.uniform(0.03, 0.15) * (rng.random(n_beds + 1) < 0.4)[edges]
    x = smooth1d(x, rng.uniform(0.8, 8.0) * f)
    # in-bed texture: smoothed noise at two scales
    x = x + smooth1d(rng.normal(0, rng.uniform(0.01, 0.06), n), rng.uniform(1, 8) * f) * rng.uniform(1, 3)
    x = x + smooth1d(rng.normal(0, rng.uniform(0.0, 0.1), n), rng.uniform(10, 80) * f) * 3
    # trend (compaction) and slow drift
    x = x + rng.uniform(-0.25, 0.25) * np.linspace(0, 1, n)
    # spikes: narrow excursions (what a grid line looks like to a naive tracer)
    for _ in range(rng.poisson(rng.uniform(0, 4) * n / 2000 + 0.3)):
        c = rng.integers(0, n)
        w = rng.uniform(0.7, 3.0) * f
        a = rng.choice([-1, 1]) * rng.uniform(0.15, 0.5)
        x = x + a * np.exp(-0.5 * ((np.arange(n) - c) / w) ** 2)
    # washouts: broader bumps
    for _ in range(rng.poisson(0.8)):
        c = rng.integers(0, n)
        w = rng.uniform(10, 80) * f
        x = x + rng.uniform(-0.3, 0.3) * np.exp(-0.5 * ((np.arange(n) - c) / w) ** 2)
    return x


def to_band(x: np.ndarray, b0: float, b1: float) -> np.ndarray:
    """Affine map so that min(x) -> b0 and max(x) -> b1 (track fractions)."""
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    if hi - lo < 1e-12:
        return np.full_like(x, 0.5 * (b0 + b1))
    return b0 + (b1 - b0) * (x - lo) / (hi - lo)


def spectral_signal(rng: np.random.Generator, n: int, size_factor: float = 1.0) -> np.ndarray:
    """A log-like signal with a power-law spectrum, regime changes, shale baselines and spikes.

    Real logs are neither white noise nor square waves: their spectrum falls off
    roughly as 1 / f**beta (beta 1.2-2.4: fast wiggles on slow trends), the mean
    level jumps at formation boundaries, shales sit on a flat baseline, and a
    few single-sample spikes stand out (what a grid line looks like to a naive
    tracer). Built in the frequency domain, so it costs one FFT.
    """
    f = max(size_factor, 0.2)
    beta = rng.uniform(1.2, 2.4)
    freqs = np.fft.rfftfreq(n)
    amp = np.zeros_like(freqs)
    amp[1:] = freqs[1:] ** (-beta / 2)
    # pen and tool resolution: nothing finer than ~1-3 px survives on paper
    amp *= np.exp(-((freqs * rng.uniform(1.0, 4.0) * f) ** 2))
    phase = rng.uniform(0, 2 * np.pi, freqs.size)
    x = np.fft.irfft(amp * np.exp(1j * phase), n=n)
    x = (x - x.mean()) / (x.std() + 1e-12)
    # regime changes: piecewise level shifts at formation boundaries
    n_reg = rng.poisson(rng.uniform(0.5, 4.0) * max(n / 3000, 0.3))
    if n_reg:
        bounds = np.sort(rng.integers(0, n, n_reg))
        levels = np.concatenate([[0.0], np.cumsum(rng.normal(0, rng.uniform(0.5, 2.0), n_reg))])
        x = x + smooth1d(levels[np.searchsorted(bounds, np.arange(n), side="right")], rng.uniform(1, 6) * f)
    # flat shale baselines: clip one side to a level with a little noise
    if rng.random() < 0.4:
        base = np.percentile(x, rng.uniform(20, 50))
        side = 1 if rng.random() < 0.5 else -1
        x = np.where(side * (x - base) > 0, base + side * np.abs(rng.normal(0, 0.05, n)), x)
    # single-sample and very narrow spikes
    for _ in range(rng.poisson(rng.uniform(0, 6) * n / 4000 + 0.2)):
        c = int(rng.integers(0, n))
        wdt = rng.uniform(0.5, 2.0) * f
        a = rng.choice([-1, 1]) * rng.uniform(1.0, 3.0)
        lo, hi = max(0, int(c - 4 * wdt) - 1), min(n, int(c + 4 * wdt) + 2)
        x[lo:hi] += a * np.exp(-0.5 * ((np.arange(lo, hi) - c) / wdt) ** 2)
    return x


#: Stochastic signal families (one registry): name -> (generator, share of draws).
SIGNALS = {"spectral": (spectral_signal, 0.65), "layered": (log_signal, 0.35)}


def stochastic_signal(rng: np.random.Generator, n: int, size_factor: float = 1.0) -> np.ndarray:
    """Draw from one of `SIGNALS` by its share."""
    names = list(SIGNALS)
    p = np.array([SIGNALS[k][1] for k in names])
    name = names[int(rng.choice(len(names), p=p / p.sum()))]
    return SIGNALS[name][0](rng, n, size_factor)
