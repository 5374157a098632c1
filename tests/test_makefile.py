"""The Makefile: `make help` lists exactly the targets there are, `make install` adds the gpu extra
where an NVIDIA driver is and reinstalls when EXTRAS, BACKEND or CONSTRAINTS change, BACKEND
reaches the commands as KERAS_BACKEND, `make submit` prepares the demo only when DATA is not
given, and its submission (and `make ensemble`'s) uses --copies unless COPIES=no. A fake interpreter
stands in for the venv's python, so nothing is installed."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _make(*args: str, path: str = "/usr/bin:/bin", check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "-C", str(ROOT), *args], env={"PATH": path}, capture_output=True, text=True,
                          check=check)


def _fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A venv whose python only logs its arguments and KERAS_BACKEND (one line per call)."""
    venv, log = tmp_path / "venv", tmp_path / "python.log"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "python"
    fake.write_text(f'#!/bin/sh\necho "KERAS_BACKEND=$KERAS_BACKEND $*" >> {log}\n')
    fake.chmod(0o755)
    return venv, log


@pytest.mark.parametrize("driver, backend, extras", [
    (True, "tensorflow", "'.[dev,gpu]'"), (False, "tensorflow", "'.[dev]'"),
    (True, "jax", "'.[dev,jax-gpu,jax]'"), (False, "jax", "'.[dev,jax]'"),
    (True, "torch", "'.[dev,torch]'"),  # PyPI's torch for Linux is the CUDA build already
])
def test_install_adds_the_backends_gpu_extra_where_nvidia_smi_is(tmp_path, driver, backend, extras):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if driver:
        fake = bin_dir / "nvidia-smi"
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
    # A PATH of that folder alone: `command -v nvidia-smi` finds the fake or nothing, whatever this machine has.
    out = _make("-n", "-B", f"VENV={tmp_path / 'venv'}", f"BACKEND={backend}", "install", path=str(bin_dir)).stdout
    installs = [line for line in out.splitlines() if "pip install" in line and " -e " in line]
    assert len(installs) == 1 and installs[0].endswith(f"-e {extras}"), out


def test_install_reinstalls_exactly_when_extras_backend_or_constraints_change(tmp_path):
    venv, log = _fake_venv(tmp_path)
    common = [f"VENV={venv}", f"PYTHON={venv / 'bin' / 'python'}", "install"]

    def install(*options: str) -> tuple[list[str], str]:
        before = log.read_text().splitlines() if log.exists() else []
        out = _make(*options, *common).stdout
        return [line for line in log.read_text().splitlines()[len(before):] if " -e " in line], out

    calls, out = install("EXTRAS=dev")
    assert calls == ["KERAS_BACKEND=tensorflow -m pip install --quiet -c constraints.txt -e .[dev]"], calls
    # how to run ferkaggle itself, said once, by the install that ran
    assert out.count(f"{venv}/bin/ferkaggle --help") == 1 and f"source {venv}/bin/activate" in out, out
    calls, out = install("EXTRAS=dev")
    assert calls == [] and "ferkaggle --help" not in out, (calls, out)
    assert install("EXTRAS=dev,mtcnn")[0] == ["KERAS_BACKEND=tensorflow -m pip install --quiet -c constraints.txt -e .[dev,mtcnn]"]
    assert install("EXTRAS=dev,mtcnn")[0] == []
    calls, out = install("EXTRAS=dev", "BACKEND=jax")
    assert calls == ["KERAS_BACKEND=jax -m pip install --quiet -c constraints.txt -e .[dev,jax]"], calls
    assert "export KERAS_BACKEND=jax" in out, out
    assert install("EXTRAS=dev", "BACKEND=jax")[0] == []
    assert install("EXTRAS=dev", "BACKEND=jax", "CONSTRAINTS=")[0] == ["KERAS_BACKEND=jax -m pip install --quiet -e .[dev,jax]"]
    assert install("EXTRAS=dev", "BACKEND=torch", "CONSTRAINTS=")[0] == ["KERAS_BACKEND=torch -m pip install --quiet -e .[dev,torch]"]


def test_an_unknown_backend_is_one_error_line():
    result = _make("-n", "BACKEND=theano", "help", check=False)
    assert result.returncode != 0
    assert "BACKEND=theano: expected tensorflow, jax or torch" in result.stderr, result.stderr


def _recipe(out: str, command: str) -> list[str]:
    return [line for line in out.splitlines() if f"/ferkaggle {command}" in line]


def test_submit_prepares_the_demo_only_when_data_is_not_given(tmp_path):
    venv = tmp_path / "venv"
    out = _make("-n", "-B", f"VENV={venv}", "EXTRAS=dev", "submit").stdout
    assert _recipe(out, "prepare") == [f"{venv}/bin/ferkaggle prepare --demo-if-missing"], out
    out = _make("-n", "-B", f"VENV={venv}", "EXTRAS=dev", "DATA=comp/files", "BUDGET=2h", "submit").stdout
    assert _recipe(out, "prepare") == [f"{venv}/bin/ferkaggle prepare --source comp/files"], out
    assert _recipe(out, "search") == [f"{venv}/bin/ferkaggle search --budget 2h"], out


def test_submit_and_ensemble_give_test_faces_their_labelled_copies_label_unless_copies_is_no(tmp_path):
    venv = tmp_path / "venv"
    for target, run in (("submit", "best"), ("ensemble", "latest")):
        out = _make("-n", "-B", f"VENV={venv}", "EXTRAS=dev", target).stdout
        assert _recipe(out, "submit") == [f"{venv}/bin/ferkaggle submit --run {run} --copies"], out
        out = _make("-n", "-B", f"VENV={venv}", "EXTRAS=dev", "COPIES=no", target).stdout
        assert _recipe(out, "submit") == [f"{venv}/bin/ferkaggle submit --run {run}"], out
    result = _make("-n", "COPIES=maybe", "help", check=False)
    assert result.returncode != 0 and "COPIES=maybe: expected yes or no" in result.stderr, result.stderr


def test_help_lists_exactly_the_targets_there_are():
    text = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()) - {"FORCE"}
    rules = set(re.findall(r"^([a-z][\w-]*):", text, re.M))
    listed = re.findall(r"^make ([\w-]+)", _make("help").stdout, re.M)
    assert phony == rules, (phony, rules)  # every declared target has a rule, every rule is declared
    assert sorted(listed) == sorted(rules), listed  # and help names each once
