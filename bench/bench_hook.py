"""Benchmarks of the hook (libvgpu.so) on the simulated GPU. `python3 bench/run.py hook`.

1. Added cost per intercepted call (cuMemGetInfo, cuMemAlloc+cuMemFree, cuLaunchKernel not
   throttled): nanoseconds (best of several runs) and instructions (callgrind, counted in the
   calling thread only), hooked minus direct.
2. Compute-share accuracy: one job at 10/30/50/70/90 % against co-tenants that share the
   rest, 2, 3 and 5 jobs on the GPU, 50 us and 5 ms kernels, every job saturating the GPU;
   the share each job achieved in its first 2 s, from the simulated GPU's own timeline.
3. Memory under contention: 8 processes x 10,000 random alloc/free under a 1 GiB cap; the
   simulated GPU's memory in use is polled throughout, the maximum must stay <= the cap.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slurm_vgpu.native import GpuLimit, JobLimits, SharePolicy, read_usage, write_limits_file

REPO = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("VGPU_BUILD", REPO / "build"))
HOOK = BUILD / "native" / "libvgpu.so"
FAKE = BUILD / "fakegpu"
TESTS = BUILD / "native" / "tests"
GIB = 1 << 30

TARGETS = (10, 30, 50, 70, 90)
TENANTS = (2, 3, 5)
KERNELS_NS = (50_000, 5_000_000)
WINDOW_S = 2.0


class Machine:
    """A simulated GPU in a temp dir, and per-job files beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "fakegpu.state"
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "LD_LIBRARY_PATH": str(FAKE), "FAKEGPU_STATE": str(self.state)}
        subprocess.run([str(FAKE / "fakegpu-ctl"), "create", "--state", str(self.state)],
                       env=self.env, check=True, capture_output=True, timeout=30)
        self.uuid = str(self.dump()["devices"][0]["uuid"])
        self.jobs = 0

    def dump(self, t0: int | None = None, t1: int | None = None) -> dict[str, Any]:
        args = [str(FAKE / "fakegpu-dump"), "--state", str(self.state)]
        if t0 is not None and t1 is not None:
            args += ["--from-ns", str(t0), "--to-ns", str(t1)]
        out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def job(self, memory: int = 16 * GIB, permille: int = 1000, uuid: str | None = None,
            policy: SharePolicy = SharePolicy.GUARANTEED) -> dict[str, str]:
        """Environment of a new job's processes (hook preloaded, limits and state). An empty
        uuid matches device ordinal 0 whatever the driver calls it."""
        self.jobs += 1
        d = self.root / f"job{self.jobs}"
        d.mkdir(mode=0o755)
        gpu = GpuLimit(uuid=self.uuid if uuid is None else uuid, physical_index=0,
                       slices=max(permille // 100, 1), memory_limit_bytes=memory,
                       compute_guaranteed_permille=permille, compute_limit_permille=permille)
        write_limits_file(d / "limits", JobLimits(job_id=self.jobs, uid=os.getuid(),
                                                  gpus=(gpu,), share_policy=policy))
        (d / "state").touch(mode=0o600)
        return {**self.env, "LD_PRELOAD": str(HOOK), "VGPU_LIMITS": str(d / "limits"),
                "VGPU_STATE": str(d / "state")}


@contextmanager
def machine() -> Iterator[Machine]:
    root = Path(tempfile.mkdtemp(prefix="vgpu-bench-"))
    os.chmod(root, 0o755)
    try:
        yield Machine(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- 1. cost per call

def _ns_per_call(envs: Sequence[dict[str, str]], call: str, n: int,
                 rounds: int = 7) -> list[float]:
    """Best ns per call for each environment, runs interleaved so drift hits all alike."""
    best = [float("inf")] * len(envs)
    for _ in range(rounds):
        for i, env in enumerate(envs):
            out = subprocess.run([str(TESTS / "bench_calls"), call, str(n)], env=env,
                                 capture_output=True, text=True, check=True, timeout=120)
            best[i] = min(best[i], float(re.findall(r"ns_per_call=([\d.]+)", out.stdout)[0]))
    return best


def _instructions(env: dict[str, str], call: str, n: int, root: Path) -> float | None:
    """Instructions per call in the calling thread: callgrind at n and 2n calls, differenced."""
    if not shutil.which("valgrind"):
        return None
    totals = []
    for count in (n, 2 * n):
        out_file = root / f"cg.{call}.{count}.{abs(hash(tuple(sorted(env.items()))))}"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                        "--toggle-collect=main", str(TESTS / "bench_calls"), call, str(count)],
                       env=env, capture_output=True, check=True, timeout=600)
        summary = [line for line in out_file.read_text().splitlines()
                   if line.startswith("summary:") or line.startswith("totals:")]
        totals.append(int(summary[0].split()[1]))
    return (totals[1] - totals[0]) / n


