"""What the command entry points share: the smoke presets.

Torch- and Ray-free, so every CLI can import it at start-up.
"""

from __future__ import annotations

#: `--smoke-test` of `veernet train`: 12 generated demo scans, one epoch, a tiny model (about a minute on a CPU)
SMOKE = [
    "data.generate_n=12", "data.generate_preset=demo", "train.epochs=1", "train.physical_batch=2",
    "train.effective_batch=4", "train.loss=sce", "model.stem_width=8", "model.widths=[8,16,16,32,32]",
    "train.val_overlays=1",
]
#: the smoke run's model and loss alone (`veernet plan --smoke-test` plans for the smoke model)
SMOKE_MODEL = [o for o in SMOKE if o.startswith(("model.", "train.loss="))]
