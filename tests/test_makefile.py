"""The Makefile's install step: the CUDA libraries (the `gpu` extra) come along exactly where an
NVIDIA driver is, so `make submit` on a GPU machine trains on the GPU without a changed command."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("driver, extras", [(True, "'.[dev,gpu]'"), (False, "'.[dev]'")])
def test_install_adds_the_gpu_extra_where_nvidia_smi_is(tmp_path, driver, extras):
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if driver:
        fake = bin_dir / "nvidia-smi"
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
    # A PATH of that folder alone: `command -v nvidia-smi` finds the fake or nothing, whatever this machine has.
    out = subprocess.run([make, "-n", "-B", "-C", str(ROOT), f"VENV={tmp_path / 'venv'}", "install"],
                         env={"PATH": str(bin_dir)}, capture_output=True, text=True, check=True).stdout
    installs = [line for line in out.splitlines() if "pip install" in line and " -e " in line]
    assert len(installs) == 1 and installs[0].endswith(f"-e {extras}"), out
