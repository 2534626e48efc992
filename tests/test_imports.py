"""The package's modules import one way, from ``__init__`` down to the
lowest (``stream``, ``record``, ``ids``, and ``interfaces``, which
imports only the record it describes): no two import each
other, even through a third, and each imports alone."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pyramid_upload_progress

PACKAGE = Path(pyramid_upload_progress.__file__).parent
MODULES = sorted(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                 for path in PACKAGE.rglob("*.py") if path.name != "__init__.py")


def imported_modules(module: str) -> set[str]:
    """The package's modules that ``module`` imports (relative imports)."""
    path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
    here = module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
            target = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                name = f"{target}.{alias.name}"
                found.add(name if name in MODULES else target)
    return found & set(MODULES)


def test_no_module_imports_itself_through_others():
    graph = {module: imported_modules(module) for module in MODULES}
    for start in MODULES:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            assert module != start, f"{start} imports itself through {sorted(seen)}"
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])


@pytest.mark.parametrize("low", ["stream", "record", "ids"])
def test_the_lowest_modules_import_none_of_the_package(low):
    assert imported_modules(f"pyramid_upload_progress.{low}") == set()


def test_the_interfaces_import_only_the_record_they_describe():
    assert imported_modules("pyramid_upload_progress.interfaces") == {
        "pyramid_upload_progress.record"}


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=60)
