"""`make install PREFIX=... DESTDIR=...`: what lands where, and with which paths inside.

Builds into a private build directory (not build/), so it never disturbs what other tests run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REQUIRE_NATIVE, skip_or_fail

pytestmark = [pytest.mark.native, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)


def test_install_puts_plugin_hook_and_snippet_under_prefix(tmp_path: Path) -> None:
    if not Path("/usr/include/slurm/spank.h").exists() or shutil.which("make") is None:
        skip_or_fail("libslurm-dev (spank.h) or make is missing", REQUIRE_NATIVE)
    build, dest = tmp_path / "build", tmp_path / "root"
    # a plain build first (default PREFIX), then install elsewhere: the install must not
    # carry the first build's /usr/local paths
    first = make(f"BUILD={build}", "spank", "native")
    assert first.returncode == 0, first.stdout + first.stderr
    done = make(f"BUILD={build}", "install", "PREFIX=/opt/vgpu", f"DESTDIR={dest}")
    assert done.returncode == 0, done.stdout + done.stderr
    lib = dest / "opt/vgpu/lib/slurm-vgpu"
    assert (lib / "vgpu.so").is_file() and (lib / "libvgpu.so").is_file()
    assert os.access(lib / "vgpu-slurm-read", os.X_OK)  # the controller's reads (auto)
    assert (dest / "etc/slurm-vgpu/hook.conf.example").is_file()
    snippet = (dest / "etc/slurm/plugstack.conf.d/vgpu.conf").read_text()
    required = [line for line in snippet.splitlines() if line.startswith("required ")]
    assert required == [
        "required /opt/vgpu/lib/slurm-vgpu/vgpu.so runtime_dir=/run/slurm-vgpu "
        "inventory=/etc/slurm-vgpu/inventory.conf hook=/opt/vgpu/lib/slurm-vgpu/libvgpu.so "
        "on_error=deny"]
