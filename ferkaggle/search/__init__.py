"""The search over CNN configurations: spaces, the Optuna study, the worker and the search stage."""
