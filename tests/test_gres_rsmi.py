"""AMD discovery through ROCm SMI (gres/rsmi.py): `vgpu gres generate` in its own process
against the simulated AMD GPU's librocm_smi64.so.1 (build/fakegpu), `auto` choosing whichever
vendor's library answers, and mixed NVIDIA + AMD nodes (injected backends and static
inventories: one simulated machine has one vendor)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fakegpu import FakeGpuBuild, FakeMachine, FakeMachineFactory
from test_fakegpu_hip import amd_machine, amd_program

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres.backends import (
    BackendOptions,
    BackendUnavailable,
    DiscoveryBackend,
    DiscoveryError,
    backend_names,
    create_backend,
    discover_auto,
)
from slurm_vgpu.gres.config import parse_config
from slurm_vgpu.gres.device import Device
from slurm_vgpu.gres.generate import GRES_CONF, INVENTORY, BackendMaker, generate_local
from slurm_vgpu.gres.inventory import NodeInventory, parse_inventory
from slurm_vgpu.gres.rsmi import RsmiBackend, RsmiCallError, amd_uuid

GIB = 1024**3
MIB = 1024**2


def amd_uuids(machine: FakeMachine) -> list[str]:
    """The inventory UUIDs of an AMD machine: GPU- + the last 8 bytes of each device's UUID
    (what the fake's rsmi_dev_unique_id_get returns), from the ground truth."""
    out = []
    for device in machine.dump()["devices"]:
        hexdigits = device["uuid"].removeprefix("GPU-").replace("-", "")
        out.append("GPU-" + hexdigits[-16:].lower())
    return out


def vgpu(machine: FakeMachine, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "slurm_vgpu.cli", "gres", *args]
    return machine.run(argv, timeout=60)


def inventory(machine: FakeMachine, *args: str) -> NodeInventory:
    result = vgpu(machine, "generate", "--node", "n1", "--only", "inventory.conf", *args)
    assert result.returncode == 0, result.stderr
    return parse_inventory(result.stdout)


@pytest.fixture
def mi(fakegpu_build: FakeGpuBuild, tmp_path: Path) -> FakeMachine:
    """Two simulated MI210s (64 GiB) and a 32 GiB one."""
    amd_program(fakegpu_build, "librocm_smi64.so.1")
    return amd_machine(fakegpu_build, tmp_path / "mi.state", 3, "64G,64G,32G")


def test_auto_finds_amd_gpus_by_default(mi: FakeMachine) -> None:
    inv = inventory(mi, "--config", "/dev/null")
    assert [g.index for g in inv.gpus] == [0, 1, 2]
    assert [g.vendor for g in inv.gpus] == ["amd"] * 3
    assert [g.uuid for g in inv.gpus] == amd_uuids(mi)
    assert all(len(g.uuid) == 20 and g.uuid == g.uuid.lower().replace("gpu-", "GPU-")
               for g in inv.gpus)
    assert [g.model for g in inv.gpus] == ["AMD Instinct MI210"] * 3
    assert [g.memory_bytes for g in inv.gpus] == [64 * GIB, 64 * GIB, 32 * GIB]
    for gpu in inv.gpus:
        assert (gpu.slices, gpu.slice_permille) == (10, 100)
        assert gpu.slice_bytes == (gpu.memory_bytes - 512 * MIB) // 10 // (2 * MIB) * (2 * MIB)
    text = vgpu(mi, "generate", "--node", "n1", "--config", "/dev/null",
                "--only", "inventory.conf").stdout
    assert " vendor=amd model=AMD Instinct MI210" in text


def test_rsmi_backend_by_name_and_library(mi: FakeMachine) -> None:
    # --discovery rsmi with the library handed over, nothing found through LD_LIBRARY_PATH
    result = vgpu(mi, "generate", "--node", "n1", "--config", "/dev/null", "--discovery",
                  "rsmi", "--library", str(mi.build.dir / "librocm_smi64.so.1"),
                  "--only", "gres.conf")
    assert result.returncode == 0, result.stderr
    assert "Name=vgpu Count=30" in result.stdout


def test_amd_config_keys_and_whole_gpu_device_file(mi: FakeMachine, tmp_path: Path) -> None:
    uuids = amd_uuids(mi)
    config = tmp_path / "vgpu-gres.yaml"
    config.write_text(yaml.safe_dump({
        "slices_per_gpu": 8,
        "models": {"AMD Instinct MI210": {"reserved_memory": "1GiB"}},
        "exclude": [uuids[0]],
        "whole": ["0000:11:00.0"],  # the fake's PCI id of GPU 1
    }))
    result = vgpu(mi, "generate", "--node", "n1", "--config", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Name=gpu File=/dev/dri/renderD129" in out  # render node 128 + 1
    assert "NodeName=n1 Gres=vgpu:8,gpu:1" in out
    assert "GresTypes=gpu,vgpu" in out
    inv = parse_inventory(out.split("# ==> inventory.conf <==\n")[1])
    assert [(g.index, g.uuid, g.slices, g.vendor) for g in inv.gpus] == [(2, uuids[2], 8, "amd")]
    assert inv.gpus[0].slice_bytes == (32 * GIB - GIB) // 8 // (2 * MIB) * (2 * MIB)


def test_check_notices_a_swapped_amd_card(mi: FakeMachine, fakegpu_build: FakeGpuBuild,
                                          tmp_path: Path) -> None:
    common = ["--node", "n1", "--config", "/dev/null", "--output-dir", str(tmp_path / "etc")]
    assert vgpu(mi, "generate", *common).returncode == 0
    assert vgpu(mi, "check", *common).returncode == 0
    amd_machine(fakegpu_build, mi.state, 3, "64G,64G,48G")  # same state file, new third card
    result = vgpu(mi, "check", *common)
    assert result.returncode == 1
    assert "-gpu index=2" in result.stdout and "+gpu index=2" in result.stdout


def test_rsmi_on_an_nvidia_machine_is_unavailable(fake_machine: FakeMachineFactory) -> None:
    nv = fake_machine(count=1)
    result = vgpu(nv, "generate", "--node", "n1", "--config", "/dev/null", "--discovery", "rsmi")
    assert result.returncode == 2
    assert "ROCm SMI unavailable: rsmi_init" in result.stderr
    # auto on the same machine: NVML answers, ROCm SMI does not; only NVIDIA GPUs
    inv = inventory(nv, "--config", "/dev/null")
    assert [(g.uuid, g.vendor) for g in inv.gpus] == [(nv.uuids[0], "nvidia")]


def test_auto_with_no_vendor_library_answering(fakegpu_build: FakeGpuBuild,
                                               tmp_path: Path) -> None:
    # a missing state file: both fakes fail (the fake NVML makes no machine; point the
    # ROCm SMI library at a path that does not exist)
    nv = amd_machine(fakegpu_build, tmp_path / "mi.state", 1)
    result = vgpu(nv, "generate", "--node", "n1", "--config", "/dev/null",
                  "--library", str(tmp_path / "librocm_smi64.so.1"))
    assert result.returncode == 2
    assert "auto discovery: no vendor library answered" in result.stderr
    assert "NVML unavailable" in result.stderr
    assert "ROCm SMI unavailable: cannot load" in result.stderr


def test_rsmi_backend_facts(mi: FakeMachine) -> None:
    # in a process of its own: the fake library attaches one state file per process
    code = (
        "import json, sys\n"
        "from dataclasses import asdict\n"
        "from slurm_vgpu.gres.backends import BackendOptions\n"
        "from slurm_vgpu.gres.rsmi import RsmiBackend\n"
        "devices = RsmiBackend(BackendOptions(library=sys.argv[1])).discover()\n"
        "print(json.dumps([asdict(d) for d in devices]))\n"
    )
    out = mi.run([sys.executable, "-c", code, str(mi.build.dir / "librocm_smi64.so.1")],
                 extra_env={"LD_LIBRARY_PATH": ""}, timeout=60)
    assert out.returncode == 0, out.stderr
    devices = json.loads(out.stdout)
    assert [d["uuid"] for d in devices] == amd_uuids(mi)
    assert [d["pci_bus_id"] for d in devices] == ["0000:10:00.0", "0000:11:00.0", "0000:12:00.0"]
    assert [d["device_file"] for d in devices] == [f"/dev/dri/renderD{128 + i}" for i in range(3)]
    assert {d["vendor"] for d in devices} == {"amd"}
    assert devices[0]["compute_units"] is None  # ROCm SMI 5.2 does not report CUs
    assert devices[0]["allocation_granularity"] == 2 * MIB


# ------------------------------------------------------------------ pure: auto and mixed nodes


def test_amd_uuid_form() -> None:
    assert amd_uuid(0xA9201EF500000001) == "GPU-a9201ef500000001"
    assert amd_uuid(1) == "GPU-0000000000000001"


def test_backend_registry_knows_rsmi_and_auto() -> None:
    assert {"auto", "nvml", "rsmi"} <= set(backend_names())
    assert isinstance(create_backend("rsmi", BackendOptions()), RsmiBackend)
    with pytest.raises(ConfigError, match=r"unknown backend 'rocm'; allowed: auto, .*nvml, rsmi"):
        create_backend("rocm", BackendOptions())


class Listed:
    def __init__(self, name: str, devices: list[Device] | Exception) -> None:
        self.name = name
        self.devices = devices

    def discover(self) -> list[Device]:
        if isinstance(self.devices, Exception):
            raise self.devices
        return list(self.devices)


NV = [Device(i, f"GPU-nv-{i}", "NVIDIA H100", 80 * GIB, device_file=f"/dev/nvidia{i}")
      for i in range(2)]
AMD = [Device(i, f"GPU-{i:016x}", "AMD Instinct MI210", 64 * GIB, vendor="amd",
              device_file=f"/dev/dri/renderD{128 + i}") for i in range(2)]


def makers(nvml: list[Device] | Exception, rsmi: list[Device] | Exception,
           seen: dict[str, str | None] | None = None) -> BackendMaker:
    def make(name: str, options: BackendOptions) -> DiscoveryBackend:
        if seen is not None:
            seen[name] = options.library
        return Listed(name, {"nvml": nvml, "rsmi": rsmi}[name])
    return make


def test_auto_on_a_mixed_node_numbers_amd_after_nvidia() -> None:
    devices, names = discover_auto(BackendOptions(), makers(NV, AMD))
    assert names == "nvml+rsmi"
    assert [(d.index, d.vendor, d.uuid) for d in devices] == [
        (0, "nvidia", "GPU-nv-0"), (1, "nvidia", "GPU-nv-1"),
        (2, "amd", AMD[0].uuid), (3, "amd", AMD[1].uuid)]
    # the device files stay the vendors' own
    assert [d.device_file for d in devices][2:] == ["/dev/dri/renderD128", "/dev/dri/renderD129"]


def test_auto_skips_a_vendor_whose_library_does_not_answer() -> None:
    gone = BackendUnavailable("NVML unavailable: Driver Not Loaded")
    devices, names = discover_auto(BackendOptions(), makers(gone, AMD))
    assert names == "rsmi" and [d.index for d in devices] == [0, 1]
    with pytest.raises(DiscoveryError, match=r"no vendor library answered.*Driver Not Loaded.*"
                                             r"ROCm SMI unavailable"):
        discover_auto(BackendOptions(), makers(gone, BackendUnavailable("ROCm SMI unavailable")))
    # a library that answers but fails on a GPU is an error, not a vendor to skip
    with pytest.raises(DiscoveryError, match="GPU 1: rsmi_dev_name_get failed"):
        discover_auto(BackendOptions(), makers(
            NV, DiscoveryError("ROCm SMI: GPU 1: rsmi_dev_name_get failed")))


def test_auto_hands_library_to_its_vendor() -> None:
    seen: dict[str, str | None] = {}
    discover_auto(BackendOptions(library="/x/librocm_smi64.so.1"), makers(NV, AMD, seen))
    assert seen == {"nvml": None, "rsmi": "/x/librocm_smi64.so.1"}
    discover_auto(BackendOptions(library="/x/libnvidia-ml.so.1"), makers(NV, AMD, seen))
    assert seen == {"nvml": "/x/libnvidia-ml.so.1", "rsmi": None}


def test_mixed_node_generation_from_auto() -> None:
    config = parse_config({"whole": [3], "models": {"NVIDIA H100": {"slices_per_gpu": 4}}})
    files = generate_local(config, "n1", make_backend=makers(NV, AMD)).files
    assert "Name=vgpu Count=18" in files[GRES_CONF]  # 4 + 4 + 10
    assert "Name=gpu File=/dev/dri/renderD129" in files[GRES_CONF]
    inv = parse_inventory(files[INVENTORY])
    assert [(g.index, g.vendor, g.slices) for g in inv.gpus] == [
        (0, "nvidia", 4), (1, "nvidia", 4), (2, "amd", 10)]


def test_static_mixed_inventory() -> None:
    config = parse_config({"nodes": [{"names": "n1", "whole": [2], "gpus": [
        {"model": "NVIDIA H100", "memory": "80GiB", "uuid": "GPU-nv-0"},
        {"model": "AMD Instinct MI210", "memory": "64GiB", "vendor": "AMD",
         "uuid": "GPU-a9201ef500000000"},
        {"model": "AMD Instinct MI210", "memory": "64GiB", "vendor": "amd",
         "uuid": "GPU-a9201ef500000001"},
    ]}]})
    files = generate_local(config, "n1", make_backend=makers(NV, AMD)).files
    # a static AMD GPU's default File= is renderD(128 + its index); give device_file: when
    # NVIDIA GPUs come first on the node (index 2 here is AMD's first render node in truth)
    assert "Name=gpu File=/dev/dri/renderD130" in files[GRES_CONF]
    inv = parse_inventory(files[INVENTORY])
    assert [(g.uuid, g.vendor) for g in inv.gpus] == [
        ("GPU-nv-0", "nvidia"), ("GPU-a9201ef500000000", "amd")]


class FakeRsmi:
    """RsmiLibrary's typed calls over a list of GPUs (pure mapping tests)."""

    def __init__(self, gpus: list[dict[str, object]], count_error: bool = False) -> None:
        self.gpus = gpus
        self.count_error = count_error
        self.closed = False

    def _get(self, key: str, index: int) -> object:
        value = self.gpus[index].get(key)
        if value is None:
            raise RsmiCallError(f"rsmi_{key}", 2, "RSMI_STATUS_NOT_SUPPORTED")
        return value

    def count(self) -> int:
        if self.count_error:
            raise RsmiCallError("rsmi_num_monitor_devices", 8, "RSMI_STATUS_INIT_ERROR")
        return len(self.gpus)

    def uuid(self, index: int) -> str:
        return amd_uuid(int(str(self._get("unique_id", index))))

    def name(self, index: int) -> str:
        return str(self._get("name", index))

    def memory_total(self, index: int) -> int:
        return int(str(self._get("memory", index)))

    def pci_bus_id(self, index: int) -> str:
        return str(self._get("pci", index))

    def numa_node(self, index: int) -> int:
        return int(str(self._get("numa", index)))

    def render_minor(self, index: int) -> int:
        return int(str(self._get("minor", index)))

    def close(self) -> None:
        self.closed = True


def test_rsmi_mapping_uses_the_render_minor_and_numa_when_reported() -> None:
    lib = FakeRsmi([
        {"unique_id": 0xA9201EF500000000, "name": "AMD Instinct MI300X", "memory": 192 * GIB,
         "pci": "0000:c1:00.0", "numa": 1, "minor": 136},
        {"unique_id": 7, "name": "AMD Instinct MI300X", "memory": 192 * GIB},
    ])
    devices = RsmiBackend(BackendOptions(), library=lib).discover()  # type: ignore[arg-type]
    assert [(d.uuid, d.device_file, d.numa_node, d.pci_bus_id) for d in devices] == [
        ("GPU-a9201ef500000000", "/dev/dri/renderD136", 1, "0000:c1:00.0"),
        ("GPU-0000000000000007", "/dev/dri/renderD129", None, None)]  # 128 + index
    assert not lib.closed  # an injected library belongs to the caller


def test_rsmi_mapping_errors() -> None:
    with pytest.raises(DiscoveryError, match="ROCm SMI cannot count devices"):
        RsmiBackend(BackendOptions(), library=FakeRsmi([], count_error=True)  # type: ignore[arg-type]
                    ).discover()
    lib = FakeRsmi([{"unique_id": 1, "memory": GIB}])
    with pytest.raises(DiscoveryError, match="GPU 0: rsmi_dev_name_get failed"):
        RsmiBackend(BackendOptions(), library=lib).discover()  # type: ignore[arg-type]
    lib = FakeRsmi([{"unique_id": 1, "name": "bad # name", "memory": GIB}])
    with pytest.raises(DiscoveryError, match="unusable model name"):
        RsmiBackend(BackendOptions(), library=lib).discover()  # type: ignore[arg-type]
