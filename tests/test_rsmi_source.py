"""The daemon's ROCm SMI device source (policies/service/rsmi_source.py) against the simulated
AMD GPU: per-process VRAM of running hipcc-built programs, per-GPU memory and busy percent;
and how the daemon picks a source per GPU by the inventory's vendor (both on a mixed node).

The fake librocm_smi64 attaches its state file once per process, so every reading runs in a
process of its own (RsmiSource there, JSON back)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakegpu import FakeGpuBuild, FakeMachine
from test_fakegpu_hip import amd_machine, amd_program, wait_ready

from slurm_vgpu.policies.service import daemon as daemon_mod
from slurm_vgpu.policies.service.nvml_source import (
    DeviceReading,
    NvmlError,
    ProcessReading,
    VendorSources,
)
from slurm_vgpu.policies.service.observer import InventoryGpuInfo

MIB = 1 << 20
GIB = 1 << 30

SAMPLE = """
import json, sys
from dataclasses import asdict
from slurm_vgpu.policies.service.rsmi_source import RsmiSource
src = RsmiSource(library=sys.argv[1], poll_interval=None)
devices, procs = src.sample()
info = src.process_info(int(sys.argv[2])) if len(sys.argv) > 2 else None
print(json.dumps({"devices": [asdict(d) for d in devices],
                  "processes": [asdict(p) for p in procs],
                  "cu": {str(k): v for k, v in src.cu_occupancy_percent.items()},
                  "by_pid": None if info is None else {"pid": info.process_id,
                                                       "vram": info.vram_usage}}))
src.close()
"""


# the occupancy poller: 100 reads every 5 ms, then the sample that reports them
POLLED = """
import json, sys, time
from dataclasses import asdict
from slurm_vgpu.policies.service.rsmi_source import RsmiSource
src = RsmiSource(library=sys.argv[1], poll_interval=0.005, window=100, min_reads=100)
first = src.sample()[1]  # fewer than 100 reads yet: no figure
deadline = time.monotonic() + 30
while src.poller is not None and src.poller.reads < 100 and time.monotonic() < deadline:
    time.sleep(0.05)
