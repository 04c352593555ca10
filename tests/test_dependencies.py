"""Every package runql imports is declared in pyproject.toml: what runql/ imports at module level
in `dependencies`; what it imports only inside a function (or for the type checker) in
`dependencies` or an optional extra other than `dev`; what tests/ and bench/ import in either.
Import names are mapped to distributions by importlib.metadata.packages_distributions()."""

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions

from tests.processes import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCAL = {"runql", "tests", "bench"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    found = (re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement) for requirement in requirements)
    return {_normalized(match.group()) for match in found if match is not None}


RUNTIME = _declared(PROJECT["dependencies"])
EXTRAS = _declared(
    [
        requirement
        for extra, requirements in PROJECT["optional-dependencies"].items()
        if extra != "dev"
        for requirement in requirements
    ]
)
DEV = _declared(PROJECT["optional-dependencies"]["dev"])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    """(top-level package, imported when the module loads) for every absolute import: those
    inside a function or under `if TYPE_CHECKING:` are not."""
    lazy = {
        id(inner)
        for node in ast.walk(tree)
        for scope in (
            [node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            else node.body
            if isinstance(node, ast.If) and _is_type_checking(node)
            else []
        )
        for inner in ast.walk(scope)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name.split(".")[0], id(node) not in lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            yield node.module.split(".")[0], id(node) not in lazy


def _third_party(folder: str) -> Iterator[tuple[str, str, bool, set[str]]]:
    """(file, package, at module level, its distributions) for each third-party import."""
    distributions = packages_distributions()
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for package, module_level in _imports(tree):
            if package in sys.stdlib_module_names or package in LOCAL:
                continue
            names = {_normalized(name) for name in distributions.get(package, [])}
            yield str(path.relative_to(ROOT)), package, module_level, names


def test_runql_imports_only_declared_packages() -> None:
    undeclared = sorted(
        {
            (path, package)
            for path, package, module_level, names in _third_party("runql")
            if not names & (RUNTIME if module_level else RUNTIME | EXTRAS)
        }
    )
    assert not undeclared, (
        f"imported by runql/ but not in pyproject.toml's dependencies (file, import): {undeclared}"
    )


def test_tests_and_bench_import_only_declared_packages() -> None:
    undeclared = sorted(
        {
            (path, package)
            for folder in ("tests", "bench")
            for path, package, _, names in _third_party(folder)
            if not names & (RUNTIME | EXTRAS | DEV)
        }
    )
    assert not undeclared, (
        "imported by tests/ or bench/ but not in pyproject.toml's "
        f"dependencies or extras (file, import): {undeclared}"
    )


def test_imports_in_functions_or_for_the_type_checker_are_not_at_module_level() -> None:
    tree = ast.parse(
        "import opentelemetry\nif TYPE_CHECKING:\n    import orjson\nelse:\n"
        "    import httpx\ndef f():\n    from graphql import parse\n"
    )
    assert sorted(_imports(tree)) == [
        ("graphql", False),
        ("httpx", True),
        ("opentelemetry", True),
        ("orjson", False),
    ]
