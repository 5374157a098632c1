"""What is made from recorded runs' probabilities: ensembles, submissions, reports, the Kaggle upload."""
