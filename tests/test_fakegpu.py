"""The simulated GPU: configuration, state file handling, driver and runtime API, NVML."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from fakegpu import FakeGpuBuild, FakeMachineFactory, PynvmlRunner, create_fake_machine

pytestmark = pytest.mark.native

GIB = 1 << 30


def test_ctl_create_and_dump_show_the_configuration(fake_machine: FakeMachineFactory) -> None:
    uuids = ["GPU-11111111-2222-3333-4444-555555555555", "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
    m = fake_machine(count=2, mem="16G,80G", sms="108,132", name="NVIDIA A100-SXM4-80GB",
                     cc="9.0", uuids=uuids, pci=["0000:3b:00.0", "0000:5e:00.0"])
    devices = m.dump()["devices"]
    assert [d["memory_total"] for d in devices] == [16 * GIB, 80 * GIB]
    assert [d["sms"] for d in devices] == [108, 132]
    assert [d["uuid"] for d in devices] == uuids
    assert [d["bus_id"] for d in devices] == ["00000000:3B:00.0", "00000000:5E:00.0"]
    assert all(d["name"] == "NVIDIA A100-SXM4-80GB" and d["cc"] == "9.0" for d in devices)
    assert all(d["memory_used"] == 0 and d["processes"] == [] for d in devices)


def test_default_uuids_differ_between_machines(fake_machine: FakeMachineFactory) -> None:
    a, b = fake_machine(count=2), fake_machine(count=2)
    assert len(set(a.uuids + b.uuids)) == 4


def test_ctl_rejects_bad_values_with_a_clear_message(
    fakegpu_build: FakeGpuBuild, tmp_path: Path
) -> None:
    state = tmp_path / "s.state"
    m = create_fake_machine(fakegpu_build, state)
    ctl = str(fakegpu_build.ctl)
    bad = m.run([ctl, "create", "--state", str(tmp_path / "x"), "--mem", "lots"])
    assert bad.returncode == 2
    assert "fakegpu: FAKEGPU_MEM item 'lots'" in bad.stderr
    bad = m.run([ctl, "create", "--state", str(tmp_path / "x"), "--count", "99"])
    assert bad.returncode == 2 and "device count" in bad.stderr
    exists = m.run([ctl, "create", "--state", str(state)])
    assert exists.returncode == 1 and "--force" in exists.stderr
    assert m.run([ctl, "frobnicate"]).returncode == 2


def test_state_path_expands_slurmd_nodename(fakegpu_build: FakeGpuBuild, tmp_path: Path) -> None:
    m = create_fake_machine(fakegpu_build, tmp_path / "base.state")
    pattern = str(tmp_path / "fake-%n.state")
    ctl = str(fakegpu_build.ctl)
    for node in ("n1", "n2"):
        out = m.run([ctl, "create", "--count", "1"],
                    extra_env={"FAKEGPU_STATE": pattern, "SLURMD_NODENAME": node})
        assert out.returncode == 0, out.stderr
        assert (tmp_path / f"fake-{node}.state").is_file()
    env = m.process_env({"FAKEGPU_STATE": pattern})
    env.pop("SLURMD_NODENAME", None)
    bad = subprocess.run([ctl, "create"], env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "SLURMD_NODENAME is not set" in bad.stderr


def test_first_use_creates_the_machine_from_variables(
    fakegpu_build: FakeGpuBuild, tmp_path: Path
) -> None:
    m = create_fake_machine(fakegpu_build, tmp_path / "unused.state")
    state = tmp_path / "fresh.state"
    out = m.run([str(fakegpu_build.program("test-drv-api")), "meminfo"],
                extra_env={"FAKEGPU_STATE": str(state), "FAKEGPU_COUNT": "2",
                           "FAKEGPU_MEM": "8G,24G"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"total={8 * GIB}" in out.stdout
    m.state = state
    assert [d["memory_total"] for d in m.dump()["devices"]] == [8 * GIB, 24 * GIB]


@pytest.mark.parametrize("damage", ["garbage", "version", "truncated"])
def test_bad_state_file_gives_a_clear_error_and_no_crash(
    fake_machine: FakeMachineFactory, run_pynvml: PynvmlRunner, damage: str
) -> None:
    m = fake_machine()
    if damage == "garbage":
        m.state.write_bytes(os.urandom(4096))
        expect = "not a fakegpu state file"
    elif damage == "version":
        with m.state.open("r+b") as f:
            f.seek(8)
            f.write(struct.pack("<I", 999))
        expect = "state version 999"
    else:
        os.truncate(m.state, 100)
        expect = "not a fakegpu state file of this version"
    prog = m.run([str(m.build.program("test-drv-api")), "basic"])
    assert prog.returncode == 1  # a clean failure, not a signal
    assert f"fakegpu: {m.state}" in prog.stderr or "fakegpu: " in prog.stderr
    assert expect in prog.stderr
    assert "cuInit" in prog.stdout and "CUDA_ERROR_NO_DEVICE" in prog.stdout
    dump = m.run([str(m.build.dump), "--state", str(m.state)])
    assert dump.returncode == 1 and expect in dump.stderr
    with pytest.raises(AssertionError, match="DriverNotLoaded"):
        run_pynvml(m, "pynvml.nvmlInit()\nresult = {}")


def test_driver_api_families(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine(count=1, mem="16G")
    out = m.run([str(m.build.program("test-drv-api")), "families"])
    assert out.returncode == 0, out.stdout + out.stderr
    passed = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("PASS")}
    assert passed == {"context", "memory", "pool", "vmm", "array", "module", "stream_event",
                      "launch", "graph", "procaddr"}
    assert m.device(0)["memory_used"] == 0  # everything was freed


def test_misuse_returns_the_real_error_codes(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine()
    for mode in ("errors", "uninit"):
        out = m.run([str(m.build.program("test-drv-api")), mode])
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"PASS {mode}" in out.stdout


def test_every_lookup_path_reaches_the_fake(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine(mem="16G")
    basic = m.run([str(m.build.program("test-drv-api")), "basic"])
    assert basic.returncode == 0, basic.stdout + basic.stderr
    assert "after_alloc free=16911433728 total=17179869184" in basic.stdout
    for name in ("test-drv-dlsym", "test-drv-procaddr"):
        out = m.run([str(m.build.program(name)), "100"])
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"alloc=0 free={16 * GIB - 100 * (1 << 20)} total={16 * GIB}" in out.stdout


def test_cuda_visible_devices_like_the_real_driver(fake_machine: FakeMachineFactory) -> None:
    uuids = [f"GPU-{i}{i}{i}{i}aaaa-0000-4000-8000-00000000000{i}" for i in range(3)]
    m = fake_machine(count=3, mem="8G,16G,24G", uuids=uuids)
    prog = str(m.build.program("test-drv-api"))
    # indices, full UUIDs, unique UUID prefixes; the list ends at the first bad entry
    cases = {"2": 24, uuids[1]: 16, "GPU-1111": 16, "2,0": 24, "1,9,0": 16, "GPU-0,2": 8}
    for cvd, gib in cases.items():
        out = m.run([prog, "meminfo"], extra_env={"CUDA_VISIBLE_DEVICES": cvd})
        assert out.returncode == 0, (cvd, out.stdout, out.stderr)
        assert f"total={gib * GIB}" in out.stdout, cvd
    listed = m.run([prog, "basic"], extra_env={"CUDA_VISIBLE_DEVICES": "1,9,0"})
    assert "devices=1 " in listed.stdout
    for hidden in ("", "GPU-", "7"):  # empty, ambiguous prefix, no such index
        none = m.run([prog, "meminfo"], extra_env={"CUDA_VISIBLE_DEVICES": hidden})
        assert none.returncode == 1 and "CUDA_ERROR_NO_DEVICE" in none.stdout, hidden
    hold = m.popen([prog, "hold", "64", "30"], extra_env={"CUDA_VISIBLE_DEVICES": "2"})
    try:
        assert hold.stdout is not None and "holding" in hold.stdout.readline()
        used = [d["memory_used"] for d in m.dump()["devices"]]
        assert used == [0, 0, 64 << 20]  # charged to physical device 2
    finally:
        hold.kill()
        hold.wait(timeout=30)


@pytest.mark.parametrize("program", ["test-rt-basic", "test-rt-cudart12"])
def test_cuda_runtime_program(fake_machine: FakeMachineFactory, program: str) -> None:
    m = fake_machine(count=2, mem="16G,40G")
    out = m.run([str(m.build.program(program))])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("OK")
    runtime = 12 if program.endswith("12") else 13
    assert f"runtime={runtime}0" in out.stdout
    assert m.device(0)["memory_used"] == 0


def test_cuda_runtime_broad_coverage_on_two_devices(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine(count=2, mem="16G,40G")
    out = m.run([str(m.build.program("test-rt-broad"))])
    assert out.returncode == 0, out.stdout + out.stderr
    for area in ("properties", "stream_event", "graph", "memory", "launch", "two_devices"):
        assert f"PASS {area}" in out.stdout
    assert f"dev1_total={40 * GIB}" in out.stdout


def test_pynvml_sees_the_fake(fake_machine: FakeMachineFactory, run_pynvml: PynvmlRunner) -> None:
    m = fake_machine(count=2, mem="16G,80G", name="NVIDIA A100-SXM4-80GB", sms="108,132")
    hold = m.popen([str(m.build.program("test-drv-api")), "hold", "256", "30"])
    try:
        assert hold.stdout is not None and "holding" in hold.stdout.readline()
        res = run_pynvml(m, """
