"""Beyond the competition: faces found in photos, a run's models for inference, predict, serve and export."""
