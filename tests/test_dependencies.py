"""Declared dependencies are exactly the imported ones: every third-party package that ferkaggle/
imports is declared in pyproject.toml (a required one in `dependencies`, an optional one at least
in an extra), and every declared runtime dependency is imported somewhere, except the few that
are used without an import statement (listed below with the reason)."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

# Imports that are optional on purpose: the package checks for them and names the extra to install.
OPTIONAL_IMPORTS = {"mtcnn": "mtcnn", "kaggle": "kaggle", "jax": "jax", "torch": "torch"}  # jax/torch: only on that backend
# Declared, used, but never imported by name.
NOT_IMPORTED = {
    "psycopg": "the driver SQLAlchemy loads for postgresql:// study URLs",
    "optuna-dashboard": "a command of its own (optuna-dashboard sqlite:///runs/searches/studies.db)",
}
# Extras for working on ferkaggle, not for running it: the test tools, bench/ scripts, CUDA libraries.
NOT_RUNTIME_EXTRAS = {"dev", "bench", "gpu"}


def top_level_imports(package: Path) -> dict[str, str]:
    """Top-level names of every absolute import in the package's .py files -> one file importing it."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(package.parent)))
    return found


def third_party(imports: dict[str, str], first_party: str = "ferkaggle") -> dict[str, str]:
    """Imported distributions (normalised names) -> the file importing them, stdlib and own package left out."""
    owners = metadata.packages_distributions()  # installed metadata: import name -> distributions
    result: dict[str, str] = {}
    for module, where in imports.items():
        if module in sys.stdlib_module_names or module == first_party or module == "__future__":
            continue
        dists = owners.get(module, [OPTIONAL_IMPORTS.get(module, module)])  # not installed: its extra's name
        for dist in dists:
            result[canonicalize_name(dist)] = f"{module} in {where}"
    return result


def declared(pyproject: Path) -> tuple[set[str], set[str]]:
    """(required, runtime optional) distribution names of a pyproject.toml."""
    project = tomllib.loads(pyproject.read_text())["project"]
    required = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    optional = {canonicalize_name(Requirement(r).name) for extra, reqs in project.get("optional-dependencies", {}).items()
                if extra not in NOT_RUNTIME_EXTRAS for r in reqs}
    return required, optional


def mismatches(imported: dict[str, str], required: set[str], optional: set[str]) -> list[str]:
    problems = []
    optional_dists = {canonicalize_name(d) for d in OPTIONAL_IMPORTS.values()}
    for dist, where in sorted(imported.items()):
        if dist in required:
            continue
        if dist in optional and dist in optional_dists:
            continue
        problems.append(f"{dist} ({where}) is imported but not declared in [project].dependencies")
    for dist in sorted((required | optional) - set(imported) - {canonicalize_name(n) for n in NOT_IMPORTED}):
        problems.append(f"{dist} is declared in pyproject.toml but ferkaggle/ never imports it")
    return problems


def test_declared_dependencies_are_the_imported_ones():
    required, optional = declared(ROOT / "pyproject.toml")
    imported = third_party(top_level_imports(ROOT / "ferkaggle"))
    assert mismatches(imported, required, optional) == []


def test_an_undeclared_import_and_an_unused_dependency_are_both_caught(tmp_path):
    """Both sides fail: a package that imports joblib without declaring it, and declares pandas without importing it."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("import os\nfrom joblib import dump\nimport numpy.linalg\nfrom . import b\n"
                                  "def f():\n    import mtcnn\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "pkg"\ndependencies = ["numpy>=1", "pandas>=2"]\n'
                                             '[project.optional-dependencies]\nmtcnn = ["mtcnn>=1"]\ndev = ["pytest"]\n')
    required, optional = declared(tmp_path / "pyproject.toml")
    imported = third_party(top_level_imports(package), first_party="pkg")
    assert set(imported) == {"joblib", "numpy", "mtcnn"}
    assert mismatches(imported, required, optional) == [
        "joblib (joblib in pkg/a.py) is imported but not declared in [project].dependencies",
        "pandas is declared in pyproject.toml but ferkaggle/ never imports it",
    ]
