"""The package's layout is its architecture: stages import only the stages below them (the
import-linter contract in pyproject.toml), every name is imported from the module that defines
it, and no stage hides an import inside a function."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ferkaggle"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_layers_contract_is_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract is not a formality: a copy of the package where core imports the CLI fails it."""
    shutil.copytree(PACKAGE, tmp_path / "ferkaggle", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    errors = tmp_path / "ferkaggle" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom ferkaggle.cli.app import app  # an upward import\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "ferkaggle.core is not allowed to import ferkaggle.cli" in result.stdout, result.stdout


def _sources() -> list[Path]:
    return sorted(p for folder in ("ferkaggle", "tests", "bench") for p in (ROOT / folder).rglob("*.py"))


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _defined_names(path: Path) -> set[str]:
    """Names a module defines itself at top level (functions, classes, assignments), not ones it imports."""
    names: set[str] = set()
    statements = list(ast.parse(path.read_text()).body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)  # not what its body assigns: a local or a method is no module name
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For)):  # top-level blocks still define module names
            statements += [s for block in ("body", "orelse", "finalbody") for s in getattr(node, block, [])]
            statements += [s for handler in getattr(node, "handlers", []) for s in handler.body]
    return names


def _imported_names(path: Path) -> set[str]:
    return {a.asname or a.name for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}


def test_every_ferkaggle_name_is_imported_from_the_module_that_defines_it():
    """No re-export shims: `from ferkaggle.x import name` only where x defines name (or name is a submodule)."""
    wrong = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.split(".")[0] == "ferkaggle"):
                continue
            source = _module_file(node.module)
            if source is None:
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: no module {node.module}")
                continue
            defined, imported = _defined_names(source), _imported_names(source)
            for alias in node.names:
                submodule = _module_file(f"{node.module}.{alias.name}") is not None and alias.name not in imported
                if alias.name not in defined and not submodule:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name} is not defined in {node.module}")
    assert not wrong, "\n".join(wrong)


def test_no_stage_imports_ferkaggle_inside_a_function():
    """Imports of the package sit at the top of each module, where import-linter and a reader see them.
    The CLI is the exception: it imports a stage inside its command so that `ferkaggle --help` stays instant."""
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "cli":
            continue
        tree = ast.parse(path.read_text())
        type_checking = [(n.lineno, n.end_lineno) for n in tree.body if isinstance(n, ast.If)
                         and "TYPE_CHECKING" in ast.unparse(n.test)]
        for node in ast.walk(tree):
            if (isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset > 0
                    and not any(a <= node.lineno <= b for a, b in type_checking)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(m.split(".")[0] == "ferkaggle" for m in modules):
                    hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not hidden, "function-level ferkaggle imports: " + ", ".join(hidden)


@pytest.mark.parametrize("marker", ["noqa: F401", "__all__"])
def test_no_re_export_lists_or_unused_import_waivers_in_the_package(marker):
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sorted(PACKAGE.rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if marker in line and not line.lstrip().startswith("import tensorflow")]
    assert not found, f"{marker} in " + ", ".join(found)


def test_tensorflow_is_imported_only_in_the_tensorflow_only_modules():
    """`import tensorflow` (or importlib.import_module("tensorflow...")) only in the package's `tf_*.py`
    modules (tf.data pipeline, TF augmentation ops, TF thread pools and oneDNN, TFLite), so every other
    module runs on any Keras backend and the TensorFlow-only parts are where their names say."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name.startswith("tf_"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args
                  and isinstance(node.args[0], ast.Constant)):
                modules = [str(node.args[0].value)]
            else:
                continue
            if any(m.split(".")[0] == "tensorflow" for m in modules):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "TensorFlow imported outside the tf_* modules: " + ", ".join(found)
