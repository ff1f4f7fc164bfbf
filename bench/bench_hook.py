"""Benchmarks of the hook (libvgpu.so) on the simulated GPU. `python3 bench/run.py hook`.

1. Added cost per intercepted call (cuMemGetInfo, cuMemAlloc+cuMemFree, cuLaunchKernel not
   throttled): nanoseconds (best of several runs) and instructions (callgrind, counted in the
   calling thread only), hooked minus direct.
2. Compute-share accuracy on the simulated GPU's realistic scheduler and sensors: issue 14's
   cases (20 us to 10 ms kernels, graphs, cooperative launches, 2 to 5 jobs, one job alone,
   launch-bound jobs); shares over 2 s after 1 s of warm-up, from the simulated GPU's own
   timeline (share of the work done when contended, of wall time alone).
3. Memory under contention: 8 processes x 10,000 random alloc/free under a 5 GiB cap (their
   8 contexts of 512 MiB, charged to the job, + 1 GiB); the simulated GPU's memory in use is
   polled throughout, the maximum must stay <= the cap.
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

from slurm_vgpu.native import (
    GpuLimit,
    JobLimits,
    SharePolicy,
    read_usage,
    reclaim_dead,
    write_limits_file,
)

REPO = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("VGPU_BUILD", REPO / "build"))
HOOK = BUILD / "native" / "libvgpu.so"
FAKE = BUILD / "fakegpu"
TESTS = BUILD / "native" / "tests"
GIB = 1 << 30

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
#
# The simulated GPU runs with its realistic defaults (time-slicing in 4.5 ms runs, 0.5 ms per
# preemptive switch, NVML samples every 200 ms: docs/fakegpu.md). A contended job is judged
# by its share of the work the device did for the jobs (time-slicing loses some device time
# to switches), a job alone by its share of wall time (its solo throughput), as issue 14 asks.

def _job_spec(permille: int, kernel_ns: int, kind: str = "launch", saturating: bool = True,
              nodes: int = 1) -> dict[str, object]:
    return {"permille": permille, "kernel_ns": kernel_ns, "kind": kind,
            "saturating": saturating, "nodes": nodes}


def _describe(sp: dict[str, object]) -> str:
    nodes = f"x{sp['nodes']}" if sp["nodes"] != 1 else ""
    bound = "" if sp["saturating"] else " launch-bound"
    return f"{sp['permille']} {sp['kind']}{nodes} {int(str(sp['kernel_ns'])) // 1000} us{bound}"


def _share_case(name: str, specs: Sequence[dict[str, object]], window_s: float = WINDOW_S,
                warmup_s: float = 1.0) -> dict[str, object]:
    """Run one busy loop per job (saturating: ~1 ms of kernels queued at a time, as frameworks
    keep; else launch-bound: synchronize after every launch) and measure [warmup, warmup +
    window) on the simulated GPU's own timeline."""
    run_ms = str(int((warmup_s + window_s) * 1000) + 400)
    with machine() as m:
        procs = []
        t0 = time.monotonic_ns()
        for spec in specs:
            kernel_ns = int(str(spec["kernel_ns"]))
            per_launch = kernel_ns * int(str(spec["nodes"]))
            env = {**m.job(permille=int(str(spec["permille"]))),
                   "FAKEGPU_KERNEL_NS": str(kernel_ns),
                   "PROBE_GRAPH_NODES": str(spec["nodes"])}
            if spec["saturating"]:
                env |= {"PROBE_BATCH": str(max(1, 1_000_000 // per_launch)),
                        "PROBE_PIPELINE": "1"}
            procs.append(subprocess.Popen(
                [str(TESTS / "vgpu_probe"), "busyk", str(spec["kind"]), run_ms], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        t1 = t0 + int(warmup_s * 1e9)
        t2 = t1 + int(window_s * 1e9)
        time.sleep(max(0.0, (t2 - time.monotonic_ns()) / 1e9) + 0.02)
        dev = m.dump(t1, t2)["devices"][0]
        for p in procs:
            p.wait(timeout=60)
    busy = {int(p["pid"]): int(p["busy_window_ns"]) for p in dev["processes"]}
    got = [busy.get(p.pid, 0) for p in procs]
    total = sum(got) or 1
    targets = [int(str(sp["permille"])) / 10 for sp in specs]
    # alone, or no job saturating (none is held: each gets what it can use, up to its share):
    # judged by the share of wall time
    alone = len(specs) == 1 or not any(sp["saturating"] for sp in specs)
    achieved = [100.0 * g / (t2 - t1) if alone else 100.0 * g / total for g in got]
    if alone:
        # a job that cannot use its share (launch-bound) is not held below what it uses
        targets = [min(t, a) if not sp["saturating"] else t
                   for t, a, sp in zip(targets, achieved, specs, strict=True)]
    else:
        # targets of the work done: each job's share of the shares present
        targets = [100.0 * t / sum(targets) for t in targets]
    errors = [a - t for a, t in zip(achieved, targets, strict=True)]
    return {
        "case": name,
        "jobs": [_describe(sp) for sp in specs],
        "measure": "share of wall time" if alone else "share of the work done",
        "targets": [round(t, 1) for t in targets],
        "achieved": [round(a, 1) for a in achieved],
        "device_busy_pct": round(100.0 * sum(got) / (t2 - t1), 1),
        "max_abs_error_pp": round(max(abs(e) for e in errors), 1),
    }


def share_cases() -> list[tuple[str, list[dict[str, object]]]]:
    """Issue 14's cases: kernels of 20 us to 10 ms, graphs, cooperative launches, 2 to 5
    jobs, one job alone, launch-bound jobs."""
    cases: list[tuple[str, list[dict[str, object]]]] = []
    for k in (20_000, 200_000, 2_000_000, 10_000_000):
        cases.append((f"700+300, {k // 1000} us", [_job_spec(700, k), _job_spec(300, k)]))
    cases.append(("500+500, 2 ms", [_job_spec(500, 2_000_000), _job_spec(500, 2_000_000)]))
    for k in (200_000, 2_000_000):
        cases.append((f"300 alone, {k // 1000} us", [_job_spec(300, k)]))
    cases.append(("700 plain + 300 graphs of 4, 200 us",
                  [_job_spec(700, 200_000), _job_spec(300, 200_000, "graph", nodes=4)]))
    cases.append(("700 plain + 300 graphs of 4, 2 ms",
                  [_job_spec(700, 2_000_000), _job_spec(300, 2_000_000, "graph", nodes=4)]))
    cases.append(("700 graphs + 300 graphs, 200 us",
                  [_job_spec(700, 200_000, "graph", nodes=4),
                   _job_spec(300, 200_000, "graph", nodes=4)]))
    cases.append(("700 plain + 300 cooperative, 200 us",
                  [_job_spec(700, 200_000), _job_spec(300, 200_000, "coop")]))
    cases.append(("3 jobs 500+300+200, 200 us",
                  [_job_spec(500, 200_000), _job_spec(300, 200_000), _job_spec(200, 200_000)]))
    cases.append(("5 jobs 400+150x4, 2 ms",
                  [_job_spec(400, 2_000_000)] + [_job_spec(150, 2_000_000)] * 4))
    cases.append(("5 jobs 200 each, 20 us", [_job_spec(200, 20_000)] * 5))
    cases.append(("300 launch-bound next to 700 saturating, 20 us",
                  [_job_spec(700, 20_000), _job_spec(300, 20_000, saturating=False)]))
    cases.append(("300 launch-bound alone, 20 us", [_job_spec(300, 20_000, saturating=False)]))
    cases.append(("both launch-bound 700+300, 20 us",
                  [_job_spec(700, 20_000, saturating=False),
                   _job_spec(300, 20_000, saturating=False)]))
    return cases


def share_accuracy(budget_s: float = 240.0) -> dict[str, object]:
    started = time.monotonic()
    rows: list[dict[str, object]] = []
    skipped = []
    for name, specs in share_cases():
        if time.monotonic() - started > budget_s:
            skipped.append(name)
            continue
        rows.append(_share_case(name, specs))
    errors = [float(str(r["max_abs_error_pp"])) for r in rows]
    return {
        "window_s": WINDOW_S,
        "simulated_gpu": "realistic defaults: 4.5 ms time slices, 0.5 ms switches, "
                         "NVML samples every 200 ms",
        "runs": rows,
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
    # the simulated GPU's contexts cost 512 MiB each, as an H200's do, and are charged to the
    # job: 8 of them plus 1 GiB to churn in
    cap = procs_n * 512 * (1 << 20) + GIB
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
        reclaim_dead(Path(env["VGPU_STATE"]))  # what the daemon does once they are gone
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
    """The README's table: each case's jobs, targets and achieved shares."""
    lines = ["| case | measure | target % | achieved % | max error (pp) |",
             "|---|---|---|---|---|"]
    for r in rows:
        t = " / ".join(str(x) for x in r["targets"])  # type: ignore[attr-defined]
        a = " / ".join(str(x) for x in r["achieved"])  # type: ignore[attr-defined]
        lines.append(f"| {r['case']} | {r['measure']} | {t} | {a} | {r['max_abs_error_pp']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    result = run()
    print(json.dumps(result, indent=2))
    shares = result["compute_shares"]
    assert isinstance(shares, dict)
    print(_table(shares["runs"]))