pynvml.nvmlInit()
out = []
for i in range(pynvml.nvmlDeviceGetCount()):
    h = pynvml.nvmlDeviceGetHandleByIndex(i)
    uuid = pynvml.nvmlDeviceGetUUID(h)
    m1 = pynvml.nvmlDeviceGetMemoryInfo(h)
    m2 = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
    out.append({
        "name": pynvml.nvmlDeviceGetName(h), "uuid": uuid, "total": m1.total, "used": m1.used,
        "free2": m2.free, "by_uuid": pynvml.nvmlDeviceGetIndex(
            pynvml.nvmlDeviceGetHandleByUUID(uuid)),
        "bus": pynvml.nvmlDeviceGetPciInfo(h).busId,
        "util": pynvml.nvmlDeviceGetUtilizationRates(h).gpu,
        "sms": pynvml.nvmlDeviceGetAttributes(h).multiprocessorCount,
        "numa": pynvml.nvmlDeviceGetNumaNodeId(h),
        "procs": [[p.pid, p.usedGpuMemory]
                  for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h)],
    })
errors = []
for call in (lambda: pynvml.nvmlDeviceGetHandleByIndex(7),
             lambda: pynvml.nvmlDeviceGetHandleByUUID("GPU-nope")):
    try:
        call()
    except pynvml.NVMLError as e:
        errors.append(type(e).__name__)
