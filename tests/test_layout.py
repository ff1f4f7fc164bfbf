"""The policies/ layout rule (docs/daemon.md): the pure decision code imports no Slurm client,
no NVML, no cffi binding and no daemon I/O; the simulator imports no daemon I/O and no Slurm
client. Checked on the source (every import, also inside functions), not by importing it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parent.parent / "policies"

# Top-level modules and slurm_vgpu packages each sub-package must not import.
FORBIDDEN = {
    "decide": ("slurm_vgpu.policies.service", "slurm_vgpu.policies.slurm",
               "slurm_vgpu.policies.accounting", "slurm_vgpu.policies.sim", "slurm_vgpu.native",
               "slurm_vgpu.gres", "pynvml", "cffi", "pyslurm", "subprocess",
               "prometheus_client"),
    "sim": ("slurm_vgpu.policies.service", "slurm_vgpu.policies.slurm", "slurm_vgpu.native",
            "pynvml", "cffi", "pyslurm", "prometheus_client"),
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not(package: str) -> None:
    bad = []
    for path in sorted((POLICIES / package).glob("*.py")):
        for name in sorted(imported_modules(path)):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(POLICIES)} imports {name}")
    assert bad == []


def test_every_module_lives_in_a_package_that_says_what_it_is() -> None:
    assert sorted(p.name for p in POLICIES.glob("*.py")) == ["__init__.py"]
    for package in sorted(p for p in POLICIES.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc, f"{package.name}/__init__.py: no docstring saying what the package holds"
