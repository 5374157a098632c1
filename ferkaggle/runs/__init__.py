"""The run registry: one folder per run (run.json, metrics.json, *_proba.npy, the model), checkpoints,
the one ranking that answers `best` and `latest`, and the leaderboard."""
