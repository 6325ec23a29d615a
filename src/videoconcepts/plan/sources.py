"""The package source files each stage runs, so rules can list them as inputs.

Rules run ``videoconcepts <stage>``, a command Snakemake cannot look into. Listing the
files of the stage's module and of every package module it imports (found with ``ast``,
without importing anything: the Snakefile must not import torch) as rule inputs makes an
edited module rerun its stage and everything downstream, and nothing upstream.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "videoconcepts"
ROOT = Path(__file__).resolve().parents[1]


def module_file(module: str) -> Path | None:
    """File of a package module (``videoconcepts.x.y``), or None if it is not one."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(names: set[str]) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first."""
    return {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}


def _runtime_nodes(tree: ast.AST):
    """Every statement but those under ``if TYPE_CHECKING:`` (imports for annotations
    only). Imports are statements: expressions, most of a module's nodes, are skipped."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        typing_only = (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        )
        for field in (
            ("orelse",) if typing_only else ("body", "orelse", "finalbody", "handlers", "cases")
        ):
            children = getattr(node, field, None)
            if isinstance(children, list):
                pending.extend(children)


@cache
def _imports(path: Path) -> frozenset[str]:
    """Package modules ``path`` imports when it runs (also inside functions)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise ValueError(f"{path}: relative import; the package uses absolute imports")
            found.add(node.module)
            # `from package import module` imports a module, not only a name
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(m for m in _with_parents(found) if module_file(m) is not None)


def stage_sources(*modules: str) -> list[str]:
    """Files of the given package modules (``"features"``) and of all package modules
    they import, directly or not."""
    pending = _with_parents({f"{PACKAGE}.{m}" for m in modules})
    missing = [m for m in pending if module_file(m) is None]
    if missing:
        raise ValueError(f"not modules of {PACKAGE}: {sorted(missing)}")
    files: set[Path] = set()
    while pending:
        path = module_file(pending.pop())
        if path not in files:
            files.add(path)
            pending.update(_imports(path))
    return sorted(str(p) for p in files)
