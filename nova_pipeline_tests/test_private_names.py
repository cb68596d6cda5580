"""No module of the package uses another module's private names (`from m import _x`, `m._x`)."""

from __future__ import annotations

import ast
from pathlib import Path

import nova_pipeline

PACKAGE = Path(nova_pipeline.__file__).parent


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path) -> list[str]:
    """`from nova_pipeline… import _x` and `alias._x` where alias names a module or object of the package."""
    tree, aliases, found = ast.parse(path.read_text()), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nova_pipeline"):
            found += [f"from {node.module} import {a.name}" for a in node.names if _private(a.name)]
            aliases |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("nova_pipeline")}
    return found + [f"{n.value.id}.{n.attr}" for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Name) and n.value.id in aliases and _private(n.attr)]


def test_no_module_reaches_into_another_modules_private_names():
    uses = {str(p.relative_to(PACKAGE)): found for p in sorted(PACKAGE.rglob("*.py")) if (found := private_uses(p))}
    assert uses == {}


def test_the_check_sees_both_forms(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from nova_pipeline.orchestration.runs import _x\nfrom nova_pipeline.defs import assets as A\n"
                     "A._rate(1, 2)\n")
    assert private_uses(probe) == ["from nova_pipeline.orchestration.runs import _x", "A._rate"]
