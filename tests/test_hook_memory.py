"""The hook's memory caps, on the simulated GPU, through every lookup path and allocation
path; multi-process races, kill -9, fork and live changes."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import replace

import pytest
from hook_fixtures import GIB, MIB, HookEnv, proceed, wait_for_line

from slurm_vgpu.native import read_limits_file, reclaim_dead, update_limits, write_limits_file

pytestmark = pytest.mark.native

PATHS = [
    ("linked", {}),
    ("dlsym", {}),
    ("gpa", {}),
    ("gpa", {"PROBE_PTSZ": "1"}),
    ("gpa", {"PROBE_CUDA_VERSION": "12000"}),
]
PATH_IDS = ["linked", "dlsym", "gpa13", "gpa13-ptsz", "gpa12"]


@pytest.mark.parametrize(("path", "extra"), PATHS, ids=PATH_IDS)
def test_cap_enforced_and_reported_on_every_lookup_path(
    hook_env: HookEnv, path: str, extra: dict[str, str]
) -> None:
    job = hook_env.job(memory=GIB)
    run = hook_env.run(job, ["info", "total", "alloc", "512M", "info", "alloc", "600M",
                             "alloc", "500M", "free", "info"], path=path, extra=extra)
    assert run.returncode == 0, run.stderr
    assert run.get("info")["total"] == str(GIB)
    assert run.get("info")["free"] == str(GIB)
    assert run.get("total")["total"] == str(GIB)
    assert run.get("info", 1)["free"] == str(GIB - 512 * MIB)
    assert run.rc("alloc", 1) == 2  # CUDA_ERROR_OUT_OF_MEMORY: 512M + 600M > 1G
    assert run.rc("alloc", 2) == 0
    assert run.get("info", 2)["free"] == str(GIB - 512 * MIB)
    assert run.vgpu_lines() == []


def test_over_cap_allocation_never_reaches_the_driver(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    run = hook_env.run(job, ["alloc", "768M", "alloc", "768M", "sleep", "0"])
    assert run.rc("alloc", 1) == 2
    dev = hook_env.device()
    assert dev["allocs"] == 1  # the refused one was never passed to the driver


@pytest.mark.parametrize(
    ("alloc", "free", "charged"),
    [
        (["alloc", "100M"], "free", 100 * MIB),
        (["managed", "100M"], "free", 100 * MIB),
        (["async", "100M"], "freeasync", 100 * MIB),
        (["pool", "100M"], "free", 100 * MIB),
        (["pitch", "1000", "1000"], "free", 2 * MIB),  # 1024-byte pitch x 1000 rows
        (["vmm", "64M"], "vmmfree", 64 * MIB),
        (["array", "1024", "1024"], "arrayfree", 16 * MIB),  # float4 elements
        (["array3d", "256", "256", "16"], "arrayfree", 16 * MIB),
    ],
    ids=["alloc", "managed", "async", "pool", "pitch", "vmm", "array", "array3d"],
)
def test_every_allocation_path_is_charged_and_every_free_returns(
    hook_env: HookEnv, alloc: list[str], free: str, charged: int
) -> None:
    job = hook_env.job(memory=GIB)
    run = hook_env.run(job, [*alloc, "info", free, "info"])
    assert run.rc(alloc[0]) == 0, run.stdout + run.stderr
    assert run.get("info")["free"] == str(GIB - charged)
    assert run.rc(free) == 0
    assert run.get("info", 1)["free"] == str(GIB)


@pytest.mark.parametrize("kind", [["managed", "2G"], ["async", "2G"], ["pool", "2G"],
                                  ["vmm", "2G"], ["pitch", "65536", "32768"],
                                  ["array", "32768", "16384"]],
                         ids=["managed", "async", "pool", "vmm", "pitch", "array"])
def test_every_allocation_path_is_capped(hook_env: HookEnv, kind: list[str]) -> None:
    job = hook_env.job(memory=GIB)
    run = hook_env.run(job, kind)
    assert run.rc(kind[0]) == 2
    assert hook_env.device()["memory_used"] == 0


def test_nvml_memory_info_v1_and_v2_report_the_slice(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=3 * GIB)
    code = (
        "import ctypes, pynvml\n"
        "pynvml.nvmlInit()\n"
        "h = pynvml.nvmlDeviceGetHandleByIndex(0)\n"
        "m1 = pynvml.nvmlDeviceGetMemoryInfo(h)\n"
        "m2 = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)\n"
        "print(m1.total, m1.used, m1.free, m2.total, m2.used, m2.free)\n"
    )
    env = hook_env.env(job)
    out = subprocess.run(["python3", "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    t1, u1, f1, t2, u2, f2 = map(int, out.stdout.split())
    assert (t1, u1, f1) == (3 * GIB, 0, 3 * GIB)
    assert (t2, u2, f2) == (3 * GIB, 0, 3 * GIB)


def test_not_a_vgpu_job_passes_through(hook_env: HookEnv) -> None:
    run = hook_env.run(None, ["info", "alloc", "4G", "info"])
    assert run.get("info")["total"] == str(16 * GIB)
    assert run.rc("alloc") == 0
    assert run.vgpu_lines() == []


def test_concurrent_processes_never_exceed_the_cap_together(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    procs = [hook_env.start(job, ["alloc", "128M"] * 4 + ["hold"]) for _ in range(6)]
    granted = 0
    try:
        for p in procs:  # all hold what they got until every one has tried
            assert p.stdout is not None
            for line in p.stdout:
                granted += line.startswith("alloc rc=0")
                if line.startswith("hold ready"):
                    break
    finally:
        for p in procs:
            p.kill()
            p.communicate(timeout=10)
    assert granted == 8  # exactly 1 GiB / 128 MiB, whatever the interleaving


def _held_by(env: HookEnv, procs: list[subprocess.Popen[str]]) -> int:
    """What the simulated GPU's ground truth says these processes hold in total."""
    pids = {p.pid for p in procs}
    return sum(int(p["memory_used"]) for p in env.device()["processes"] if p["pid"] in pids)