procs = src.sample()[1]
print(json.dumps({"first": [asdict(p) for p in first], "processes": [asdict(p) for p in procs]}))
src.close()
"""


def sample(m: FakeMachine, pid: int | None = None) -> dict[str, Any]:
    argv = [sys.executable, "-c", SAMPLE, str(m.build.dir / "librocm_smi64.so.1")]
    if pid is not None:
        argv.append(str(pid))
    out = m.run(argv, extra_env={"LD_LIBRARY_PATH": ""}, timeout=60)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def amd_uuid_of(device: dict[str, Any]) -> str:
    return "GPU-" + device["uuid"].removeprefix("GPU-").replace("-", "")[-16:].lower()


@pytest.fixture
def mi(fakegpu_build: FakeGpuBuild, tmp_path: Path) -> FakeMachine:
    amd_program(fakegpu_build, "librocm_smi64.so.1")
    return amd_machine(fakegpu_build, tmp_path / "mi.state", 2, "64G,32G")


def test_reads_per_process_vram_of_running_hip_programs(mi: FakeMachine,
                                                        fakegpu_build: FakeGpuBuild) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    uuids = [amd_uuid_of(d) for d in mi.dump()["devices"]]
    idle = sample(mi)
    assert [(d["uuid"], d["index"], d["memory_used_bytes"], d["memory_total_bytes"])
            for d in idle["devices"]] == [(uuids[0], 0, 0, 64 * GIB), (uuids[1], 1, 0, 32 * GIB)]
    assert all(0 <= d["utilization_permille"] <= 1000 for d in idle["devices"])
    assert idle["processes"] == []
    first = mi.popen([str(hip), "hold", "1000", "20"])
    second = mi.popen([str(hip), "hold", "300", "20"], extra_env={"HIP_VISIBLE_DEVICES": "1"})
    try:
        wait_ready(first)
        wait_ready(second)
        got = sample(mi, first.pid)
        procs = {(p["uuid"], p["pid"]): p for p in got["processes"]}
        assert set(procs) == {(uuids[0], first.pid), (uuids[1], second.pid)}
        assert procs[(uuids[0], first.pid)]["used_memory_bytes"] == 1000 * MIB
        assert procs[(uuids[1], second.pid)]["used_memory_bytes"] == 300 * MIB
        # no per-process busy figure on AMD: the hook's state files carry the share
        assert {p["utilization_permille"] for p in got["processes"]} == {None}
        assert set(got["cu"]) == {str(first.pid), str(second.pid)}
        assert [d["memory_used_bytes"] for d in got["devices"]] == [1000 * MIB, 300 * MIB]
        assert got["by_pid"] == {"pid": first.pid, "vram": 1000 * MIB}
        # the ground truth agrees
        dev = mi.dump()["devices"]
        assert [p["memory_used"] for p in dev[0]["processes"] if p["pid"] == first.pid] == [
            1000 * MIB]
    finally:
        for p in (first, second):
            p.kill()
            p.wait()
    gone = sample(mi, first.pid)
    assert gone["processes"] == [] and gone["by_pid"] is None
    assert [d["memory_used_bytes"] for d in gone["devices"]] == [0, 0]


def test_the_occupancy_poller_measures_each_processs_device_time(
        mi: FakeMachine, fakegpu_build: FakeGpuBuild) -> None:
    """The root-side compute figure on AMD: a process launching kernels flat out alone on GPU 0
    held it for nearly all reads (lower bound of 100 reads: at least 80 %), an idle one on GPU 1
    for none; no figure before the window has its reads."""
    hip = amd_program(fakegpu_build, "test-hip-basic")
    idle = mi.popen([str(hip), "hold", "100", "30"], extra_env={"HIP_VISIBLE_DEVICES": "1"})
    busy = mi.popen([str(hip), "launch", "50000000", "200"])  # 200 x 50 ms kernels
    try:
        wait_ready(idle)
        time.sleep(0.5)
        argv = [sys.executable, "-c", POLLED, str(mi.build.dir / "librocm_smi64.so.1")]
        out = mi.run(argv, extra_env={"LD_LIBRARY_PATH": ""}, timeout=90)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for p in (idle, busy):
            p.kill()
            p.wait()
    assert {p["utilization_permille"] for p in got["first"]} == {None}, got
    util = {p["pid"]: p["utilization_permille"] for p in got["processes"]}
    assert util[idle.pid] == 0, util
    assert util[busy.pid] is not None and util[busy.pid] >= 800, util


def test_occupancy_window_slides_and_reports_a_lower_bound() -> None:
    from slurm_vgpu.policies.service.rsmi_source import OccupancyPoller, busy_lower_bound_permille

    reads = iter([[(7, 100), (8, 0)]] * 3 + [[(7, 0), (8, 40)]] * 1 + [[(8, 100)]] * 4)
    poller = OccupancyPoller(lambda: next(reads), window=4, min_reads=4)
    for _ in range(3):
        poller.poll_once()
    assert poller.take() is None  # 3 reads: too few
    poller.poll_once()
    assert poller.take() == {7: busy_lower_bound_permille(3, 4),
                             8: busy_lower_bound_permille(1, 4)}
    for _ in range(4):
        poller.poll_once()
    assert poller.take() == {8: busy_lower_bound_permille(4, 4)}  # pid 7 left the window


def test_the_lower_bound_never_overstates_and_separates_abuse_quickly() -> None:
    from slurm_vgpu.policies.service.rsmi_source import busy_lower_bound_permille

    assert busy_lower_bound_permille(0, 10) == 0 and busy_lower_bound_permille(5, 0) == 0
    for reads in (10, 25, 100):
        for held in range(reads + 1):
            assert busy_lower_bound_permille(held, reads) <= 1000 * held // reads
    # a process holding the device in every read, against a 1-slice share (100) + 150
    assert busy_lower_bound_permille(10, 10) > 250
    assert busy_lower_bound_permille(25, 25) > 700
    # one keeping to a 3-slice share (300) is never put above 300 + 150, whatever the window
    assert all(busy_lower_bound_permille(round(0.35 * n), n) < 450 for n in range(10, 101))


def test_busy_percent_while_a_kernel_runs(mi: FakeMachine, fakegpu_build: FakeGpuBuild) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    runner = mi.popen([str(hip), "launch", "50000000", "20"])  # 20 x 50 ms kernels
    try:
        time.sleep(0.5)
        got = sample(mi)
    finally:
        runner.kill()
        runner.wait()
    util = {d["index"]: d["utilization_permille"] for d in got["devices"]}
    assert util[0] >= 500 and util[1] == 0


def test_rsmi_source_on_an_nvidia_machine_raises_nvml_error(
        fakegpu_build: FakeGpuBuild, tmp_path: Path) -> None:
    from fakegpu import create_fake_machine

    nv = create_fake_machine(fakegpu_build, tmp_path / "nv.state")
    code = ("from slurm_vgpu.policies.service.rsmi_source import RsmiSource\n"
            "from slurm_vgpu.policies.service.nvml_source import NvmlError\n"
            "import sys\n"
            "try:\n    RsmiSource(library=sys.argv[1])\nexcept NvmlError as e:\n"
            "    print('refused', e)\n")
    out = nv.run([sys.executable, "-c", code, str(fakegpu_build.dir / "librocm_smi64.so.1")],
                 timeout=60)
    assert "refused ROCm SMI unavailable: rsmi_init" in out.stdout, out.stderr


# ------------------------------------------------------------------ choosing sources (pure)


class Stub:
    def __init__(self, devices: list[DeviceReading], procs: list[ProcessReading]) -> None:
        self.devices, self.procs = devices, procs
        self.error: str | None = None

    def sample(self) -> tuple[list[DeviceReading], list[ProcessReading]]:
        if self.error:
            raise NvmlError(self.error)
        return list(self.devices), list(self.procs)


def test_vendor_sources_answer_for_their_vendors_gpus() -> None:
    nv = Stub([DeviceReading("GPU-nv", 0, 100, 1, 2), DeviceReading("GPU-other", 1, 0, 0, 2)],
              [ProcessReading("GPU-nv", 10, 5, 300), ProcessReading("GPU-other", 11, 5, 0)])
    amd = Stub([DeviceReading("GPU-0000000000000001", 0, 500, 3, 4)],
               [ProcessReading("GPU-0000000000000001", 12, 7, None)])
    both = VendorSources({"nvidia": nv, "amd": amd},
                         {"nvidia": {"GPU-nv"}, "amd": {"GPU-0000000000000001"}})
    devices, procs = both.sample()
    assert [d.uuid for d in devices] == ["GPU-nv", "GPU-0000000000000001"]
    assert [(p.uuid, p.pid) for p in procs] == [("GPU-nv", 10), ("GPU-0000000000000001", 12)]
    amd.error = "rsmi_num_monitor_devices: RSMI_STATUS_INIT_ERROR"
    devices, procs = both.sample()  # NVIDIA readings go on
    assert [d.uuid for d in devices] == ["GPU-nv"] and both.errors == {
        "amd": "rsmi_num_monitor_devices: RSMI_STATUS_INIT_ERROR"}
    nv.error = "nvmlDeviceGetCount failed"
    with pytest.raises(NvmlError, match="nvidia: nvmlDeviceGetCount failed; amd: "):
        both.sample()


def inv(*gpus: tuple[str, str]) -> dict[str, list[InventoryGpuInfo]]:
    return {"n1": [InventoryGpuInfo(i, uuid, 10, GIB, 100, 16 * GIB, vendor)
                   for i, (uuid, vendor) in enumerate(gpus)]}


def test_daemon_picks_the_source_by_inventory_vendor(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    stubs = {"nvidia": Stub([], []), "amd": Stub([], [])}

    def fake_open(vendor: str) -> Any:
        opened.append(vendor)
        return stubs[vendor]

    monkeypatch.setattr(daemon_mod, "_open_source", fake_open)
    assert daemon_mod.device_source(inv(("GPU-a", "nvidia"))) is stubs["nvidia"]
    assert daemon_mod.device_source(inv(("GPU-1", "amd"))) is stubs["amd"]
    assert daemon_mod.device_source({"n1": []}) is stubs["nvidia"]  # as before vendors
    assert opened == ["nvidia", "amd", "nvidia"]
    mixed = daemon_mod.device_source(inv(("GPU-a", "nvidia"), ("GPU-1", "amd")))
    assert isinstance(mixed, VendorSources)
    assert mixed.sources == stubs
    assert mixed.uuids == {"nvidia": {"GPU-a"}, "amd": {"GPU-1"}}
    assert daemon_mod.gpu_vendors(inv(("GPU-a", "nvidia"), ("GPU-1", "amd"))) == {
        "GPU-a": "nvidia", "GPU-1": "amd"}


def test_inventory_vendor_reaches_the_daemon(tmp_path: Path) -> None:
    from slurm_vgpu.gres.inventory import InventoryGpu, NodeInventory, format_inventory

    path = tmp_path / "inventory.conf"
    path.write_text(format_inventory(NodeInventory("n1", (
        InventoryGpu(0, "GPU-a", 10, GIB, 100, 16 * GIB, "A100"),
        InventoryGpu(1, "GPU-0000000000000001", 8, GIB, 125, 64 * GIB, "MI210", "amd")))))
    # an older inventory line without vendor= is NVIDIA
    text = path.read_text().replace(" vendor=nvidia", "")
    path.write_text(text)
    loaded = daemon_mod.load_inventories(str(path), ["n1"])
    assert [(g.uuid, g.vendor) for g in loaded["n1"]] == [
        ("GPU-a", "nvidia"), ("GPU-0000000000000001", "amd")]


def test_no_client_imports_in_policy_code() -> None:
    """decide/ stays pure: no NVML, ROCm SMI or ctypes (tests/test_layout.py holds the rest)."""
    root = Path(__file__).resolve().parent.parent / "policies" / "decide"
    for path in root.glob("*.py"):
        text = path.read_text()
        for banned in ("import ctypes", "pynvml", "rsmi_source", "gres.rsmi"):
            assert banned not in text, f"{path.name} mentions {banned}"



WIRED = """
import json, sys
from slurm_vgpu.policies.service.daemon import device_source
from slurm_vgpu.policies.service.nvml_source import VendorSources
from slurm_vgpu.policies.service.observer import InventoryGpuInfo
gpus = [InventoryGpuInfo(i, u, 10, 1 << 30, 100, 1 << 34, v)
        for i, (u, v) in enumerate(json.loads(sys.argv[1]))]
