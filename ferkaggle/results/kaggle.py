"""Upload submissions to Kaggle and download competition files, through the official `kaggle` package.

Nothing here is needed for local work. Before touching the package we check that it is
installed and that credentials exist, and say in one line what is missing, because
importing `kaggle` without credentials exits the process from inside the package.
Credentials: `~/.kaggle/kaggle.json` (or `$KAGGLE_CONFIG_DIR/kaggle.json`), the variables
KAGGLE_USERNAME and KAGGLE_KEY, or a KAGGLE_API_TOKEN (newer kaggle releases).
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

from ferkaggle.core.errors import FerkaggleError


def _config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))


def missing_requirement() -> str | None:
    """None when an upload/download can be attempted, else one line saying what is missing."""
    if importlib.util.find_spec("kaggle") is None:
        return "the kaggle package is not installed: run `pip install 'ferkaggle[kaggle]'` (or `pip install kaggle`)"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return None
    if os.environ.get("KAGGLE_API_TOKEN") or (_config_dir() / "access_token").is_file():
        return None
    if (_config_dir() / "kaggle.json").is_file():
        return None
    if os.environ.get("KAGGLE_USERNAME") or os.environ.get("KAGGLE_KEY"):
        return "Kaggle credentials are incomplete: set both KAGGLE_USERNAME and KAGGLE_KEY"
    return (f"no Kaggle credentials: put kaggle.json (from your Kaggle account page, 'Create New Token') in "
            f"{_config_dir()}/, or set KAGGLE_USERNAME and KAGGLE_KEY")


def _api():
    problem = missing_requirement()
    if problem:
        raise FerkaggleError(problem)
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
    except SystemExit as exc:  # the package exits on bad credentials
        raise FerkaggleError(f"Kaggle authentication failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure inside the client is the user's environment
        raise FerkaggleError(f"Kaggle authentication failed: {exc}") from None
    return api


def upload(competition: str, file: Path, message: str) -> None:
    api = _api()
    try:
        api.competition_submit(str(file), message, competition)
    except Exception as exc:  # noqa: BLE001
        raise FerkaggleError(f"Kaggle upload of {file} to {competition!r} failed: {exc}") from None


def download(competition: str, out_dir: Path) -> list[Path]:
    """Download and unzip a competition's files into out_dir; returns the files written."""
    api = _api()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        api.competition_download_files(competition, path=str(out_dir), quiet=False)
    except Exception as exc:  # noqa: BLE001
        raise FerkaggleError(f"Kaggle download of {competition!r} failed: {exc}") from None
    written = []
    for archive in out_dir.glob(f"{competition}*.zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(out_dir)
            written += [out_dir / name for name in zf.namelist()]
    return written or sorted(p for p in out_dir.iterdir() if p.is_file())
