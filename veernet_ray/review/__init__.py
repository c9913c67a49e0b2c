"""Human review of flagged curves (`veernet review`): a local web page over an inference output folder.

edits (pure NumPy edit operations) -> scan (one scan's LAS, pixels and geometry) ->
store (actions saved atomically: LAS, reviews.parquet, qc.parquet; optimistic versions) ->
server (http.server, fixed routes, static page) ; export (reviewed curves -> dataset samples);
tracking (review counts into the inference run's MLflow run).
"""
