"""Where the search keeps its own files under the runs folder (they are not runs):

    runs/searches/studies.db                     the embedded Optuna study database
    runs/searches/<study>/search.json            the search's summary
    runs/searches/<study>/trials/<key>/          a trial's epoch checkpoints, until it is a run

Paths only: the search (`ferkaggle.search`) writes and reads the files."""

from __future__ import annotations

from pathlib import Path

from ferkaggle.runs.registry import runs_root


def searches_root(root: str | Path | None = None) -> Path:
    """runs/searches/: where searches keep their own records (they are not runs)."""
    return runs_root(root) / "searches"


STUDY_DB = "studies.db"


def embedded_study_url(root: str | Path | None = None) -> str:
    """The SQLAlchemy URL of the embedded study file (runs/searches/studies.db), created on demand."""
    folder = searches_root(root)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / STUDY_DB).resolve()}"


def search_dir(study_name: str, root: str | Path | None = None) -> Path:
    """runs/searches/<study>/: search.json (the summary) and trials/<key>/ (epoch checkpoints)."""
    return searches_root(root) / study_name


def trial_state_dir(study_name: str, trial_key: str, root: str | Path | None = None) -> Path:
    """The checkpoint folder of one trial of a study (`ferkaggle.runs.checkpoints` names its files)."""
    return search_dir(study_name, root) / "trials" / trial_key
