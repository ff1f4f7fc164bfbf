"""NVML discovery for real: pynvml loads the simulated GPU's libnvidia-ml.so.1 (build/fakegpu)
in a `vgpu gres generate` process, for machines with 0, 1, 2 and 8 devices and mixed memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fakegpu import FakeMachine, FakeMachineFactory, create_fake_machine

from slurm_vgpu.gres.inventory import NodeInventory, parse_inventory

pytestmark = pytest.mark.native

GIB = 1024**3
MIB = 1024**2


def vgpu(
    machine: FakeMachine, subcommand: str, *args: str, by_name: bool = False
) -> subprocess.CompletedProcess[str]:
    """`vgpu gres <subcommand> ...` in its own process on `machine`. By default the library is
    handed over with --library and LD_LIBRARY_PATH is emptied; by_name=True lets pynvml find
    libnvidia-ml.so.1 by name through the machine's LD_LIBRARY_PATH."""
    extra = {}
    if not by_name:
        args = ("--library", str(machine.build.libnvml), *args)
        extra["LD_LIBRARY_PATH"] = ""
    argv = [sys.executable, "-m", "slurm_vgpu.cli", "gres", subcommand, *args]
    return machine.run(argv, extra_env=extra, timeout=60)


def inventory(machine: FakeMachine, *args: str) -> NodeInventory:
    result = vgpu(machine, "generate", "--node", "n1", "--only", "inventory.conf", *args)
    assert result.returncode == 0, result.stderr
    return parse_inventory(result.stdout)


@pytest.mark.parametrize(
    "mem_gib",
    [[16], [16, 80], [16, 16, 80, 80, 24, 24, 40, 48]],
    ids=["1-gpu", "2-gpus-mixed", "8-gpus-mixed"],
)
def test_discovers_simulated_machine(fake_machine: FakeMachineFactory, mem_gib: list[int]) -> None:
    names = [f"NVIDIA Sim {m}GB" for m in mem_gib]
    machine = fake_machine(
        count=len(mem_gib), mem=",".join(f"{m}G" for m in mem_gib), name=",".join(names)
    )
    inv = inventory(machine, "--config", "/dev/null")
    assert [g.index for g in inv.gpus] == list(range(len(mem_gib)))
    assert [g.uuid for g in inv.gpus] == machine.uuids
    assert [g.model for g in inv.gpus] == names
    assert [g.memory_bytes for g in inv.gpus] == [m * GIB for m in mem_gib]
    for gpu, mem in zip(inv.gpus, mem_gib, strict=True):
        assert (gpu.slices, gpu.slice_permille) == (10, 100)
        # Default 512 MiB reserve, the rest split in ten and aligned down to 2 MiB.
        assert gpu.slice_bytes % (2 * MIB) == 0
        usable = mem * GIB - 512 * MIB
        assert gpu.slice_bytes * 10 <= usable < (gpu.slice_bytes + 2 * MIB) * 10
    assert inv.total_slices == 10 * len(mem_gib)


def test_library_found_by_name(fake_machine: FakeMachineFactory) -> None:
    machine = fake_machine(count=2, mem="16G,24G")
    result = vgpu(
        machine,
        "generate",
        "--node",
        "n1",
        "--config",
        "/dev/null",
        "--only",
        "gres.conf",
        by_name=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Name=vgpu Count=20" in result.stdout.splitlines()


def test_per_model_and_pci_selectors(fake_machine: FakeMachineFactory, tmp_path: Path) -> None:
    machine = fake_machine(
        count=3,
        mem="16G,80G,24G",
        name="Tesla T4,NVIDIA H100 80GB HBM3,NVIDIA L4",
        pci=["0000:1a:00.0", "0000:3b:00.0", "0000:86:00.0"],
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
    result = vgpu(machine, "generate", "--node", "n1", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "Name=vgpu Count=30" in result.stdout
    assert "Name=gpu File=/dev/nvidia2" in result.stdout
    assert "NodeName=n1 Gres=vgpu:30,gpu:1" in result.stdout


def test_zero_devices_is_an_error_unless_expected(
    fake_machine: FakeMachineFactory, tmp_path: Path
) -> None:
    machine = fake_machine(count=0)
    result = vgpu(machine, "generate", "--node", "n1", "--config", "/dev/null")
    assert result.returncode == 2
    assert "vgpu: error: no devices found: nvml discovery found no GPUs on n1" in result.stderr
    config = tmp_path / "vgpu-gres.yaml"
    config.write_text(yaml.safe_dump({"nodes": [{"names": "n1", "expect_gpus": 2}]}))
    result = vgpu(machine, "generate", "--node", "n1", "--config", str(config))
    assert result.returncode == 2
    assert "nodes[0].expect_gpus: nvml discovery found 0 GPUs on n1" in result.stderr
    config.write_text(yaml.safe_dump({"nodes": [{"names": "n1", "expect_gpus": 0}]}))
    result = vgpu(machine, "generate", "--node", "n1", "--config", str(config))
    assert result.returncode == 0, result.stderr


def test_check_notices_a_changed_machine(fake_machine: FakeMachineFactory, tmp_path: Path) -> None:
    machine = fake_machine(count=2, mem="16G")
    common = ["--node", "n1", "--config", "/dev/null", "--output-dir", str(tmp_path / "etc")]
    assert vgpu(machine, "generate", *common).returncode == 0
    result = vgpu(machine, "check", *common)
    assert result.returncode == 0, result.stderr
    # The same machine after a card swap: GPU 1 now has 24 GiB.
    create_fake_machine(machine.build, machine.state, 2, "16G,24G")
    result = vgpu(machine, "check", *common)
    assert result.returncode == 1
    assert "memory_bytes=25769803776" in result.stdout
    assert "2 of 3 files differ" in result.stderr  # gres.conf's comments and the inventory