def _costs(direct: dict[str, str], hooked: dict[str, str], passthrough: dict[str, str],
           root: Path) -> dict[str, object]:
    results: dict[str, object] = {}
    for call, n in (("meminfo", 200_000), ("allocfree", 20_000), ("launch", 200_000)):
        d_ns, h_ns, p_ns = _ns_per_call((direct, hooked, passthrough), call, n)
        d_ir = _instructions(direct, call, 2000, root)
        h_ir = _instructions(hooked, call, 2000, root)
        results[call] = {
            "direct_ns": round(d_ns, 1),
            "hooked_ns": round(h_ns, 1),
            "added_ns": round(h_ns - d_ns, 1),
            "not_a_vgpu_job_added_ns": round(p_ns - d_ns, 1),
            "direct_instructions": None if d_ir is None else round(d_ir, 1),
            "hooked_instructions": None if h_ir is None else round(h_ir, 1),
            "added_instructions": None if d_ir is None or h_ir is None
            else round(h_ir - d_ir, 1),
        }
    return results


def call_costs() -> dict[str, object]:
    """Against the simulated GPU (a realistic driver cost) and against a driver that returns
    at once (the hook's own cost, free of the driver's noise: the goal is judged there)."""
    fast = {"FAKEGPU_KERNEL_NS": "1"}  # 1 ns kernels: launches never wait for the device
    null_driver = {"LD_LIBRARY_PATH": f"{TESTS / 'nullcuda'}:{FAKE}"}
    results: dict[str, object] = {}
    with machine() as m:
        # Enforced jobs at 100 % compute (the launch gate stays open); the null driver's
        # device has no UUID of the simulated machine, so its job names ordinal 0.
        jobs = {"simulated_gpu": m.job(), "null_driver": m.job(uuid="")}
        for name, driver in (("simulated_gpu", fast), ("null_driver", {**fast, **null_driver})):
            direct = {**m.env, **driver}
            hooked = {**jobs[name], **driver}
            passthrough = {**direct, "LD_PRELOAD": str(HOOK)}  # preloaded, not a vgpu job
            results[name] = _costs(direct, hooked, passthrough, m.root)
    launch = results["null_driver"]
    assert isinstance(launch, dict)
    cost = launch["launch"]
    results["launch_goal"] = "<= 50 instructions and <= 20 ns added (null driver)"
    results["launch_goal_met"] = (cost["added_instructions"] is not None
                                  and cost["added_instructions"] <= 50
                                  and cost["added_ns"] <= 20)
    return results


# ---------------------------------------------------------------- 2. compute shares

