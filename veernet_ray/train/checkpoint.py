"""Moved to `veernet_ray.model.checkpoint` (training and inference share it); kept importable here."""

from veernet_ray.model.checkpoint import (CHECKPOINT_FILE, load_model, load_payload, model_from_payload,  # noqa: F401
                                          save_checkpoint, unwrap, weights_hash)
