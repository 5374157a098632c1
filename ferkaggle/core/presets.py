"""Config is data: frozen dataclasses per stage, loaded from TOML presets.

A preset lists only what it changes from the dataclass defaults; unknown keys fail
loudly with the file and the key. Nested dataclasses map to TOML tables. The named
presets ship inside the package (ferkaggle/configs/, package data, so they are there after
`pip install ferkaggle` too); a name resolves to `ferkaggle/configs/<name>.toml`, and
anything with a `/` or a `.toml` suffix, or an existing file, is a path (a user's own preset).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from ferkaggle.core.errors import FerkaggleError

T = TypeVar("T")

PACKAGE_CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # ferkaggle/configs/, shipped in the wheel


def resolve_preset(name_or_path: str | Path, subdir: str = "") -> Path:
    """Find a preset file by name (`simple`, among the package's presets) or path (`my/cfg.toml`)."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or Path(text).exists():
        path = Path(text)
        if not path.is_file():
            raise FerkaggleError(f"{path}: no such config file")
        return path
    folder = PACKAGE_CONFIGS / subdir
    candidate = folder / f"{text}.toml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in folder.glob("*.toml"))
    raise FerkaggleError(f"no preset named {text!r} (looked for {candidate}); known: {', '.join(known) or 'none'}"
                         "; a preset of your own is given as a path (my/preset.toml)")


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise FerkaggleError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise FerkaggleError(f"{path}: cannot read: {exc.strerror}") from None


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config", base: T | None = None) -> T:
    """Build dataclass `cls` from `values` over `base` (or the defaults), checking every key and type."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(cls)
    base = base if base is not None else cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise FerkaggleError(f"{where}: unknown key {key!r}; allowed: {', '.join(fields)}")
        hint = hints[key]
        current = getattr(base, key)
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise FerkaggleError(f"{where}: {key!r} must be a table")
            changes[key] = from_dict(hint, value, f"{where}.{key}", current)
        else:
            changes[key] = _coerce(value, hint, f"{where}: {key!r}")
    return dataclasses.replace(base, **changes)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except FerkaggleError as exc:
                errors.append(str(exc))
        raise FerkaggleError(errors[0] if errors else f"{where} has the wrong type")
    if origin is typing.Literal:
        if value not in args:
            raise FerkaggleError(f"{where} must be one of {', '.join(map(repr, args))}, not {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise FerkaggleError(f"{where} must be a list, not {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value] if inner is not Any else list(value)
        return tuple(items) if origin is tuple else items
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FerkaggleError(f"{where} must be a number, not {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FerkaggleError(f"{where} must be an integer, not {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise FerkaggleError(f"{where} must be true or false, not {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise FerkaggleError(f"{where} must be a string, not {value!r}")
        return value
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """The whole resolved config, for run.json."""
    return dataclasses.asdict(cfg)


def load_preset(cls: type[T], name_or_path: str | Path | None, subdir: str = "", base: T | None = None) -> T:
    """Defaults of `cls`, overridden by the preset (if any)."""
    if name_or_path is None:
        return base if base is not None else cls()
    path = resolve_preset(name_or_path, subdir)
    return from_dict(cls, read_toml(path), str(path), base)
