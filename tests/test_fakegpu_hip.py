"""The simulated AMD GPU: fake libamdhip64 (HIP 5.2) and librocm_smi64 over the shared state.

Real programs built with Debian 12's hipcc for the AMD platform (build/fakegpu/test-hip-*) and
a C program linked against Debian's librocm_smi64 (test-rsmi) run on a machine made with
``fakegpu-ctl create --vendor amd``; fakegpu-dump is the ground truth, as for CUDA.

The AMD parts need Debian's ``hipcc libamdhip64-dev librocm-smi-dev`` (contrib/bootstrap.sh
installs them on bookworm and trixie). Without them these tests skip; with VGPU_REQUIRE_NATIVE=1
they fail instead wherever those packages belong (conftest.REQUIRE_AMD).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REQUIRE_AMD, skip_or_fail
from fakegpu import FakeGpuBuild, FakeMachine, PynvmlRunner, create_fake_machine

pytestmark = pytest.mark.native

MIB = 1 << 20
GIB = 1 << 30



def amd_program(build: FakeGpuBuild, name: str) -> Path:
    """An AMD test program or library of the build; skips (fails where required) if absent."""
    path = build.dir / name
    if not path.is_file():
        skip_or_fail(f"{path} not built (make -C native/fakegpu; needs Debian's hipcc "
                     "libamdhip64-dev librocm-smi-dev)", REQUIRE_AMD)
    return path


def amd_machine(build: FakeGpuBuild, state: Path, count: int = 1, mem: str = "64G",
                *extra: str) -> FakeMachine:
    """A simulated machine of AMD GPUs (contexts of 0 MiB unless ``--ctx-overhead`` is given)."""
    amd_program(build, "libamdhip64.so.5")
    args = [str(build.ctl), "create", "--force", "--vendor", "amd", "--state", str(state),
            "--count", str(count), "--mem", mem]
    if "--ctx-overhead" not in extra:
        args += ["--ctx-overhead", "0"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAKEGPU_")}
    subprocess.run([*args, *extra], check=True, capture_output=True, text=True, env=clean,
                   timeout=30)
    lib_path = os.environ.get("LD_LIBRARY_PATH", "")
    env = {"FAKEGPU_STATE": str(state),
           "LD_LIBRARY_PATH": f"{build.dir}:{lib_path}" if lib_path else str(build.dir)}
    return FakeMachine(build=build, state=state, env=env)


def run_json(m: FakeMachine, prog: Path, *args: str, extra_env: dict[str, str] | None = None
             ) -> Any:
    out = m.run([str(prog), *args], extra_env=extra_env, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + (proc.stderr.read() if proc.stderr else "")


def test_amd_machine_has_vendor_name_and_arch(fakegpu_build: FakeGpuBuild,
                                              tmp_path: Path) -> None:
    m = amd_machine(fakegpu_build, tmp_path / "a.state", 2, "64G,32G", "--arch", "gfx90a,gfx942")
    devices = m.dump()["devices"]
    assert [d["vendor"] for d in devices] == ["amd", "amd"]
    assert [d["arch"] for d in devices] == ["gfx90a", "gfx942"]
    assert all(d["name"] == "AMD Instinct MI210" and d["sms"] == 104 for d in devices)
    assert [d["memory_total"] for d in devices] == [64 * GIB, 32 * GIB]
    nvidia = create_fake_machine(fakegpu_build, tmp_path / "n.state")
    assert nvidia.dump()["devices"][0]["vendor"] == "nvidia"
    assert "arch" not in nvidia.dump()["devices"][0]
    bad = m.run([str(fakegpu_build.ctl), "create", "--state", str(tmp_path / "x"),
                 "--vendor", "amd", "--cc", "8.0"])
    assert bad.returncode == 2 and "FAKEGPU_ARCH" in bad.stderr
    bad = m.run([str(fakegpu_build.ctl), "create", "--state", str(tmp_path / "x"),
                 "--vendor", "amd", "--arch", "sm_80"])
    assert bad.returncode == 2 and "gfx arch" in bad.stderr
    bad = m.run([str(fakegpu_build.ctl), "create", "--state", str(tmp_path / "x"),
                 "--vendor", "intel"])
    assert bad.returncode == 2 and "nvidia or amd" in bad.stderr


def test_each_vendor_sees_only_its_own_machines(fakegpu_build: FakeGpuBuild, tmp_path: Path,
                                                run_pynvml: PynvmlRunner) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    rsmi = amd_program(fakegpu_build, "test-rsmi")
    amd = amd_machine(fakegpu_build, tmp_path / "a.state")
    cuda = amd.run([str(fakegpu_build.program("test-drv-api")), "basic"])
    assert cuda.returncode == 1 and "CUDA_ERROR_NO_DEVICE" in cuda.stdout
    assert "simulates AMD GPUs" in cuda.stderr
    with pytest.raises(AssertionError, match="DriverNotLoaded"):
        run_pynvml(amd, "pynvml.nvmlInit()\nresult = {}")
    nvidia = create_fake_machine(fakegpu_build, tmp_path / "n.state")
    out = nvidia.run([str(hip), "props"])
    assert out.returncode == 1 and "hipErrorNoDevice" in out.stdout
    assert "simulates NVIDIA GPUs" in out.stderr
    assert run_json(nvidia, rsmi, "init") == {"init": 8}  # RSMI_STATUS_INIT_ERROR
    # the fake HIP runtime makes a missing state file of its own vendor
    fresh = FakeMachine(build=fakegpu_build, state=tmp_path / "new.state",
                        env={**amd.env, "FAKEGPU_STATE": str(tmp_path / "new.state")})
    assert run_json(fresh, hip, "props")["devices"][0]["name"] == "AMD Instinct MI210"


def test_hip_device_count_and_properties(fakegpu_build: FakeGpuBuild, tmp_path: Path) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    m = amd_machine(fakegpu_build, tmp_path / "a.state", 2, "64G,16G", "--sms", "104,110",
                    "--name", "AMD Instinct MI210,AMD Instinct MI250X", "--arch", "gfx90a,gfx942",
                    "--pci", "0000:c1:00.0,0000:c5:00.0")
    props = run_json(m, hip, "props")
    assert props["count"] == 2 and props["runtime"] == 50221153
    d0, d1 = props["devices"]
    assert d0["name"] == "AMD Instinct MI210" and d1["name"] == "AMD Instinct MI250X"
    assert d0["arch"] == "gfx90a:sramecc+:xnack-" and d1["arch"] == "gfx942:sramecc+:xnack-"
    assert (d0["major"], d0["minor"], d1["major"], d1["minor"]) == (9, 0, 9, 4)
    assert [d["total"] for d in (d0, d1)] == [64 * GIB, 16 * GIB]
    assert [d["total_mem"] for d in (d0, d1)] == [64 * GIB, 16 * GIB]
    assert [d["cus"] for d in (d0, d1)] == [104, 110] == [d["cus_attr"] for d in (d0, d1)]
    assert d0["warp"] == 64 and d0["bus"] == "0000:c1:00.0" and d1["bus"] == "0000:c5:00.0"
    one = run_json(m, hip, "props", extra_env={"HIP_VISIBLE_DEVICES": "1"})
    assert one["count"] == 1 and one["devices"][0]["total"] == 16 * GIB


def test_memgetinfo_counts_every_process(fakegpu_build: FakeGpuBuild, tmp_path: Path) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    m = amd_machine(fakegpu_build, tmp_path / "a.state", 1, "16G", "--ctx-overhead", "512M")
    alone = run_json(m, hip, "meminfo")
    assert alone["total"] == 16 * GIB and alone["free"] == 16 * GIB - 512 * MIB  # own context
    holder = m.popen([str(hip), "hold", "1000", "20"])
    try:
        wait_ready(holder)
        info = run_json(m, hip, "meminfo")
        dev = m.device(0)
        assert info["total"] - info["free"] == (1000 + 512 + 512) * MIB
        holder_entry = [p for p in dev["processes"] if p["pid"] == holder.pid]
        assert holder_entry and holder_entry[0]["memory_used"] == (1000 + 512) * MIB
    finally:
        holder.kill()
        holder.wait()
    assert m.device(0)["memory_used"] == 0  # a killed process's memory comes back


def test_allocation_past_free_memory_is_out_of_memory(fakegpu_build: FakeGpuBuild,
                                                      tmp_path: Path) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    m = amd_machine(fakegpu_build, tmp_path / "a.state", 1, "8G")
    out = run_json(m, hip, "oom")
    assert out == {"code": 2, "name": "hipErrorOutOfMemory", "last": 2, "after": 0,
                   "ptr_null": True}
    assert m.device(0)["memory_used"] == 0


def test_hip_programs_pass(fakegpu_build: FakeGpuBuild, tmp_path: Path) -> None:
    basic = amd_program(fakegpu_build, "test-hip-basic")
    broad = amd_program(fakegpu_build, "test-hip-broad")
    m = amd_machine(fakegpu_build, tmp_path / "a.state", 2, "64G,8G")
    out = m.run([str(basic), "basic"])
    assert out.returncode == 0, out.stdout + out.stderr
    out = m.run([str(broad)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("OK")
    devices = m.dump()["devices"]
    assert [d["memory_used"] for d in devices] == [0, 0]
    assert devices[1]["launches"] == 1 and devices[1]["busy_total_ns"] == 1_000_000


def test_kernels_take_the_wave_model_time(fakegpu_build: FakeGpuBuild, tmp_path: Path) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    m = amd_machine(fakegpu_build, tmp_path / "a.state", 1, "64G", "--kernel-ns", "100000")
    out = m.run([str(hip), "grid", "1000", "10"])  # 1000 blocks on 104 CUs x 2: 5 waves
    assert out.returncode == 0, out.stdout + out.stderr
    dev = m.device(0)
    assert dev["launches"] == 10 and dev["busy_total_ns"] == 10 * 5 * 100_000


def test_two_hip_processes_time_slice_one_device(fakegpu_build: FakeGpuBuild,
                                                 tmp_path: Path) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    m = amd_machine(fakegpu_build, tmp_path / "a.state")
    t0 = time.monotonic_ns()
    procs = [m.popen([str(hip), "launch", "2000000", "100"]) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    t1 = time.monotonic_ns()
    assert all(p.returncode == 0 for p in procs), outs
    elapsed = [json.loads(o[0].strip().splitlines()[-1])["elapsed_ns"] for o in outs]
    dev = m.device(0, from_ns=t0, to_ns=t1)
    shares = {p["pid"]: p["busy_window_ns"] for p in dev["processes"]}
    assert shares == {procs[0].pid: 200_000_000, procs[1].pid: 200_000_000}
    assert dev["busy_window_ns"] == 400_000_000
    # each had 200 ms of work; sharing the device, each took about the pair's 400 ms
    assert all(e > 380_000_000 for e in elapsed), elapsed


def test_rocm_smi_reports_memory_and_processes(fakegpu_build: FakeGpuBuild,
                                               tmp_path: Path) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    rsmi = amd_program(fakegpu_build, "test-rsmi")
    m = amd_machine(fakegpu_build, tmp_path / "a.state", 2, "64G,32G", "--ctx-overhead", "512M",
                    "--pci", "0000:c1:00.0,0000:c5:00.0")
    holder = m.popen([str(hip), "hold", "1000", "20"])
    try:
        wait_ready(holder)
        smi = run_json(m, rsmi, "devices")
        dev = m.dump()["devices"]
        assert smi["count"] == 2
        d0, d1 = smi["devices"]
        assert d0["name"] == "AMD Instinct MI210" and d0["brand"] == "MI210"
        assert d0["vendor"] == 0x1002 and d0["id"] == 0x740F
        assert d0["bdfid"] == (0xC1 << 8) and d1["bdfid"] == (0xC5 << 8)
        assert [d["vram_total"] for d in (d0, d1)] == [64 * GIB, 32 * GIB]
        assert d0["vram_used"] == dev[0]["memory_used"] == (1000 + 512) * MIB
        assert d1["vram_used"] == 0
        procs = run_json(m, rsmi, "procs")
        assert [(p["pid"], p["vram"]) for p in procs] == [(holder.pid, (1000 + 512) * MIB)]
        one = run_json(m, rsmi, "pid", str(holder.pid))
        assert one["proc"]["vram"] == (1000 + 512) * MIB and one["gpus"] == [0]
        assert one["gpu_count"] == 1 and one["proc"]["sdma"] == 0
        missing = m.run([str(rsmi), "pid", "1"])
        assert missing.returncode == 1 and "RSMI_STATUS_NOT_FOUND" in missing.stdout
    finally:
        holder.kill()
        holder.wait()
    assert run_json(m, rsmi, "procs") == []
    assert run_json(m, rsmi, "devices")["devices"][0]["vram_used"] == 0


def test_rocm_smi_busy_percent_and_cu_occupancy(fakegpu_build: FakeGpuBuild,
                                                tmp_path: Path) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    rsmi = amd_program(fakegpu_build, "test-rsmi")
    m = amd_machine(fakegpu_build, tmp_path / "a.state")
    assert run_json(m, rsmi, "busy", "0", "10", "2") == [0, 0]
    busy = m.popen([str(hip), "launch", "10000000", "150"])  # 1.5 s of work
    try:
        time.sleep(0.5)
        samples = run_json(m, rsmi, "busy", "0", "100", "5")
        assert all(s >= 95 for s in samples), samples
        procs = run_json(m, rsmi, "procs")
        assert [(p["pid"], p["cu_occupancy"]) for p in procs] == [(busy.pid, 100)]
        assert busy.communicate(timeout=60)[0]
        assert busy.returncode == 0
    finally:
        if busy.poll() is None:
            busy.kill()
            busy.wait()
    time.sleep(0.3)  # past the 200 ms window: idle again
    assert run_json(m, rsmi, "busy", "0", "10", "1") == [0]


def test_waits_are_bounded_by_the_wait_limit(fakegpu_build: FakeGpuBuild,
                                             tmp_path: Path) -> None:
    hip = amd_program(fakegpu_build, "test-hip-basic")
    m = amd_machine(fakegpu_build, tmp_path / "a.state")
    start = time.monotonic()
    out = m.run([str(hip), "launch", "30000000000", "1"],  # a 30 s kernel
                extra_env={"FAKEGPU_WAIT_LIMIT_S": "1"}, timeout=20)
    assert time.monotonic() - start < 10
    assert out.returncode == 1 and "hipErrorLaunchTimeOut" in out.stdout
    assert "fakegpu: a wait for simulated work passed FAKEGPU_WAIT_LIMIT_S" in out.stderr
