"""Imports run one way inside `synthset.privacy`: the shared modules (accounting, gate, report,
publish, release, errors) never import a modality package such as `tabular`, and a modality
imports only the shared modules, never another modality. Checked on the source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import synthset.privacy

PACKAGE = Path(synthset.privacy.__file__).parent
MODALITIES = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def _imports(path: Path) -> list[str]:
    """Every module `path` imports, `from synthset.privacy import tabular` as
    `synthset.privacy.tabular`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            found.append(node.module)
            if node.module == "synthset.privacy":
                found += [f"synthset.privacy.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def _modality(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["synthset", "privacy"] and len(parts) > 2 and parts[2] in MODALITIES:
        return parts[2]
    return None


def test_tabular_is_a_modality_package():
    assert "tabular" in MODALITIES


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_shared_modules_import_no_modality(path):
    leaks = [m for m in _imports(path) if _modality(m)]
    assert not leaks, f"synthset/privacy/{path.name} imports {leaks}"


@pytest.mark.parametrize(
    "path",
    sorted(p for m in MODALITIES for p in (PACKAGE / m).rglob("*.py")),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_a_modality_imports_no_other_modality(path):
    own = path.relative_to(PACKAGE).parts[0]
    others = [m for m in _imports(path) if _modality(m) not in (None, own)]
    assert not others, f"{path.relative_to(PACKAGE)} imports {others}"
