"""Recorded runs: the registry of run folders (registry), the checkpoint layout a CNN fit leaves
while it trains (checkpoints), the search's files under runs/searches/ (studies), the one ranking
of runs and the choice of `best` and `latest` (select), and the leaderboard (leaderboard)."""