def test_contexts_are_charged_inside_the_cap(hook_env_real_contexts: HookEnv) -> None:
    """Four processes of one job, each with a context that costs 512 MiB on the device (as on
    a real GPU), filling a 3 GiB cap: together they never hold more than the cap, and
    cuMemGetInfo reports the cap minus all of it."""
    env = hook_env_real_contexts
    job = env.job(memory=3 * GIB)
    procs = [env.start(job, ["info", "wait", "fill", "64M", "info", "hold"]) for _ in range(4)]
    try:
        first = [wait_for_line(p, "info") for p in procs]  # every context made
        for p in procs:
            proceed(p)
        for p in procs:
            wait_for_line(p, "hold ready")
        held = _held_by(env, procs)
        usage = job.usage().gpus[0]
    finally:
        for p in procs:
            p.kill()
            p.communicate(timeout=10)
    # each process saw the cap minus the contexts made before its own was measured
    assert all(int(line.split("free=")[1].split()[0]) <= 3 * GIB - 512 * MIB for line in first)
    assert held <= 3 * GIB
    assert held >= 3 * GIB - 4 * 64 * MIB  # the cap was used, not left idle
    assert usage.used_bytes <= 3 * GIB


def test_a_context_that_does_not_fit_fails_cleanly(hook_env_real_contexts: HookEnv) -> None:
    """A job whose cap is full: a new process's context is refused with out-of-memory (as a
    full GPU answers) instead of taking the job over its cap."""
    env = hook_env_real_contexts
    job = env.job(memory=2 * GIB)
    filler = env.start(job, ["fill", "64M", "hold"])
    try:
        wait_for_line(filler, "hold ready")
        late = env.run(job, ["info"])
        held = _held_by(env, [filler])
    finally:
        filler.kill()
        filler.communicate(timeout=10)
    assert late.rc("setup") == 2  # CUDA_ERROR_OUT_OF_MEMORY
    assert held <= 2 * GIB
    assert env.device()["memory_used"] <= 2 * GIB


def test_memory_kept_in_a_pool_stays_inside_the_cap(hook_env: HookEnv) -> None:
    """A process keeps 2.5 GiB in its default pool after cuMemFreeAsync (release threshold
    raised); a second process of the job gets only the rest of the 3 GiB cap."""
    job = hook_env.job(memory=3 * GIB)
    keeper = hook_env.start(job, ["keep", "4G", "async", "2560M", "freeasync", "sync", "info",
                                  "hold"])
    try:
        info = wait_for_line(keeper, "info")
        wait_for_line(keeper, "hold ready")
        taker = hook_env.start(job, ["fill", "64M", "info", "hold"])
        try:
            got = wait_for_line(taker, "fill")
            wait_for_line(taker, "hold ready")
            held = _held_by(hook_env, [keeper, taker])
        finally:
            taker.kill()
            taker.communicate(timeout=10)
    finally:
        keeper.kill()
        keeper.communicate(timeout=10)
    assert f"free={3 * GIB - 2560 * MIB}" in info  # cuMemGetInfo: the cap minus the pool's
    assert int(got.split("bytes=")[1]) <= 512 * MIB
    assert 2560 * MIB <= held <= 3 * GIB


