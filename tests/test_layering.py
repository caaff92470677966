"""The layering rules of DESIGN.md, checked on every import statement in the packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "firmware_bridge", "vision", "fleet_link", "sim_hardware")

# package -> packages of ours it must never import
FORBIDDEN = {
    "firmware_bridge": {"edge", "vision", "fleet_link", "sim_hardware"},
    "vision": {"edge", "firmware_bridge", "fleet_link", "sim_hardware"},
    "fleet_link": {"edge", "firmware_bridge", "vision", "sim_hardware"},
    "sim_hardware": {"edge"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_layering(package: str):
    violations = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package]:
                violations.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    assert not violations, "layering violated (see DESIGN.md):\n" + "\n".join(violations)


def test_every_package_exists():
    for package in PACKAGES:
        assert (REPO / package / "__init__.py").is_file(), package
