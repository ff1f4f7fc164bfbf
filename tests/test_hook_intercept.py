"""How the hook is wired in: exported symbols, dlsym interposition, the binding's layout."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from hook_fixtures import HookBuild, HookEnv

from slurm_vgpu.native import _ffi

pytestmark = pytest.mark.native

REPO = Path(__file__).resolve().parents[1]


def _hook_list() -> list[str]:
    """Every function the X-macro lists name: the CUDA driver and NVML list, and the HIP one."""
    names: list[str] = []
    for header in ("hook_list.h", "hook_hip_list.h"):
        text = (REPO / "native" / "src" / header).read_text()
        names += re.findall(r"X\((?:CU|NVML|HIP), (\w+),", text)
    return names


def test_exports_exactly_the_hooked_functions_and_dlsym(hook_build: HookBuild) -> None:
    out = subprocess.run(["nm", "-D", "--defined-only", str(hook_build.hook)],
                         capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in out.stdout.splitlines() if " T " in line}
    assert exported == {*_hook_list(), "dlsym"}


def test_dlsym_keeps_rtld_next_relative_to_the_caller(hook_env: HookEnv) -> None:
    run = hook_env.run(None, ["rtldnext"])
    assert run.get("rtldnext")["same"] == "1"


@pytest.mark.parametrize("kind", ["launch", "launchex", "coop", "graph"])
@pytest.mark.parametrize("path", ["linked", "dlsym", "gpa"])
def test_every_launch_path_works_through_the_hook(hook_env: HookEnv, kind: str,
                                                  path: str) -> None:
    job = hook_env.job()
    run = hook_env.run(job, [kind, "3"], path=path)
    assert run.rc(kind) == 0, run.stdout + run.stderr


def test_binding_layout_matches_the_c_headers(hook_build: HookBuild) -> None:
    out = subprocess.run([str(hook_build.tests / "vgpu_layout")], capture_output=True,
                         text=True, check=True)
    layout: dict[str, int] = json.loads(out.stdout)
    ffi = _ffi.ffi
    for key, value in layout.items():
        kind, _, name = key.partition(".")
        if kind == "sizeof":
            if name == "pthread_mutex_t":
                assert value <= 64
                continue
            assert ffi.sizeof(f"struct {name}") == value, key
        else:
            struct, _, fieldname = key.partition(".")
            assert ffi.offsetof(f"struct {struct}", fieldname) == value, key
