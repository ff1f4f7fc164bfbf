"""NVML discovery against an injected pynvml-like fake (pure mapping logic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_gres_fakes import GIB, FakeGpu, FakeNvml, machine

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres.backends import (
    BackendOptions,
    DiscoveryError,
    backend_names,
    create_backend,
    register_backend,
)
from slurm_vgpu.gres.device import DEFAULT_ALLOCATION_GRANULARITY, Device
from slurm_vgpu.gres.nvml import NvmlBackend, normalize_pci_bus_id


def discover(fake: FakeNvml, sys_root: Path = Path("/nonexistent")) -> list[Device]:
    return NvmlBackend(BackendOptions(sys_root=sys_root), nvml=fake).discover()


@pytest.mark.parametrize("as_bytes", [False, True])
def test_maps_every_field(as_bytes: bool) -> None:
    fake = FakeNvml(
        gpus=[
            FakeGpu("NVIDIA H100 80GB HBM3", 80 * GIB, "GPU-h100", b"00000000:3B:00.0", 132, 1, 4),
        ],
        as_bytes=as_bytes,
    )
    (device,) = discover(fake)
    assert device == Device(
        index=0,
        uuid="GPU-h100",
        model="NVIDIA H100 80GB HBM3",
        memory_bytes=80 * GIB,
        compute_units=132,
        pci_bus_id="0000:3b:00.0",
        numa_node=1,
        allocation_granularity=DEFAULT_ALLOCATION_GRANULARITY,
        device_file="/dev/nvidia4",
        vendor="nvidia",
    )
    assert fake.calls[0] == "nvmlInit"
    assert fake.calls[-1] == "nvmlShutdown"


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_counts_and_order(count: int) -> None:
    devices = discover(machine(("Tesla T4", 15), count=count))
    assert [d.index for d in devices] == list(range(count))
    assert len({d.uuid for d in devices}) == count


def test_optional_calls_may_be_missing(tmp_path: Path) -> None:
    fake = machine(("Tesla T4", 15))
    fake.missing = {
        "nvmlDeviceGetAttributes",
        "nvmlDeviceGetNumaNodeId",
        "nvmlDeviceGetMinorNumber",
        "nvmlDeviceGetPciInfo",
    }
    (device,) = discover(fake)
    assert device.compute_units is None
    assert device.numa_node is None
    assert device.pci_bus_id is None
    assert device.device_file == "/dev/nvidia0"


def test_numa_from_sysfs_when_nvml_lacks_it(tmp_path: Path) -> None:
    fake = machine(("Tesla T4", 15), count=2)
    fake.gpus[0].numa = None
    fake.gpus[1].numa = None
    node = tmp_path / "sys/bus/pci/devices/0000:1a:00.0"
    node.mkdir(parents=True)
    (node / "numa_node").write_text("1\n")
    devices = discover(fake, sys_root=tmp_path)
    assert [d.numa_node for d in devices] == [1, None]


def test_init_failure_is_a_clear_config_error() -> None:
    with pytest.raises(DiscoveryError) as info:
        discover(FakeNvml(init_error="Driver Not Loaded"))
    assert "NVML unavailable: Driver Not Loaded" in str(info.value)
    assert "expect_gpus: 0" in str(info.value)
    assert isinstance(info.value, ConfigError)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "call",
    ["nvmlDeviceGetUUID", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetName", "nvmlDeviceGetCount"],
)
def test_required_call_failure_names_it(call: str) -> None:
    fake = machine(("Tesla T4", 15))
    fake.missing = {call}
    with pytest.raises(
        DiscoveryError,
        match=call.removeprefix("nvml") if "Count" not in call else "cannot count devices",
    ):
        discover(fake)
    assert fake.calls[-1] == "nvmlShutdown"


def test_unusable_uuid_is_refused() -> None:
    fake = machine(("Tesla T4", 15))
    fake.gpus[0].uuid = "GPU with spaces"
    with pytest.raises(DiscoveryError, match="unusable UUID"):
        discover(fake)


def test_zero_devices_is_an_empty_list() -> None:
    assert discover(FakeNvml()) == []


def test_missing_library_path_is_a_discovery_error() -> None:
    backend = NvmlBackend(BackendOptions(library="/nonexistent/libnvidia-ml.so.1"))
    with pytest.raises(DiscoveryError, match=r"cannot load /nonexistent/libnvidia-ml.so.1"):
        backend.discover()


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("00000000:3B:00.0", "0000:3b:00.0"),
        ("0000:3b:00.0", "0000:3b:00.0"),
        ("00001234:01:00.0", "1234:01:00.0"),
    ],
)
def test_normalize_pci_bus_id(raw: str, normal: str) -> None:
    assert normalize_pci_bus_id(raw) == normal


def test_registry_knows_nvml_and_accepts_new_backends() -> None:
    assert "nvml" in backend_names()
    assert isinstance(create_backend("nvml", BackendOptions()), NvmlBackend)

    class Ascend:
        name = "npu-smi-test"

        def __init__(self, options: BackendOptions) -> None:
            self.options = options

        def discover(self) -> list[Device]:
            return [Device(0, "NPU-1", "Ascend 910B", 64 * GIB, vendor="huawei")]

    register_backend("npu-smi-test", Ascend)
    assert create_backend("npu-smi-test", BackendOptions()).discover()[0].vendor == "huawei"
    with pytest.raises(ConfigError, match=r"discovery: unknown backend 'rocm'; allowed: .*nvml"):
        create_backend("rocm", BackendOptions())