def _share_run(target: int, jobs: int, kernel_ns: int,
               window_s: float = WINDOW_S) -> dict[str, object]:
    """The tested job at `target` %, jobs-1 co-tenants splitting the rest; shares achieved
    in the first `window_s` seconds."""
    others = (100 - target) / (jobs - 1)
    limits = [target * 10] + [round(others * 10)] * (jobs - 1)
    batch = str(max(1, 1_000_000 // kernel_ns))  # ~1 ms of kernels per synchronization
    run_ms = str(int(window_s * 1000) + 400)
    with machine() as m:
        envs = [{**m.job(permille=p), "FAKEGPU_KERNEL_NS": str(kernel_ns), "PROBE_BATCH": batch,
                 "PROBE_PIPELINE": "1"} for p in limits]
        t0 = time.monotonic_ns()
        procs = [subprocess.Popen([str(TESTS / "vgpu_probe"), "busy", run_ms], env=e,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for e in envs]
        t1 = t0 + int(window_s * 1e9)
        time.sleep(max(0.0, (t1 - time.monotonic_ns()) / 1e9) + 0.02)
        dev = m.dump(t0, t1)["devices"][0]
        for p in procs:
            p.wait(timeout=60)
    busy = {int(p["pid"]): int(p["busy_window_ns"]) for p in dev["processes"]}
    shares = [100.0 * busy.get(p.pid, 0) / (t1 - t0) for p in procs]
    return {
        "target": target,
        "jobs": jobs,
        "kernel_us": kernel_ns // 1000,
        "window_s": window_s,
        "achieved": round(shares[0], 1),
        "error_pp": round(shares[0] - target, 1),
        "cotenant_target": round(others, 1),
        "cotenants_achieved": [round(s, 1) for s in shares[1:]],
        "cotenant_max_error_pp": round(max(abs(s - others) for s in shares[1:]), 1),
        "gpu_utilization": round(sum(shares), 1),
    }


def share_accuracy(budget_s: float = 150.0) -> dict[str, object]:
    started = time.monotonic()
    rows: list[dict[str, object]] = []
    skipped = 0
    for kernel_ns in KERNELS_NS:
        for jobs in TENANTS:
            for target in TARGETS:
                if time.monotonic() - started > budget_s:
                    skipped += 1
                    continue
                rows.append(_share_run(target, jobs, kernel_ns))
    errors = [abs(float(str(r["error_pp"]))) for r in rows]
    # The edges of the range the hook is meant for: 10 jobs, 10 us and 100 ms kernels (a
    # 100 ms kernel is 5 % of a 2 s window: those get a 6 s window).
    extremes = [_share_run(10, 10, 10_000), _share_run(50, 10, 10_000),
                _share_run(30, 2, 100_000_000, 6.0), _share_run(10, 10, 100_000_000, 6.0)]
    return {
        "window_s": WINDOW_S,
        "runs": rows,
        "extremes": extremes,
        "runs_skipped_for_time": skipped,
        "max_abs_error_pp": max(errors) if errors else None,
        "mean_abs_error_pp": round(statistics.mean(errors), 2) if errors else None,
        "within_3pp": sum(e <= 3.0 for e in errors),
        "of": len(errors),
    }


def work_conservation() -> dict[str, object]:
    """A 30 % burst job alone, then against a saturating 70 % guaranteed job: shares per
    second of a 3 s run (5 ms kernels)."""
    results: dict[str, object] = {}
    for name, others in (("burst_alone", []), ("burst_vs_guaranteed_70", [700])):
        with machine() as m:
            envs = [m.job(permille=300, policy=SharePolicy.BURST)] + [m.job(permille=p)
                                                                     for p in others]
            extra = {"FAKEGPU_KERNEL_NS": "5000000", "PROBE_PIPELINE": "1"}
            t0 = time.monotonic_ns()
            procs = [subprocess.Popen([str(TESTS / "vgpu_probe"), "busy", "3400"],
                                      env={**e, **extra}, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for e in envs]
            time.sleep(3.05)
            seconds = []
            for s in range(3):
                dev = m.dump(t0 + s * 10**9, t0 + (s + 1) * 10**9)["devices"][0]
                busy = {int(p["pid"]): int(p["busy_window_ns"]) for p in dev["processes"]}
                seconds.append([round(busy.get(p.pid, 0) / 1e7, 1) for p in procs])
            for p in procs:
                p.wait(timeout=60)
        results[name] = {"shares_per_second": seconds,
                         "jobs": ["burst 30 %"] + [f"guaranteed {p // 10} %" for p in others]}
    return results


# ---------------------------------------------------------------- 3. memory contention

def memory_contention(procs_n: int = 8, steps: int = 10_000) -> dict[str, object]:
    cap = GIB
    with machine() as m:
        env = m.job(memory=cap)
        procs = [subprocess.Popen([str(TESTS / "vgpu_probe"), "churn", str(steps), "128M"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
                 for _ in range(procs_n)]
        seen: list[int] = []
        started = time.monotonic()
        while any(p.poll() is None for p in procs):
            seen.append(int(m.dump()["devices"][0]["memory_used"]))
        elapsed = time.monotonic() - started
        outs = [p.communicate()[0] for p in procs]
        usage = read_usage(Path(env["VGPU_STATE"]), 1).gpus[0]
    totals = {k: sum(int(x) for x in re.findall(rf"{k}=(\d+)", "".join(outs)))
              for k in ("allocs", "ooms", "frees")}
    return {
        "processes": procs_n,
        "steps_each": steps,
        "cap_bytes": cap,
        "ground_truth_polls": len(seen),
        "ground_truth_max_used_bytes": max(seen) if seen else 0,
        "never_exceeded": all(s <= cap for s in seen),
        "hook_peak_bytes": usage.peak_bytes,
        "hook_used_after": usage.used_bytes,
        "seconds": round(elapsed, 1),
        **totals,
    }


def run() -> dict[str, object]:
    for needed in (HOOK, FAKE / "libcuda.so.1", TESTS / "vgpu_probe", TESTS / "bench_calls"):
        if not needed.exists():
            raise RuntimeError(f"{needed} is missing: run make first")
    return {
        "call_costs": call_costs(),
        "memory_contention": memory_contention(),
        "compute_shares": share_accuracy(),
        "work_conservation": work_conservation(),
    }


def _table(rows: Sequence[dict[str, object]]) -> str:
    """The README's table: achieved share per target, jobs and kernel length."""
    lines = ["| kernel | jobs | " + " | ".join(f"{t} %" for t in TARGETS) + " |",
             "|---|---|" + "---|" * len(TARGETS)]
    for kernel_ns in KERNELS_NS:
        for jobs in TENANTS:
            cells = []
            for t in TARGETS:
                hit = [r for r in rows if r["target"] == t and r["jobs"] == jobs
                       and r["kernel_us"] == kernel_ns // 1000]
                cells.append(str(hit[0]["achieved"]) if hit else "-")
            lines.append(f"| {kernel_ns // 1000} us | {jobs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    result = run()
    print(json.dumps(result, indent=2))
    shares = result["compute_shares"]
    assert isinstance(shares, dict)
    print(_table(shares["runs"]))
