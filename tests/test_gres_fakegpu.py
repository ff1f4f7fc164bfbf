"""NVML discovery for real: pynvml loads the simulated GPU's libnvidia-ml.so.1 (build/fakegpu)
in a `vgpu gres generate` process, for machines with 0, 1, 2 and 8 devices and mixed memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REQUIRE_NATIVE, skip_or_fail

from slurm_vgpu.gres.inventory import NodeInventory, parse_inventory

pytestmark = pytest.mark.native

ROOT = Path(__file__).resolve().parent.parent
FAKEGPU = Path(os.environ.get("VGPU_FAKEGPU_BUILD", ROOT / "build" / "fakegpu"))
GIB = 1024**3


@pytest.fixture(autouse=True)
def _need_fakegpu() -> None:
    for name in ("libnvidia-ml.so.1", "fakegpu-ctl"):
        if not (FAKEGPU / name).exists():
            skip_or_fail(f"{FAKEGPU / name} is not built (run: make native)", REQUIRE_NATIVE)


def simulated_machine(state: Path, mem_gib: list[int], **lists: list[str]) -> None:
    """A simulated machine with one device per entry of mem_gib (names, uuids, pcis...)."""
    argv = [
        str(FAKEGPU / "fakegpu-ctl"),
        "create",
        "--state",
        str(state),
        "--force",
        "--count",
        str(len(mem_gib)),
    ]
    if mem_gib:
        argv += ["--mem", ",".join(f"{m}G" for m in mem_gib)]
    for option, values in lists.items():
        argv += [f"--{option}", ",".join(values)]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def vgpu(
    state: Path, subcommand: str, *args: str, use_library_option: bool = True
) -> subprocess.CompletedProcess[str]:
    """`vgpu gres <subcommand> ...` in its own process, on the simulated machine `state`."""
    env = dict(os.environ, FAKEGPU_STATE=str(state))
    if use_library_option:
        args = ("--library", str(FAKEGPU / "libnvidia-ml.so.1"), *args)
    else:
        # pynvml loads libnvidia-ml.so.1 by name; the search path finds the simulated one.
        env["LD_LIBRARY_PATH"] = f"{FAKEGPU}:{env.get('LD_LIBRARY_PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "slurm_vgpu.cli", "gres", subcommand, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def inventory(state: Path, *args: str) -> NodeInventory:
    result = vgpu(state, "generate", "--node", "n1", "--only", "inventory.conf", *args)
    assert result.returncode == 0, result.stderr
    return parse_inventory(result.stdout)


@pytest.mark.parametrize(
    "mem_gib",
    [[16], [16, 80], [16, 16, 80, 80, 24, 24, 40, 48]],
    ids=["1-gpu", "2-gpus-mixed", "8-gpus-mixed"],
)
def test_discovers_simulated_machine(tmp_path: Path, mem_gib: list[int]) -> None:
    state = tmp_path / "gpu.state"
    uuids = [f"GPU-{i:08x}-1111-2222-3333-444455556666" for i in range(len(mem_gib))]
    names = [f"NVIDIA Sim {m}GB" for m in mem_gib]
    simulated_machine(state, mem_gib, uuid=uuids, name=names)
    inv = inventory(state)
    assert [g.index for g in inv.gpus] == list(range(len(mem_gib)))
    assert [g.uuid for g in inv.gpus] == uuids
    assert [g.model for g in inv.gpus] == names
    assert [g.memory_bytes for g in inv.gpus] == [m * GIB for m in mem_gib]
    for gpu, mem in zip(inv.gpus, mem_gib, strict=True):
        assert gpu.slices == 10
        assert gpu.slice_permille == 100
        assert gpu.slice_bytes % (2 * 1024**2) == 0
        assert (
            gpu.slice_bytes * 10 <= mem * GIB - 512 * 1024**2 < (gpu.slice_bytes + 2 * 1024**2) * 10
        )
    assert inv.total_slices == 10 * len(mem_gib)


def test_library_found_by_name(tmp_path: Path) -> None:
    state = tmp_path / "gpu.state"
    simulated_machine(state, [16, 24])
    result = vgpu(
        state, "generate", "--node", "n1", "--only", "gres.conf", use_library_option=False
    )
    assert result.returncode == 0, result.stderr
    assert "Name=vgpu Count=20" in result.stdout.splitlines()


def test_per_model_and_pci_selectors_on_simulated_machine(tmp_path: Path) -> None:
    state = tmp_path / "gpu.state"
    pcis = ["0000:1a:00.0", "0000:3b:00.0", "0000:86:00.0"]
    simulated_machine(
        state, [16, 80, 24], pci=pcis, name=["Tesla T4", "NVIDIA H100 80GB HBM3", "NVIDIA L4"]
    )
    config = tmp_path / "vgpu-gres.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": {"NVIDIA H100 80GB HBM3": {"slices_per_gpu": 20}},
                "whole": ["0000:86:00.0"],
            }
        )
    )
    result = vgpu(state, "generate", "--node", "n1", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "Name=vgpu Count=30" in result.stdout
    assert "Name=gpu File=/dev/nvidia2" in result.stdout
    assert "NodeName=n1 Gres=vgpu:30,gpu:1" in result.stdout


def test_zero_devices_is_an_error_unless_expected(tmp_path: Path) -> None:
    state = tmp_path / "gpu.state"
    simulated_machine(state, [])
    result = vgpu(state, "generate", "--node", "n1")
    assert result.returncode == 2
    assert "vgpu: error: no devices found: nvml discovery found no GPUs on n1" in result.stderr
    config = tmp_path / "vgpu-gres.yaml"
    config.write_text(yaml.safe_dump({"nodes": [{"names": "n1", "expect_gpus": 2}]}))
    result = vgpu(state, "generate", "--node", "n1", "--config", str(config))
    assert result.returncode == 2
    assert "nodes[0].expect_gpus: nvml discovery found 0 GPUs on n1" in result.stderr


def test_check_notices_a_changed_machine(tmp_path: Path) -> None:
    state = tmp_path / "gpu.state"
    out = tmp_path / "etc"
    simulated_machine(state, [16, 16])
    assert vgpu(state, "generate", "--node", "n1", "--output-dir", str(out)).returncode == 0
    result = vgpu(state, "check", "--node", "n1", "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    simulated_machine(state, [16, 24])  # a card swapped for a bigger one
    result = vgpu(state, "check", "--node", "n1", "--output-dir", str(out))
    assert result.returncode == 1
    assert "memory_bytes=25769803776" in result.stdout
    assert "2 of 3 files differ" in result.stderr  # gres.conf's comment and the inventory
