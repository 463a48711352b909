"""Imports run one way: errors/layout → manifest/plan → generators, curation → storage →
quality → pipeline → runners → flows, cli. Checked on the source, not by convention."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import synthset

PACKAGE = Path(synthset.__file__).parent
ORDER = {
    "errors": 0,
    "devices": 0.5,
    "layout": 0.5,
    "registry": 0.5,
    "atomic": 0.5,
    "inputs": 0.5,
    "manifest": 1,
    "templates": 1,
    "labels": 1,
    "shards": 1,
    "plan": 1,
    "generators": 2,
    "curation": 2,
    "models": 2,
    "storage": 3,
    "quality": 3.5,
    "pipeline": 4,
    "runners": 5,
    "flows": 6,
    "cli": 7,
}
ALLOWED = {
    ("manifest", "synthset.curation.config"),
    ("manifest", "synthset.quality.config"),
    ("curation", "synthset.models.clip"),
    ("models", "synthset.generators.pipeline"),
    ("models", "synthset.generators.tiny"),
    ("shards", "synthset.generators.pipeline"),
}
"""Known exceptions: the curation section's schema; the embedded models, built with the
generator's tiny pipelines and loaded by the CLIP scorer; a type-only import; the report
section's schema."""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).with_suffix("").parts[0]
        if top in ORDER:
            out.append((top, path))
    return out


@pytest.mark.parametrize(("top", "path"), _modules(), ids=lambda v: str(v))
def test_imports_run_one_way(top, path):
    for module in _imports(path):
        parts = module.split(".")
        if parts[0] != "synthset" or len(parts) < 2 or parts[1] == top:
            continue
        if (top, module) in ALLOWED or parts[1] not in ORDER:
            continue
        assert ORDER[parts[1]] < ORDER[top] or ORDER[top] == ORDER[parts[1]] == 1, (
            f"{path.relative_to(PACKAGE)} imports {module}"
        )


def test_only_runners_and_flows_import_prefect():
    for top, path in _modules():
        if top in ("runners", "flows", "cli"):
            continue
        prefect = [m for m in _imports(path) if m.split(".")[0] in ("prefect", "prefect_ray")]
        assert not prefect, f"{path.relative_to(PACKAGE)} imports {prefect}"