def test_kill9_usage_is_reclaimed_by_the_rest_of_the_job(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    survivor = hook_env.start(job, ["alloc", "100M", "hold"])
    victim = hook_env.start(job, ["alloc", "700M", "hold"])
    try:
        wait_for_line(survivor, "hold ready")
        wait_for_line(victim, "hold ready")
        assert job.usage().gpus[0].used_bytes == 800 * MIB
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        time.sleep(1.0)  # the contract: reclaimed within 1 s by the job's other processes
        assert job.usage().gpus[0].used_bytes == 100 * MIB
    finally:
        for p in (survivor, victim):
            p.kill()
            p.communicate(timeout=10)


def test_kill9_of_the_last_process_is_reclaimed_by_the_daemon_binding(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    victim = hook_env.start(job, ["alloc", "300M", "hold"])
    wait_for_line(victim, "hold ready")
    victim.kill()
    victim.communicate(timeout=10)
    assert job.usage().gpus[0].used_bytes == 300 * MIB
    assert reclaim_dead(job.state) == [victim.pid]
    assert job.usage().gpus[0].used_bytes == 0
    assert job.usage().processes == ()


def test_a_new_process_reclaims_what_dead_ones_held(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    first = hook_env.run(job, ["alloc", "900M"])  # exits without freeing
    assert first.rc("alloc") == 0
    second = hook_env.run(job, ["info", "alloc", "900M"])
    assert second.get("info")["free"] == str(GIB)
    assert second.rc("alloc") == 0


def test_fork_child_is_accounted_in_the_same_job(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    run = hook_env.run(job, ["alloc", "256M", "fork", "alloc", "256M", "info", "alloc", "600M"])
    assert run.rc("forkchild") == 0
    assert run.get("info")["free"] == str(GIB - 512 * MIB)  # parent's and child's
    assert run.rc("alloc", 2) == 2
    assert run.get("fork")["child_exit"] == "0"


def test_lowering_the_cap_live_blocks_allocations_until_usage_falls(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    proc = hook_env.start(job, ["alloc", "512M", "wait", "info", "alloc", "2M", "free",
                                "alloc", "2M", "wait", "alloc", "600M"])
    try:
        wait_for_line(proc, "wait ready")
        update_limits(job.limits, 0, memory_limit_bytes=256 * MIB)
        proceed(proc)
        info = wait_for_line(proc, "info")
        assert f"total={256 * MIB}" in info and "free=0" in info
        assert "rc=2" in wait_for_line(proc, "alloc")  # 512M held > 256M cap
        wait_for_line(proc, "free")
        assert "rc=0" in wait_for_line(proc, "alloc")  # usage fell below the new cap
        wait_for_line(proc, "wait ready")
        update_limits(job.limits, 0, memory_limit_bytes=2 * GIB)
        proceed(proc)
        assert "rc=0" in wait_for_line(proc, "alloc")  # raised live
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert read_limits_file(job.limits).generation == 4


def test_environment_cannot_point_the_state_elsewhere(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    private = hook_env.root / "private-state"
    private.touch(mode=0o600)
    run = hook_env.run(job, ["alloc", "100M"], extra={"VGPU_STATE": str(private)})
    assert run.rc("alloc") == 2
    assert len(run.vgpu_lines()) == 1
    assert "must be in the limits file's directory" in run.vgpu_lines()[0]


def test_a_gpu_the_job_holds_no_slice_of_is_refused(hook_env_2gpu: HookEnv) -> None:
    job = hook_env_2gpu.job(memory=GIB, devices=(1,))
    # The probe uses ordinal 0: a GPU of the node, but not the job's.
    run = hook_env_2gpu.run(job, ["info", "alloc", "1M"])
    assert run.get("info")["total"] == "0"
    assert run.rc("alloc") == 2


def test_a_replaced_limits_file_is_picked_up(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    proc = hook_env.start(job, ["alloc", "512M", "wait", "info"])
    try:
        wait_for_line(proc, "wait ready")
        old = read_limits_file(job.limits)
        bigger = replace(old, gpus=(replace(old.gpus[0], memory_limit_bytes=2 * GIB),))
        write_limits_file(job.limits, bigger)  # a new inode, not an in-place update
        time.sleep(0.3)  # the hook looks for a replaced file every 100 ms
        proceed(proc)
        info = wait_for_line(proc, "info")
        assert f"total={2 * GIB}" in info
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_accounting_stays_exact_when_processes_die_mid_churn(hook_env: HookEnv) -> None:
    job = hook_env.job(memory=GIB)
    procs = [hook_env.start(job, ["churn", "200000", "64M"]) for _ in range(6)]
    time.sleep(0.5)
    for p in procs[:3]:  # killed wherever they are, maybe inside the critical section
        p.send_signal(signal.SIGKILL)
    peak_truth = 0
    while any(p.poll() is None for p in procs[3:]):
        peak_truth = max(peak_truth, int(str(hook_env.device()["memory_used"])))
    for p in procs:
        p.communicate(timeout=120)
    assert peak_truth <= GIB
    reclaim_dead(job.state)
    usage = job.usage()
    assert usage.gpus[0].used_bytes == 0  # every byte of the dead and the living returned
    assert usage.processes == ()
