"""TOML presets into frozen dataclasses: overrides, nesting, and loud failures that name the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.presets import PACKAGE_CONFIGS, from_dict, load_preset, resolve_preset


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 0.1  # a rate
    names: tuple[str, ...] = ("a",)


@dataclasses.dataclass(frozen=True)
class Outer:
    epochs: int = 3
    optimizer: str = "adam"
    flag: bool = False
    limit: int | None = None
    inner: Inner = Inner()


def test_from_dict_overrides_and_nests():
    cfg = from_dict(Outer, {"epochs": 5, "inner": {"rate": 1, "names": ["x", "y"]}, "limit": 3})
    assert cfg == Outer(epochs=5, limit=3, inner=Inner(rate=1.0, names=("x", "y")))


@pytest.mark.parametrize(
    ("values", "needle"),
    [({"epoch": 5}, "unknown key 'epoch'"), ({"inner": {"rte": 1}}, "unknown key 'rte'"),
     ({"epochs": "5"}, "must be an integer"), ({"flag": 1}, "true or false"), ({"inner": 3}, "must be a table")],
)
def test_from_dict_fails_loudly(values, needle):
    with pytest.raises(FerkaggleError, match=needle):
        from_dict(Outer, values, "my.toml")


def test_load_preset_from_path_names_the_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("epochs = 7\n[inner]\nrate = 0.5\n")
    assert load_preset(Outer, str(path)) == Outer(epochs=7, inner=Inner(rate=0.5))
    path.write_text("epochs = [\n")
    with pytest.raises(FerkaggleError, match="not valid TOML"):
        load_preset(Outer, str(path))
    with pytest.raises(FerkaggleError, match="no preset named"):
        load_preset(Outer, "definitely-not-a-preset")


def test_a_name_is_a_preset_of_the_package_and_a_path_is_the_users(tmp_path, monkeypatch):
    """`simple` is the package's ferkaggle/configs/simple.toml wherever ferkaggle runs (a configs/
    folder in the working directory does not shadow it); a user's own preset is given as a path."""
    own = tmp_path / "configs" / "simple.toml"
    own.parent.mkdir()
    own.write_text("epochs = 1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_preset("simple") == PACKAGE_CONFIGS / "simple.toml"
    assert PACKAGE_CONFIGS == Path(__file__).resolve().parents[2] / "ferkaggle" / "configs"
    assert resolve_preset("quick", "spaces") == PACKAGE_CONFIGS / "spaces" / "quick.toml"
    assert resolve_preset("configs/simple.toml") == Path("configs/simple.toml")