pynvml.nvmlShutdown()
result = {"devices": out, "errors": errors}
""")
    finally:
        hold.kill()
        hold.wait(timeout=30)
    d0, d1 = res["devices"]
    assert d0["name"] == "NVIDIA A100-SXM4-80GB"
    assert [d0["uuid"], d1["uuid"]] == m.uuids
    assert (d0["total"], d1["total"]) == (16 * GIB, 80 * GIB)
    assert d0["used"] == 256 << 20 and d0["free2"] == 16 * GIB - (256 << 20)
    assert d0["procs"] == [[hold.pid, 256 << 20]] and d1["procs"] == []
    assert (d0["by_uuid"], d1["by_uuid"]) == (0, 1)
    assert d0["bus"] == "00000000:10:00.0" and d0["util"] == 0
    assert (d0["sms"], d1["sms"], d0["numa"]) == (108, 132, 0)
    assert res["errors"] == ["NVMLError_InvalidArgument", "NVMLError_NotFound"]


def test_nvml_ignores_cuda_visible_devices(
    fake_machine: FakeMachineFactory, run_pynvml: PynvmlRunner
) -> None:
    m = fake_machine(count=3)
    m.env["CUDA_VISIBLE_DEVICES"] = "1"
    res = run_pynvml(m, "pynvml.nvmlInit()\nresult = {'n': pynvml.nvmlDeviceGetCount()}")
    assert res["n"] == 3


def test_pynvml_preloaded_by_path(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine(count=1)
    env = dict(m.env)
    env.pop("LD_LIBRARY_PATH")
    code = (
        "import ctypes, sys, pynvml\n"
        f"ctypes.CDLL({str(m.build.libnvml)!r}, mode=ctypes.RTLD_GLOBAL)\n"
        "pynvml.nvmlInit()\n"
        "print(pynvml.nvmlDeviceGetCount(), pynvml.nvmlDeviceGetName("
        "pynvml.nvmlDeviceGetHandleByIndex(0)))\n"
    )
    full = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    full.update(env)
    out = subprocess.run(["python3", "-c", code], env=full, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1 NVIDIA FakeGPU"


def test_context_memory_overhead_when_configured(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine(mem="16G", ctx_overhead="500M")
    prog = str(m.build.program("test-drv-api"))
    info = m.run([prog, "meminfo"])
    assert f"free={16 * GIB - (500 << 20)} total={16 * GIB}" in info.stdout
    hold = m.popen([prog, "hold", "64", "30"])
    try:
        assert hold.stdout is not None and "holding" in hold.stdout.readline()
        dev = m.device(0)
        assert dev["memory_used"] == (500 << 20) + (64 << 20)
        assert dev["processes"][0]["memory_used"] == (500 << 20) + (64 << 20)
    finally:
        hold.kill()
        hold.wait(timeout=30)
    assert m.device(0)["memory_used"] == 0


def test_ptsz_entry_points_are_what_the_generator_writes(tmp_path: Path) -> None:
    """cuda_ptsz.{h,c} are generated (native/fakegpu/gen_ptsz.py): the committed files match."""
    src = Path(__file__).resolve().parent.parent / "native" / "fakegpu"
    done = subprocess.run([sys.executable, str(src / "gen_ptsz.py"), str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    for name in ("cuda_ptsz.h", "cuda_ptsz.c"):
        assert (tmp_path / name).read_text() == (src / "src" / name).read_text(), name