src = device_source({"n1": gpus})
devices, procs = src.sample()
print(json.dumps({"kind": type(src).__name__, "uuids": [d.uuid for d in devices],
                  "errors": getattr(src, "errors", {})}))
"""


def test_daemon_wiring_reads_amd_gpus_through_rocm_smi(mi: FakeMachine) -> None:
    """build_daemon's choice, for real: an AMD inventory gets ROCm SMI (found by name on the
    machine's LD_LIBRARY_PATH); a mixed one both sources, NVML failing on this AMD-only
    machine without taking the AMD readings with it."""
    uuids = [amd_uuid_of(d) for d in mi.dump()["devices"]]

    def wired(gpus: list[tuple[str, str]]) -> dict[str, Any]:
        out = mi.run([sys.executable, "-c", WIRED, json.dumps(gpus)], timeout=60)
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return data

    amd_only = wired([(u, "amd") for u in uuids])
    assert amd_only["kind"] == "RsmiSource" and amd_only["uuids"] == uuids
    mixed = wired([("GPU-00000000-1111-2222-3333-444444444444", "nvidia"), (uuids[1], "amd")])
    # NVML does not initialize on an AMD machine: the node keeps its AMD readings
    assert mixed["kind"] == "VendorSources" and mixed["uuids"] == [uuids[1]]
