"""Archive-scale batch inference: scans -> LAS files on Ray Data (`veernet infer`).

listing (headers only) -> stages (decode, model actor pool, trace + write) ->
pipeline (the Ray Data graph) -> results (qc.parquet, errors.parquet, summary, MLflow); tiles for
scans wider than one forward pass; score for grading outputs against truth.
"""

from veernet_ray.infer.pipeline import (
    InferError,
    InferJobError,
    InferOptions,
    digitise_manifest_split,
    format_summary,
    run_inference,
)
from veernet_ray.infer.score import score_outputs

__all__ = ["InferError", "InferJobError", "InferOptions", "digitise_manifest_split", "format_summary", "run_inference",
           "score_outputs"]
