"""The hook on a real GPU: caps, shares and overhead, in one run of a few minutes.

    make                                       # hook + probes (a CUDA toolkit's cuda.h, or
                                               # PyPI's nvidia-cuda-runtime, for the probes)
    sudo python3 bench/gpu/run.py              # -> bench/results/gpu-<gpu>.json
    python3 bench/gpu/run.py --simulated       # the same on the simulated GPU (no root GPU)

Runs on any machine with an NVIDIA GPU and driver, without Slurm: it writes job limits files
as the SPANK plugin does (root-owned, so run it as root) and runs, under the hook:

1. caps: raw CUDA (the driver-API probe), PyTorch (plain, expandable_segments,
   cudaMallocAsync), CuPy and JAX where installed, each under a 4 GiB cap: what it got, its
   own out-of-memory error, mem_get_info, and what NVML says the process held;
   four processes of one job under a 3 GiB cap (contexts included) and a process that keeps
   2.5 GiB in its pool next to a second one (NVML's total for the job's processes);
2. the share matrix of issue 14 (spin kernels of 20 us to 2 ms, CUDA graphs of 4 kernels,
   cooperative launches, 2 and 3 jobs, one job alone, a launch-bound job): each job's
   completed kernel time over the jobs' total (alone: over the wall time);
3. overhead: an empty-kernel launch loop and (where installed) a PyTorch tiny-op loop, with
   and without the hook, three interleaved runs each.

Nothing here needs the network. Every step has a timeout; a step that fails is recorded with
its error and the run goes on, so one run gives the whole table.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from slurm_vgpu.native import (  # noqa: E402
    GpuLimit,
    JobLimits,
    SharePolicy,
    write_limits_file,
)

BUILD = Path(os.environ.get("VGPU_BUILD", REPO / "build"))
HOOK = BUILD / "native" / "libvgpu.so"
PROBE = BUILD / "native" / "tests" / "vgpu_probe"
FW_PROBE = REPO / "tests" / "framework_probe.py"
FAKE = BUILD / "fakegpu"
GIB = 1 << 30
MIB = 1 << 20

# A kernel that spins on the GPU's nanosecond timer for NS ns (one block of 128 threads per
# slot of the grid the probe launches: two per SM). PTX, compiled by the driver.
SPIN_PTX = """
.version 7.0
.target sm_70
.address_size 64
.visible .entry spin()
{
  .reg .u64 %t0, %t1, %d;
  .reg .pred %p;
  mov.u64 %t0, %globaltimer;
LOOP:
  mov.u64 %t1, %globaltimer;
  sub.u64 %d, %t1, %t0;
  setp.lt.u64 %p, %d, NS;
  @%p bra LOOP;
  ret;
}
"""


class Gpu:
    """The GPU under test (NVML) and job files written as the SPANK plugin writes them."""

    def __init__(self, root: Path, simulated: bool) -> None:
        self.root = root
        self.simulated = simulated
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if simulated:
            state = root / "fakegpu.state"
            self.env |= {"LD_LIBRARY_PATH": str(FAKE), "FAKEGPU_STATE": str(state)}
            subprocess.run([str(FAKE / "fakegpu-ctl"), "create", "--state", str(state),
                            "--mem", "141G", "--sms", "132", "--name", "NVIDIA H200 (simulated)"],
                           check=True, capture_output=True, timeout=30)
            os.environ["FAKEGPU_STATE"] = str(state)  # for the NVML loaded in here
            nvml_path = str(FAKE / "libnvidia-ml.so.1")
        else:
            nvml_path = "libnvidia-ml.so.1"
        self.nvml = ctypes.CDLL(nvml_path)
        if self.nvml.nvmlInit_v2() != 0:
            raise RuntimeError("nvmlInit failed: no NVIDIA driver?")
        self.handle = ctypes.c_void_p()
        self.nvml.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(self.handle))
        buf = ctypes.create_string_buffer(96)
        self.nvml.nvmlDeviceGetUUID(self.handle, buf, 96)
        self.uuid = buf.value.decode()
        self.nvml.nvmlDeviceGetName(self.handle, buf, 96)
        self.name = buf.value.decode()
        self.nvml.nvmlSystemGetDriverVersion(buf, 96)
        self.driver = buf.value.decode()
        self.jobs = 0

    def job(self, memory: int = 16 * GIB, permille: int = 1000,
            policy: SharePolicy = SharePolicy.GUARANTEED) -> dict[str, str]:
        self.jobs += 1
        d = self.root / f"job{self.jobs}"
        d.mkdir(mode=0o755)
        gpu = GpuLimit(uuid=self.uuid, physical_index=0, slices=max(permille // 100, 1),
                       memory_limit_bytes=memory, compute_guaranteed_permille=permille,
                       compute_limit_permille=permille)
        write_limits_file(d / "limits", JobLimits(job_id=self.jobs, uid=os.getuid(),
                                                  gpus=(gpu,), share_policy=policy))
        (d / "state").touch(mode=0o600)
        return {**self.env, "LD_PRELOAD": str(HOOK), "VGPU_LIMITS": str(d / "limits"),
                "VGPU_STATE": str(d / "state")}

    def held(self, pids: set[int]) -> int:
        """What NVML says these processes hold on the GPU (bytes)."""

        class Info(ctypes.Structure):
            _fields_ = [("pid", ctypes.c_uint), ("used", ctypes.c_ulonglong),
                        ("gi", ctypes.c_uint), ("ci", ctypes.c_uint)]

        arr = (Info * 256)()
        n = ctypes.c_uint(256)
        if self.nvml.nvmlDeviceGetComputeRunningProcesses_v3(self.handle, ctypes.byref(n),
                                                              arr) != 0:
            return -1
        return sum(int(arr[i].used) for i in range(n.value) if arr[i].pid in pids)


def _lines(proc: subprocess.Popen[str], prefix: str, timeout: float = 120) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    return ""


def _kill(*procs: subprocess.Popen[str] | None) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
        if p is not None:
            p.communicate(timeout=30)


def _probe(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(PROBE), *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fields(line: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


# ---------------------------------------------------------------- 1. caps

def cap_raw(gpu: Gpu) -> dict[str, Any]:
    cap = 4 * GIB
    p = _probe(gpu.job(memory=cap), "info", "fill", "64M", "info", "hold")
    try:
        first, fill, after = _lines(p, "info"), _lines(p, "fill"), _lines(p, "info")
        _lines(p, "hold ready")
        held = gpu.held({p.pid})
    finally:
        _kill(p)
    return {"cap": cap, "mem_get_info_before": _fields(first), "got": int(_fields(fill)["bytes"]),
            "error_rc": int(_fields(fill)["rc"]), "mem_get_info_after": _fields(after),
            "nvml_held": held}


def cap_framework(gpu: Gpu, python: str, fw: str, extra: dict[str, str]) -> dict[str, Any]:
    cap = 4 * GIB
    p = subprocess.Popen([python, str(FW_PROBE), fw, "fill", "64", "3"],
                         env={**gpu.job(memory=cap), **extra}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = _lines(p, "{", timeout=300)
        held = gpu.held({p.pid})
    finally:
        _kill(p)
    if not line:
        return {"cap": cap, "failed": (p.stderr.read() if p.stderr else "")[-2000:]}
    return {"cap": cap, **json.loads(line), "nvml_held": held}


def job_total_4_processes(gpu: Gpu) -> dict[str, Any]:
    cap = 3 * GIB
    env = gpu.job(memory=cap)
    procs = [_probe(env, "info", "wait", "fill", "64M", "hold") for _ in range(4)]
    try:
        for p in procs:
            _lines(p, "info")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        got = [_fields(_lines(p, "fill")).get("bytes", "0") for p in procs]
        for p in procs:
            _lines(p, "hold ready", timeout=30)
        held = gpu.held({p.pid for p in procs})
    finally:
        _kill(*procs)
    return {"cap": cap, "allocated": [int(g) for g in got], "nvml_held_total": held,
            "within_cap": 0 <= held <= cap}


def job_total_pool(gpu: Gpu) -> dict[str, Any]:
    cap = 3 * GIB
    env = gpu.job(memory=cap)
    keeper = _probe(env, "keep", "4G", "async", "2560M", "freeasync", "sync", "info", "hold")
    taker = None
    try:
        info = _lines(keeper, "info")
        _lines(keeper, "hold ready")
        taker = _probe(env, "fill", "64M", "hold")
        fill = _lines(taker, "fill")
        _lines(taker, "hold ready")
        held = gpu.held({keeper.pid, taker.pid})
    finally:
        _kill(keeper, taker)
    return {"cap": cap, "keeper_mem_get_info": _fields(info),
            "taker_got": int(_fields(fill).get("bytes", "0")), "nvml_held_total": held,
            "within_cap": 0 <= held <= cap}


# ---------------------------------------------------------------- 2. shares

def _spin_env(kernel_ns: int, saturating: bool, nodes: int = 1) -> dict[str, str]:
    env = {"PROBE_MODULE_IMAGE": SPIN_PTX.replace("NS", str(kernel_ns)),
           "FAKEGPU_KERNEL_NS": str(kernel_ns), "PROBE_GRAPH_NODES": str(nodes)}
    if saturating:
        env |= {"PROBE_BATCH": str(max(1, 1_000_000 // (kernel_ns * nodes))),
                "PROBE_PIPELINE": "1"}
    return env


def share_case(gpu: Gpu, name: str, jobs: list[tuple[int, int, str, bool, int]],
               seconds: float = 4.0) -> dict[str, Any]:
    """jobs: (permille, kernel_ns, kind, saturating, graph nodes). Completed kernel time per
    job from its launch count (the probe syncs everything before it reports)."""
    procs = []
    for permille, kernel_ns, kind, saturating, nodes in jobs:
        env = {**gpu.job(permille=permille), **_spin_env(kernel_ns, saturating, nodes)}
        procs.append(_probe(env, "busyk", kind, str(int(seconds * 1000))))
    done = []
    try:
        for p in procs:
            done.append(_fields(_lines(p, "busy", timeout=seconds + 60)))
    finally:
        _kill(*procs)
    work = [int(d.get("launches", "0")) * j[1] * j[4] for d, j in zip(done, jobs, strict=True)]
    alone = len(jobs) == 1
    total = sum(work) or 1
    achieved = [100.0 * w / (seconds * 1e9) if alone else 100.0 * w / total for w in work]
    targets = [j[0] / 10 for j in jobs]
    if not alone:
        targets = [100.0 * t / sum(targets) for t in targets]
    return {"case": name, "measure": "share of wall time" if alone else "share of the work done",
            "targets": [round(t, 1) for t in targets],
            "achieved": [round(a, 1) for a in achieved],
            "max_abs_error_pp": round(max(abs(a - t) for a, t in
                                          zip(achieved, targets, strict=True)), 1),
            "note": "whole run, start-up included"}


SHARE_CASES: list[tuple[str, list[tuple[int, int, str, bool, int]]]] = [
    ("700+300, 20 us", [(700, 20_000, "launch", True, 1), (300, 20_000, "launch", True, 1)]),
    ("700+300, 200 us", [(700, 200_000, "launch", True, 1), (300, 200_000, "launch", True, 1)]),
    ("500+500, 2 ms", [(500, 2_000_000, "launch", True, 1),
                       (500, 2_000_000, "launch", True, 1)]),
    ("300 alone, 200 us", [(300, 200_000, "launch", True, 1)]),
    ("700 plain + 300 graphs of 4, 200 us", [(700, 200_000, "launch", True, 1),
                                             (300, 200_000, "graph", True, 4)]),
    ("700 plain + 300 graphs of 4, 2 ms", [(700, 2_000_000, "launch", True, 1),
                                           (300, 2_000_000, "graph", True, 4)]),
    ("700 plain + 300 cooperative, 200 us", [(700, 200_000, "launch", True, 1),
                                             (300, 200_000, "coop", True, 1)]),
    ("3 jobs 500+300+200, 200 us", [(500, 200_000, "launch", True, 1),
                                    (300, 200_000, "launch", True, 1),
                                    (200, 200_000, "launch", True, 1)]),
    ("300 launch-bound next to 700 saturating, 20 us",
     [(700, 20_000, "launch", True, 1), (300, 20_000, "launch", False, 1)]),
]


# ---------------------------------------------------------------- 3. overhead

def overhead(gpu: Gpu, python: str | None) -> dict[str, Any]:
    env_plain = {**gpu.env, **_spin_env(1000, False)}
    env_hook = {**gpu.job(permille=1000), **_spin_env(1000, False)}
    result: dict[str, Any] = {}

    def timed(cmd: list[str], env: dict[str, str]) -> float:
        t0 = time.monotonic()
        subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False)
        return time.monotonic() - t0

    cmd = [str(PROBE), "launch", "20000", "sync"]
    runs = {"without_hook_s": [], "with_hook_s": []}  # type: dict[str, list[float]]
    for _ in range(3):
        runs["without_hook_s"].append(round(timed(cmd, env_plain), 3))
        runs["with_hook_s"].append(round(timed(cmd, env_hook), 3))
    result["launch_20000_empty_kernels"] = runs
    if python:
        code = ("import torch, time\nx = torch.zeros(16, device='cuda')\ntorch.cuda.synchronize()"
                "\nfor _ in range(20000): x.add_(1)\ntorch.cuda.synchronize()\n")
        runs = {"without_hook_s": [], "with_hook_s": []}
        for _ in range(3):
            runs["without_hook_s"].append(round(timed([python, "-c", code], gpu.env), 3))
            runs["with_hook_s"].append(round(timed([python, "-c", code],
                                                   gpu.job(permille=1000)), 3))
        result["torch_20000_tiny_ops_incl_start"] = runs
    return result


# ---------------------------------------------------------------- main

def _has(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=120,
                          check=False).returncode == 0


def _step(results: dict[str, Any], key: str, fn: Any, *args: Any) -> None:
    t0 = time.monotonic()
    try:
        results[key] = fn(*args)
    except Exception as e:  # a failed step is recorded; the run goes on
        results[key] = {"failed": f"{type(e).__name__}: {e}"}
    print(f"gpu check: {key} ({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--simulated", action="store_true", help="run on the simulated GPU")
    ap.add_argument("--python", default=os.environ.get("VGPU_FRAMEWORKS_PYTHON", sys.executable),
                    help="the Python with PyTorch/CuPy/JAX (default: this one)")
    ap.add_argument("--out", help="JSON file (default bench/results/gpu-<gpu>.json)")
    ap.add_argument("--skip-shares", action="store_true")
    args = ap.parse_args(argv)
    for needed in (HOOK, PROBE):
        if not needed.exists():
            print(f"gpu check: {needed} is missing: run make first", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("gpu check: run as root (limits files must be root-owned, as the plugin writes "
              "them)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="vgpu-gpucheck-"))
    os.chmod(root, 0o755)
    started = time.monotonic()
    try:
        gpu = Gpu(root, args.simulated)
        results: dict[str, Any] = {}
        _step(results, "cap_raw_cuda", cap_raw, gpu)
        fws = [("torch", "torch", {}),
               ("torch_expandable_segments", "torch",
                {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}),
               ("torch_cudaMallocAsync", "torch",
                {"PYTORCH_CUDA_ALLOC_CONF": "backend:cudaMallocAsync"}),
               ("cupy", "cupy", {}), ("jax", "jax", {})]
        have = {m: _has(args.python, m) for m in ("torch", "cupy", "jax")}
        for key, module, extra in fws:
            if have[module]:
                _step(results, f"cap_{key}", cap_framework, gpu, args.python, module, extra)
            else:
                results[f"cap_{key}"] = {"skipped": f"{module} is not installed"}
        _step(results, "job_total_4_processes", job_total_4_processes, gpu)
        _step(results, "job_total_pool_keeps_2_5_gib", job_total_pool, gpu)
        if not args.skip_shares:
            rows: list[Any] = []
            for name, jobs in SHARE_CASES:
                _step(results, "_share", share_case, gpu, name, jobs)
                rows.append(results.pop("_share"))
            results["shares"] = rows
        _step(results, "overhead", overhead, gpu, args.python if have["torch"] else None)
        doc = {
            "command": "python3 bench/gpu/run.py" + (" --simulated" if args.simulated else ""),
            "gpu": gpu.name, "driver": gpu.driver, "simulated": args.simulated,
            "host": platform.node(), "cpus": os.cpu_count(),
            "frameworks_python": args.python, "frameworks": have,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.monotonic() - started, 1), "results": results,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = Path(args.out) if args.out else REPO / "bench" / "results" / (
        "gpu-" + "".join(c if c.isalnum() else "-" for c in doc["gpu"]).strip("-").lower()
        + ".json")
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    print(f"gpu check: {out} ({doc['seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
