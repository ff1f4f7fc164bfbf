"""The simulated GPU's shared state: kernel timeline, contention, utilization, reclamation.

Assertions use the simulation's own timeline (exact simulated durations), never how fast
something ran; the only wall-clock checks are lower bounds (a wait cannot be shorter than
the simulated work it waits for).
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import time

import pytest
from fakegpu import FakeMachine, FakeMachineFactory, PynvmlRunner

pytestmark = pytest.mark.native

MS = 1_000_000  # ns


def _finish(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def _first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline()


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def test_chosen_kernel_durations_are_exact(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine()
    prog = str(m.build.program("test-drv-api"))
    for ns, count in ((10_000, 100), (100 * MS, 1)):  # 10 us to 100 ms, per launch
        before = m.device(0)
        out = m.run([prog, "launch", str(ns), str(count)])
        assert out.returncode == 0, out.stdout + out.stderr
        after = m.device(0)
        assert after["busy_total_ns"] - before["busy_total_ns"] == ns * count
        assert after["launches"] - before["launches"] == count
        assert float(_fields(out.stdout)["total_s"]) >= ns * count / 1e9 - 1e-4


def test_grid_size_duration_model(fake_machine: FakeMachineFactory) -> None:
    # one wave = sms x blocks_per_sm = 20 blocks of 1 ms
    m = fake_machine(sms="10", blocks_per_sm=2, kernel_ns=MS)
    prog = str(m.build.program("test-drv-api"))
    cases = [((40, 3), {}, 6 * MS), ((1, 2), {}, 2 * MS), ((41, 1), {}, 3 * MS),
             ((20, 2), {"FAKEGPU_KERNEL_NS": "500000"}, MS)]
    for (blocks, count), env, expect in cases:
        before = m.device(0)["busy_total_ns"]
        out = m.run([prog, "grid", str(blocks), str(count)], extra_env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert m.device(0)["busy_total_ns"] - before == expect


def test_two_processes_time_slice_on_one_device(fake_machine: FakeMachineFactory) -> None:
    """Like an H200 without MPS: busy processes alternate in 4.5 ms runs, each switch costs."""
    m = fake_machine()
    prog = str(m.build.program("test-drv-api"))
    t0 = time.monotonic_ns()
    procs = [m.popen([prog, "launch", str(20 * MS), "10", "30"]) for _ in range(2)]
    try:
        lines = [_fields(_first_line(p)) for p in procs]
        window = m.device(0, from_ns=t0, to_ns=time.monotonic_ns())
    finally:
        for p in procs:
            _finish(p)
    assert window["busy_total_ns"] == 400 * MS
    by_pid = {p["pid"]: p for p in window["processes"]}
    assert set(by_pid) == {int(line["pid"]) for line in lines}
    # every queued ns ran (a preempted kernel resumes), and nothing overlapped
    assert all(p["busy_window_ns"] == 200 * MS and p["launches"] == 10 for p in by_pid.values())
    assert window["busy_window_ns"] == 400 * MS
    # ~80 preemptive switches of 0.5 ms: the pair needs more than its 400 ms of work
    assert max(float(line["total_s"]) for line in lines) >= 0.4 + 0.02
    assert min(float(line["total_s"]) for line in lines) >= 0.2 - 1e-3


def test_nvml_process_samples_like_the_h200(
    fake_machine: FakeMachineFactory, run_pynvml: PynvmlRunner
) -> None:
    """A new per-process sample every 200 ms, NOT_FOUND in between, 99-100 for both of two
    time-sliced busy processes (what the H200's driver reported)."""
    m = fake_machine()
    prog = str(m.build.program("test-drv-api"))
    poll = """
import time
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
last, found, missing, stamps, utils = 0, 0, 0, [], []
end = time.monotonic() + 1.0
while time.monotonic() < end:
    try:
        samples = pynvml.nvmlDeviceGetProcessUtilization(h, last)
    except pynvml.NVMLError_NotFound:
        missing += 1
    else:
        found += 1
        for s in samples:
            stamps.append(s.timeStamp)
            utils.append(s.smUtil)
        last = max(s.timeStamp for s in samples)
    time.sleep(0.01)
result = {"found": found, "missing": missing, "stamps": sorted(set(stamps)), "utils": utils,
          "gpu": pynvml.nvmlDeviceGetUtilizationRates(h).gpu}
"""
    procs = [m.popen([prog, "launch", str(50 * MS), "60"]) for _ in range(2)]
    try:
        _wait_for_launches(m, 120)
        time.sleep(0.45)  # a full sample period with both busy
        nvml = run_pynvml(m, poll)
    finally:
        for p in procs:
            _finish(p)
    assert nvml["missing"] > 4 * nvml["found"] > 0
    gaps = [b - a for a, b in itertools.pairwise(nvml["stamps"])]
    assert gaps and all(abs(g - 200_000) <= 2_000 for g in gaps)
    assert nvml["utils"] and min(nvml["utils"]) >= 97
    assert nvml["gpu"] >= 97


def test_devices_have_independent_timelines(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine(count=2)
    prog = str(m.build.program("test-drv-api"))
    procs = [m.popen([prog, "launch", str(10 * MS), "10"], extra_env={"CUDA_VISIBLE_DEVICES": i})
             for i in ("0", "1")]
    for p in procs:
        _first_line(p)
        _finish(p)
    devices = m.dump(window_ms=60_000)["devices"]
    assert [d["busy_total_ns"] for d in devices] == [100 * MS, 100 * MS]
    # both exited: the timeline still attributes the busy time to them
    for dev, proc in zip(devices, procs, strict=True):
        assert dev["processes"] == [{"pid": proc.pid, "alive": False, "memory_used": 0,
                                     "busy_window_ns": 100 * MS}]


def _wait_for_launches(m: FakeMachine, launches: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while m.device(0)["launches"] < launches:
        assert time.monotonic() < deadline, "the program never launched"
        time.sleep(0.02)


def test_nvml_utilization_matches_the_timeline(
    fake_machine: FakeMachineFactory, run_pynvml: PynvmlRunner
) -> None:
    m = fake_machine(util_window_ms=1000)
    prog = str(m.build.program("test-drv-api"))
    query = """
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
samples = pynvml.nvmlDeviceGetProcessUtilization(h, 0)
result = {"gpu": pynvml.nvmlDeviceGetUtilizationRates(h).gpu,
          "procs": {str(s.pid): s.smUtil for s in samples}}
"""
    # saturated: 3 s of queued work; sample once a whole window lies inside it
    sat = m.popen([prog, "launch", str(50 * MS), "60"])
    try:
        _wait_for_launches(m, 60)
        time.sleep(1.05)
        nvml = run_pynvml(m, query)
        truth = m.device(0, window_ms=1000)
    finally:
        _finish(sat)
    assert nvml["gpu"] >= 95 and truth["utilization"] >= 0.95
    assert nvml["procs"] == {str(sat.pid): pytest.approx(100, abs=5)}
    # half duty cycle: 10 ms kernel, 10 ms idle
    duty = m.popen([prog, "duty", "4000", "10000", "10000"])
    try:
        _wait_for_launches(m, 61)
        time.sleep(1.1)
        truth_before = m.device(0, window_ms=1000)["utilization"]
        nvml = run_pynvml(m, query)
        truth_after = m.device(0, window_ms=1000)["utilization"]
    finally:
        _finish(duty)
    low, high = sorted((truth_before, truth_after))
    assert 0.2 < low <= high < 0.6
    assert low * 100 - 5 <= nvml["gpu"] <= high * 100 + 5


def _wait_for_holder(m: FakeMachine, mib: int, extra: dict[str, str] | None = None
                     ) -> subprocess.Popen[str]:
    proc = m.popen([str(m.build.program("test-drv-api")), "hold", str(mib), "60"],
                   extra_env=extra)
    assert "holding" in _first_line(proc)
    return proc


def test_kill9_frees_memory_in_ground_truth(
    fake_machine: FakeMachineFactory, run_pynvml: PynvmlRunner
) -> None:
    m = fake_machine(count=2, mem="16G,16G")
    a = _wait_for_holder(m, 512)
    b = _wait_for_holder(m, 256, {"CUDA_VISIBLE_DEVICES": "1"})
    try:
        devs = m.dump()["devices"]
        assert [d["memory_used"] for d in devs] == [512 << 20, 256 << 20]
        assert devs[0]["processes"][0]["pid"] == a.pid
        a.send_signal(signal.SIGKILL)
        time.sleep(0.2)  # not waited for: a zombie, whose memory the driver already freed
        devs = m.dump()["devices"]
        assert devs[0]["memory_used"] == 0 and devs[0]["processes"] == []
        assert devs[1]["memory_used"] == 256 << 20
        a.wait(timeout=30)
        a2 = _wait_for_holder(m, 128)  # a live process's memory stays charged
        a2.send_signal(signal.SIGKILL)
        time.sleep(0.2)
        # NVML alone (no dump first) sees the killed process's memory as free
        procs = run_pynvml(m, """
pynvml.nvmlInit()
hs = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(2)]
result = {"used": [pynvml.nvmlDeviceGetMemoryInfo(h).used for h in hs],
          "p": [[p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h)] for h in hs]}
""")
        assert procs["used"] == [0, 256 << 20]
        assert procs["p"] == [[], [b.pid]]
        _finish(a2)
    finally:
        _finish(a)
        _finish(b)
    assert [d["memory_used"] for d in m.dump()["devices"]] == [0, 0]


def test_lock_held_by_a_killed_process_is_recovered(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine()
    holder = m.popen([str(m.build.ctl), "hold-lock", "60", "--state", str(m.state)])
    try:
        assert _first_line(holder).strip() == "locked"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        _finish(holder)
    out = m.run([str(m.build.program("test-drv-api")), "basic"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert m.device(0)["memory_used"] == 0


def test_threads_of_one_process(fake_machine: FakeMachineFactory) -> None:
    m = fake_machine()
    out = m.run([str(m.build.program("test-drv-api")), "threads", "8", "50"])
    assert out.returncode == 0 and "PASS threads" in out.stdout, out.stdout + out.stderr
    dev = m.device(0)
    # 8 threads x 50 rounds x 2 kernels of 100 us, all serialized on the device
    assert dev["launches"] == 800 and dev["busy_total_ns"] == 800 * 100_000
    assert dev["memory_used"] == 0 and dev["allocs"] == dev["frees"] == 400
