"""The package's layers (pyproject's [tool.importlinter]): no layer imports a higher one, the engine no Dagster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nova_pipeline

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports")
    assert lint, "import-linter is a dev dependency: pip install -e '.[dev]'"
    out = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_no_module_sits_at_the_package_root():
    root = Path(nova_pipeline.__file__).parent
    assert sorted(p.name for p in root.glob("*.py")) == ["__init__.py"]
