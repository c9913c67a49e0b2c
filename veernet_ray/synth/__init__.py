"""Synthetic raster-log generator: scanned-paper renders with masks, truth LAS and sidecars.

Public API:
- `render_sample(seed, index, config, pool=None) -> Sample` draws one image in memory;
- `generate_dataset(out_dir, n=..., ...) -> Path` writes a dataset and returns its manifest;
- `SynthConfig` / `ScanStyle` are the typed knobs; `PRESETS` the geometry presets.
"""

from veernet_ray.synth.render import Sample, render_sample
from veernet_ray.synth.styles import PRESETS, ScanStyle, SynthConfig, SynthConfigError

__all__ = ["Sample", "render_sample", "ScanStyle", "SynthConfig", "SynthConfigError", "PRESETS", "generate_dataset"]


def __getattr__(name):  # generate_dataset pulls in pandas/pyarrow: import it on first use
    if name == "generate_dataset":
        from veernet_ray.synth.generate import generate_dataset

        return generate_dataset
    raise AttributeError(name)
