"""Atomic writes: never a half-written file, never a clobbered one, the umask's mode."""

from __future__ import annotations

import os
import stat

import pytest

from ferkaggle.core.fsutil import atomic_dir, atomic_write_text


def test_atomic_write_never_clobbers_when_asked(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "one")
    with pytest.raises(FileExistsError):
        atomic_write_text(path, "two", overwrite=False)
    assert path.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp files left


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.npy").write_bytes(b"x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "out.csv", "id,emotion\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_atomic_dirs_get_the_umask_mode_not_mkdtemps_0700(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "prepared") as tmp:
            (tmp / "x.npy").write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "prepared").st_mode) == 0o755
