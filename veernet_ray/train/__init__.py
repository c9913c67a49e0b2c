"""Ray Train: the driver (`run_training`) and the per-worker loop (`loop.train_func`)."""
