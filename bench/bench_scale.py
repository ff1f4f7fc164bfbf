#!/usr/bin/env python3
"""The split deployment at scale (issue 18). Three measurements, each printing JSON:

  bench_scale.py rpc [--agents 1,8,32] [--daemons 1,4,8] [--periods 10]
      slurmctld RPCs per control period (sdiag) on a loopback Slurm cluster: N `vgpu daemon`
      processes (the old deployment) against one `vgpu controller` + N `vgpu agent`. The
      cluster has 2 real slurmd nodes and 64 more node entries (DOWN, no slurmd) for agents to
      manage; an agent needs no slurmd, only its node name. Root, Debian's Slurm 22.05.
  bench_scale.py agent [--seconds 60] [--period 5] [--vendor amd]
      `vgpu agent`'s CPU and memory on a node with 8 simulated GPUs and 40 jobs (limits files
      as the SPANK plugin writes them, NVML through the simulated GPU, a directive listing the
      40 jobs, the controller's heartbeat kept fresh by the bench). Needs `make` (fakegpu).
      --vendor amd: the GPUs are simulated AMD ones, read through ROCm SMI, and each job has a
      HIP process holding device memory (the agent's occupancy reads cover 40 processes).
  bench_scale.py controller [--capture DIR] [--nodes 10000] [--jobs 100000] [--read reader]
      the controller's cycle at 10,000 nodes x 8 GPUs with 100,000 queued jobs: the Slurm
      read (squeue --json + sinfo --json parsed by the controller's own client code), the
      reports of 10,000 agents, the waiting-job index, 10,000 directives and the heartbeat,
      on a real exchange directory. The squeue/sinfo documents are built from records
      captured on the loopback cluster (DIR, see `capture`), replicated with new ids and
      node names; the CLI's own run time is measured on the loopback at the captured size.
  bench_scale.py reader [--jobs 20000] [--out DIR]
      the controller's job read on a loopback cluster holding that many queued vgpu jobs:
      squeue's formatted read against vgpu-slurm-read (libslurm, only vgpu jobs printed,
      waiting ones folded), and the steering's pending read (squeue -t PD against
      vgpu-slurm-read held), each timed; the program's output saved for `controller`.
  bench_scale.py sinfo [--nodes 10000]
      the node reads' own time on a loopback cluster with that many node entries (sinfo
      --json and formatted, vgpu-slurm-read nodes, scontrol show nodes/partitions -o).
  bench_scale.py capture --slurm-conf FILE --out DIR
      save `squeue --json`/`sinfo --json` of a running loopback cluster and time squeue
      (JSON and a formatted read) at its current job count.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GIB = 1 << 30


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem,
            "python": sys.version.split()[0], "note": "shared VM: other work ran meanwhile"}


def inventory_text(node: str, gpus: int = 8, vendor: str = "nvidia") -> str:
    lines = ["# bench inventory", "version=1", f"node={node}"]
    tail = " vendor=amd" if vendor == "amd" else ""
    for g in range(gpus):
        lines.append(f"gpu index={g} uuid={gpu_uuid(node, g, vendor)} slices=10 "
                     f"slice_bytes={8 * GIB} slice_permille=100 memory_bytes={80 * GIB}"
                     f"{tail} model=bench")
    return "\n".join(lines) + "\n"


def gpu_uuid(node: str, g: int, vendor: str = "nvidia") -> str:
    """The inventory uuid; AMD: "GPU-" and ROCm SMI's 16-hex-digit unique id, which the
    simulated GPU reads from bytes 8..15 of fake_uuid's (docs/contracts.md)."""
    digits = re.sub(r"\D", "", node) or "0"
    if vendor == "amd":
        return f"GPU-a3d0{int(digits):04d}{g:08x}"
    return f"GPU-{int(digits):08d}-0000-4000-8000-{g:012d}"


def fake_uuid(node: str, g: int, vendor: str = "nvidia") -> str:
    """The uuid to create simulated GPU g with, so that it reports gpu_uuid."""
    if vendor != "amd":
        return gpu_uuid(node, g)
    unique = gpu_uuid(node, g, vendor)[4:]
    return f"GPU-00000000-0000-4000-{unique[:4]}-{unique[4:]}"


# --- sdiag ----------------------------------------------------------------------------------

_SDIAG = re.compile(r"^\s*(REQUEST_\w+|MESSAGE_\w+|RESPONSE_\w+)\s+\(\s*\d+\)\s+count:(\d+)")


def sdiag_counts(env: dict[str, str]) -> dict[str, int]:
    out = subprocess.run(["sdiag"], capture_output=True, text=True, env=env, check=True).stdout
    counts: dict[str, int] = {}
    in_types = False
    for line in out.splitlines():
        if "by message type" in line:
            in_types = True
            continue
        if in_types and "by user" in line:
            break
        m = _SDIAG.match(line)
        if in_types and m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def _sdiag_average(env: dict[str, str], rpc_name: str) -> float | None:
    """slurmctld's average time for one RPC type (ms), from sdiag's ave_time (us)."""
    out = subprocess.run(["sdiag"], capture_output=True, text=True, env=env, check=True).stdout
    m = re.search(rf"^\s*{rpc_name}\s.*ave_time:(\d+)", out, re.MULTILINE)
    return round(int(m.group(1)) / 1000, 2) if m else None


def start_cluster(workdir: Path, extra_nodes: int, extra_conf: str = "") -> Any:
    sys.path.insert(0, str(REPO / "contrib" / "devcluster"))
    from devcluster import SlurmCluster  # type: ignore[import-not-found]

    extra = (f"NodeName=v[1-{extra_nodes}] NodeHostname=localhost NodeAddr=127.0.0.1 Port=1 "
             "CPUs=8 Gres=vgpu:80 State=DOWN\n" if extra_nodes else "")
    gres = "NodeName=n[1-2] Name=vgpu Count=80\n"
    if extra_nodes:
        gres += f"NodeName=v[1-{extra_nodes}] Name=vgpu Count=80\n"
    nodes = "n[1-2]" + (f",v[1-{extra_nodes}]" if extra_nodes else "")
    cluster = SlurmCluster(workdir=workdir, nodes=["n1", "n2"], vgpu_per_node=80,
                           gres_conf=gres, accounting=False, start_timeout=300,
                           extra_conf="MaxJobCount=200000\n" + extra_conf + extra
                           + f"PartitionName=gpu Nodes={nodes} State=UP\n")
    cluster.start()
    return cluster


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def rpc(args: argparse.Namespace) -> dict[str, Any]:
    agents = [int(x) for x in args.agents.split(",") if x]
    daemons = [int(x) for x in args.daemons.split(",") if x]
    most = max(agents + daemons)
    work = Path(tempfile.mkdtemp(prefix="vgpu-bench-rpc-"))
    cluster = start_cluster(work / "cluster", most)
    try:
        env = {**os.environ, **cluster.env}
        # a queue to read: 4 running vgpu jobs and 40 waiting ones (begin time tomorrow)
        for i in range(4):
            cluster.sbatch("-w", f"n{1 + i % 2}", f"--gres=vgpu:{2 * (i + 1)}", "-o", "/dev/null",
                           "--wrap", "sleep 3600")
        for i in range(40):
            cluster.sbatch("--begin=now+1day", f"--gres=vgpu:{1 + i % 8}", "-o", "/dev/null",
                           "--wrap", "true")
        for i in range(1, most + 1):
            (work / "inv").mkdir(exist_ok=True)
            (work / "inv" / f"v{i}.conf").write_text(inventory_text(f"v{i}"))
            (work / "rt" / f"v{i}").mkdir(parents=True, exist_ok=True)
        period = args.period
        cfg = work / "vgpu.yaml"
        cfg.write_text(
            f"control_period_seconds: {period}\nnvml: false\nruntime_dir: {work}/rt/%n\n"
            f"inventory: {work}/inv/%n.conf\nmetrics: {{enabled: false}}\n"
            f"exchange: {{dir: {work}/exchange}}\n"
            "backfill: {enabled: true, preemptible_partitions: [scavenger]}\n"
            "packing: {enabled: true}\n"
            + (f"slurm: {{reader: {REPO / 'build' / 'spank' / 'vgpu-slurm-read'}}}\n"
               if getattr(args, "reader", False) else ""))
        vgpu = [sys.executable, "-m", "slurm_vgpu.cli"]
        runs = []
        plan = [("daemon", n) for n in daemons] + [("agents+controller", n) for n in agents]
        for mode, n in plan:
            procs = []
            if mode != "daemon":
                procs.append(_spawn([*vgpu, "controller", "--config", str(cfg)], env,
                                    work / f"controller-{n}.log"))
            for i in range(1, n + 1):
                cmd = "daemon" if mode == "daemon" else "agent"
                procs.append(_spawn([*vgpu, cmd, "--config", str(cfg), "--node", f"v{i}"],
                                    env, work / f"{cmd}-{n}-v{i}.log"))
            time.sleep(args.warmup)  # imports, first cycles
            before = sdiag_counts(env)
            t0 = time.monotonic()
            time.sleep(args.periods * period)
            after = sdiag_counts(env)
            elapsed = time.monotonic() - t0
            _stop(procs)
            alive = sum(1 for p in procs if p.returncode not in (0, -signal.SIGTERM))
            periods = elapsed / period
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            delta.pop("REQUEST_STATS_INFO", None)  # sdiag's own
            runs.append({
                "mode": mode, "processes": n, "periods": round(periods, 1),
                "job_info_per_period": round(delta.get("REQUEST_JOB_INFO", 0) / periods, 2),
                "job_state_per_period": round(delta.get("REQUEST_JOB_STATE", 0) / periods, 2),
                "node_info_per_period": round(delta.get("REQUEST_NODE_INFO", 0) / periods, 2),
                "partition_info_per_period":
                    round(delta.get("REQUEST_PARTITION_INFO", 0) / periods, 2),
                "all_rpcs_per_period": round(sum(delta.values()) / periods, 2),
                "by_type": {k: v for k, v in sorted(delta.items()) if v},
                "processes_failed": alive,
            })
            print(json.dumps(runs[-1]), file=sys.stderr)
        return {"bench": "rpc", "machine": machine(), "slurm": _slurm_version(env),
                "control_period_seconds": period, "runs": runs,
                "controller_reads": "vgpu-slurm-read" if args.reader else "squeue/sinfo CLIs",
                "goal": "job-info RPCs per period grow by at most 1 for the whole cluster"}
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def _slurm_version(env: dict[str, str] | None = None) -> str:
    try:
        return subprocess.run(["squeue", "--version"], capture_output=True, text=True,
                              env=env, check=False).stdout.strip()
    except OSError:
        return ""


# --- agent footprint --------------------------------------------------------------------------


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def agent(args: argparse.Namespace) -> dict[str, Any]:
    from slurm_vgpu.native import GpuLimit, JobLimits, write_limits_file
    from slurm_vgpu.native import SharePolicy as NativeShare
    from slurm_vgpu.policies.service.exchange import (
        Directive,
        ExchangeDir,
        Heartbeat,
        directive_to_bytes,
        heartbeat_to_bytes,
        make_dirs,
        write_atomic,
    )
    from slurm_vgpu.policies.slurm.slurm_client import SlurmJob, SlurmNode

    fake = REPO / "build" / "fakegpu"
    work = Path(tempfile.mkdtemp(prefix="vgpu-bench-agent-"))
    node, gpus, jobs = "g1", 8, 40
    vendor = getattr(args, "vendor", "nvidia")
    holders: list[subprocess.Popen[bytes]] = []
    try:
        env = dict(os.environ)
        nvml = (fake / "fakegpu-ctl").exists()
        holder = fake / ("test-hip-basic" if vendor == "amd" else "test-drv-api")
        processes = getattr(args, "device_processes", None)
        processes = (jobs if vendor == "amd" else 0) if processes is None else processes
        if processes and not holder.exists():
            raise SystemExit(f"bench_scale agent: {holder} is not built (make; on AMD it needs "
                             "hipcc, libamdhip64-dev, librocm-smi-dev)")
        if nvml:
            uuids = ",".join(fake_uuid(node, g, vendor) for g in range(gpus))
            subprocess.run([str(fake / "fakegpu-ctl"), "create", "--force", "--state",
                            str(work / "gpu.state"), "--count", str(gpus), "--mem", "80G",
                            "--vendor", vendor, "--uuid", uuids, "--ctx-overhead", "0"],
                           check=True, capture_output=True)
            env.update(FAKEGPU_STATE=str(work / "gpu.state"), LD_LIBRARY_PATH=str(fake))
        (work / "inv.conf").write_text(inventory_text(node, gpus, vendor))
        # processes holding device memory (one per job, spread over the GPUs): what the
        # device library then lists for the agent's per-period sample (and, on AMD, for its
        # occupancy reads every 200 ms)
        hold = ["hold", "64", str(int(args.seconds) + 60)]  # both programs: MIB, seconds
        visible = "HIP_VISIBLE_DEVICES" if vendor == "amd" else "CUDA_VISIBLE_DEVICES"
        for j in range(processes):
            holders.append(subprocess.Popen(
                [str(holder), *hold], env={**env, visible: str(j % gpus)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        rt = work / "rt"
        slurm_jobs = []
        for j in range(jobs):  # 5 jobs per GPU, 2 slices each; every other one bursts
            job_id, g = 1000 + j, j % gpus
            d = rt / "jobs" / str(job_id)
            d.mkdir(parents=True)
            write_limits_file(d / "limits", JobLimits(
                job_id=job_id, uid=1000,
                share_policy=NativeShare.BURST if j % 2 else NativeShare.GUARANTEED,
                gpus=(GpuLimit(gpu_uuid(node, g, vendor), g, 2, 16 * GIB, 200, 200),)))
            slurm_jobs.append(SlurmJob(job_id, "RUNNING", "gpu", "normal", 1000,
                                       time.time() - 60, {node: 2}))
        ex = ExchangeDir(work / "exchange")
        make_dirs(ex.root)
        write_atomic(ex.directive(node), directive_to_bytes(Directive(
            node=SlurmNode(node, "mixed", 80, 80, 100, ("gpu",)), jobs=tuple(slurm_jobs))))
        write_atomic(ex.heartbeat, heartbeat_to_bytes(Heartbeat(time.time(), True)))
        cfg = work / "vgpu.yaml"
        cfg.write_text(
            f"nodes: [{node}]\ncontrol_period_seconds: {args.period}\nnvml: {str(nvml).lower()}\n"
            f"runtime_dir: {rt}\ninventory: {work}/inv.conf\nmetrics: {{port: 0}}\n"
            f"exchange: {{dir: {ex.root}}}\n"
            "backfill: {enabled: true, preemptible_partitions: [scavenger]}\n"
            "packing: {enabled: true}\n"
            + (f"slurm: {{reader: {REPO / 'build' / 'spank' / 'vgpu-slurm-read'}}}\n"
               if getattr(args, "reader", False) else ""))
        proc = _spawn([sys.executable, "-m", "slurm_vgpu.cli", "agent", "--config", str(cfg)],
                      env, work / "agent.log")
        try:
            def beat_until(t_end: float) -> None:
                while time.monotonic() < t_end:
                    write_atomic(ex.heartbeat, heartbeat_to_bytes(Heartbeat(time.time(), True)))
                    time.sleep(1)

            beat_until(time.monotonic() + max(10.0, 2 * args.period))  # imports, first cycles
            cpu0, t0 = _proc_cpu_seconds(proc.pid), time.monotonic()
            beat_until(t0 + args.seconds)
            cpu1, t1 = _proc_cpu_seconds(proc.pid), time.monotonic()
            rss, hwm = _proc_status(proc.pid, "VmRSS"), _proc_status(proc.pid, "VmHWM")
            report = json.loads((ex.report(node)).read_text())
            status = json.loads(subprocess.run(
                [sys.executable, "-m", "slurm_vgpu.cli", "status", "--config", str(cfg),
                 "--json", "--sample-seconds", "0"], env=env, capture_output=True, text=True,
                check=True).stdout)
        finally:
            _stop([proc])
        log = (work / "agent.log").read_text()
        raised = len(re.findall(r"set_compute_limit: SetComputeLimit", log))
        return {
            "bench": "agent", "machine": machine(), "gpus": gpus, "jobs": jobs,
            "vendor": vendor,
            "device_processes": len(holders),
            "nvml": ("simulated GPU (fakegpu)" + (": ROCm SMI, occupancy reads every 200 ms"
                                                  if vendor == "amd" else "")
                     if nvml else "off (fakegpu not built)"),
            "control_period_seconds": args.period, "measured_seconds": round(t1 - t0, 1),
            "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
            "rss_mb": round(rss / 1024, 1), "peak_rss_mb": round(hwm / 1024, 1),
            "report_to_controller_ok": report.get("node") == node,
            "jobs_seen_by_vgpu_status": sum(len(n["jobs"]) for n in status["nodes"]),
            "status_slurm_ok": status["slurm_ok"],
            "burst_limits_raised_in_log": raised, "log_head": log.splitlines()[:3],
            "goal": "< 1 % of a core, < 100 MB",
            "note": "hook state files absent (no job computes): usage reads find none",
        }
    finally:
        for h in holders:
            h.kill()
            h.wait()
        shutil.rmtree(work, ignore_errors=True)


# --- capture + controller cycle ---------------------------------------------------------------


def capture(args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "SLURM_CONF": args.slurm_conf}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sq = subprocess.run(["squeue", "--json"], capture_output=True, env=env, check=True).stdout
    t_json = time.perf_counter() - t0
    fmt = ("JobID:|,StateCompact:|,Partition:|,QOS:|,UserID:|,StartTime:|,NodeList:|,"
           "tres-per-node:|,Reason:")
    t0 = time.perf_counter()
    txt = subprocess.run(["squeue", "-h", "-a", "-O", fmt], capture_output=True, env=env,
                         check=True).stdout
    t_fmt = time.perf_counter() - t0
    t0 = time.perf_counter()
    si = subprocess.run(["sinfo", "--json"], capture_output=True, env=env, check=True).stdout
    t_sinfo = time.perf_counter() - t0
    doc = json.loads(sq)
    sample = dict(doc)
    running = [j for j in doc["jobs"] if "RUNNING" in str(j.get("job_state"))]
    pending = [j for j in doc["jobs"] if "PENDING" in str(j.get("job_state"))]
    sample["jobs"] = running[:20] + pending[:100]  # the records the model replicates
    (out / "squeue-sample.json").write_text(json.dumps(sample))
    lines = txt.decode().splitlines()
    (out / "squeue-formatted-sample.txt").write_text("\n".join(
        [x for x in lines if "|R|" in x][:20] + [x for x in lines if "|PD|" in x][:100]) + "\n")
    (out / "sinfo.json").write_bytes(si)
    n = len(doc["jobs"])
    return {"bench": "capture", "machine": machine(), "slurm": _slurm_version(env),
            "jobs": n, "running": len(running), "pending": len(pending),
            "squeue_json_seconds": round(t_json, 3), "squeue_json_bytes": len(sq),
            "squeue_json_ms_per_1000_jobs": round(1000 * t_json / max(1, n) * 1000, 1),
            "squeue_formatted_seconds": round(t_fmt, 3), "squeue_formatted_bytes": len(txt),
            "squeue_formatted_ms_per_1000_jobs": round(1000 * t_fmt / max(1, n) * 1000, 1),
            "sinfo_json_seconds": round(t_sinfo, 3), "sinfo_json_bytes": len(si)}


def reader_at(args: argparse.Namespace) -> dict[str, Any]:
    """The controller's two job reads timed on one loopback cluster holding `--jobs` queued
    vgpu jobs (sizes 1-40, two partitions, submitted by parallel sbatch; they wait for a begin
    time, so slurmctld does not schedule meanwhile): squeue's formatted read and
    vgpu-slurm-read, best of 3 each, and the reader's output saved into `--out` for the
    controller's model."""
    program = REPO / "build" / "spank" / "vgpu-slurm-read"
    if not program.is_file():
        raise SystemExit(f"{program}: run make first")
    from concurrent.futures import ThreadPoolExecutor

    from slurm_vgpu.policies.slurm.steering_reads import PENDING_FORMAT

    work = Path(tempfile.mkdtemp(prefix="vgpu-bench-reader-"))
    cluster = start_cluster(work / "cluster", args.nodes)
    try:
        env = {**os.environ, **cluster.env}
        running = [cluster.sbatch("-w", f"n{1 + i % 2}",
                                  f"--gres=vgpu:{2 * (i + 1)}", "-o", "/dev/null",
                                  "--wrap", "sleep 3600") for i in range(4)]
        end = time.monotonic() + 120
        while any(cluster.job_state(j) != "RUNNING" for j in running):
            if time.monotonic() > end:
                raise SystemExit("the 4 running jobs did not start within 120 s")
            time.sleep(0.5)

        def submit(i: int) -> None:
            subprocess.run(["sbatch", "-Q", "--begin=now+1day", "-p",
                            "gpu,debug" if i % 3 == 0 else "gpu", f"--gres=vgpu:{1 + i % 40}",
                            "-o", "/dev/null", "--wrap", "true"], env=env, check=True,
                           capture_output=True)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(submit, range(args.jobs)))
        submit_s = time.perf_counter() - t0
        res: dict[str, Any] = {"bench": "reader", "machine": machine(),
                               "slurm": _slurm_version(env), "jobs": args.jobs + len(running),
                               "submit_seconds": round(submit_s, 1)}
        for name, argv in [("squeue_formatted", ["squeue", "-h", "-a", "-t",
                                                 "PENDING,RUNNING", "-O",
                                                 "JobID:|,StateCompact:|,Partition:|,QOS:|,"
                                                 "UserID:|,StartTime:|,NodeList:|,"
                                                 "tres-per-node:|,Reason:"]),
                           ("vgpu_slurm_read_jobs", [str(program), "jobs"]),
                           ("vgpu_slurm_read_nodes", [str(program), "nodes"]),
                           # the placement steering's read of the jobs held for it: squeue's
                           # every pending job, the reader's only those held (none here)
                           ("squeue_steering_pending", ["squeue", "-h", "-t", "PD", "-O",
                                                        PENDING_FORMAT]),
                           ("vgpu_slurm_read_held", [str(program), "held", "5"])]:
            import resource

            times, cpu, out = [], [], b""
            before = sdiag_counts(env).get("REQUEST_JOB_INFO", 0)
            for _ in range(3):
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                out = subprocess.run(argv, env=env, capture_output=True, check=True,
                                     input=b"").stdout
                times.append(time.perf_counter() - t0)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
            best = min(times)
            res[name] = {"seconds_best_of_3": round(best, 3),
                         "client_cpu_seconds_min": round(min(cpu), 3), "bytes": len(out),
                         "lines": out.count(b"\n"),
                         "ms_per_1000_jobs": round(1e6 * best / res["jobs"], 2),
                         "job_info_rpcs": sdiag_counts(env).get("REQUEST_JOB_INFO", 0) - before}
            if name.startswith("vgpu_slurm_read_") and name != "vgpu_slurm_read_held" \
                    and args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                (Path(args.out) / f"reader-{name[16:]}-sample.txt").write_bytes(out)
        res["slurmctld_job_info_ms_average"] = _sdiag_average(env, "REQUEST_JOB_INFO")
        # Slurm 24.05+: the states of every job of the table, as the controller asks them
        # between full reads (job_table.py), in one REQUEST_JOB_STATE
        # (the controller's belief: each job pending, which all but the 4 running ones are)
        ids = " ".join(f"{i}P" for i in subprocess.run(
            ["squeue", "-h", "-a", "-o", "%i"], env=env, capture_output=True, text=True,
            check=True).stdout.split())
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            done = subprocess.run([str(program), "states"], input=ids, env=env,
                                  capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - t0)
            if done.returncode != 0:
                break
        if done.returncode == 3:
            res["vgpu_slurm_read_states"] = "not in this Slurm release (24.05+)"
        else:
            done.check_returncode()
            res["vgpu_slurm_read_states"] = {
                "ids_asked": len(ids.split()), "seconds_best_of_3": round(min(times), 3),
                "lines": done.stdout.count("\n"),
                "slurmctld_ms_average": _sdiag_average(env, "REQUEST_JOB_STATE")}
        res["nodes"] = args.nodes + 2
        return res
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def _model_reader(capture_dir: Path, nodes: int, running_per_node: int, pending: int
                  ) -> bytes:
    """`vgpu-slurm-read jobs` for the modelled cluster: the captured running lines
    replicated like squeue's (new ids, node names), and the pending jobs folded as the program
    folds them, with their ids: 100,000 jobs of sizes 1-40 in the captured partitions and
    QOS."""
    lines = (capture_dir / "reader-jobs-sample.txt").read_text().splitlines()
    run_t = [x.split("|") for x in lines if x.startswith("R|")]
    pend_t = [x.split("|") for x in lines if x.startswith("P|")]
    out = [f"V|1|jobs|{nodes * running_per_node + pending}"]
    job_id = 1
    for i in range(nodes):
        for k in range(running_per_node):
            f = list(run_t[(i + k) % len(run_t)])
            f[1], f[6], f[7] = str(job_id), f"g{i:05d}", f"gres:vgpu:{2 * (k + 1)}"
            f[2] = "scavenger" if k == running_per_node - 1 else "gpu"
            out.append("|".join(f))
            job_id += 1
    keys: dict[tuple[str, str, str], list[int]] = {}
    for i in range(pending):
        f = pend_t[i % len(pend_t)]
        keys.setdefault((f[2], f[3], f"gres:vgpu:{1 + i % 40}"), []).append(job_id + i)
    out += [f"P|{ids[0]}|{'|'.join(key)}|{len(ids)}|{','.join(map(str, ids))}"
            for key, ids in keys.items()]
    return ("\n".join(out) + "\n").encode()


def _model_reader_nodes(capture_dir: Path, nodes: int) -> bytes:
    """`vgpu-slurm-read nodes` for the modelled cluster: the captured line of a node with
    vgpu, renamed g00000.., in the partitions the squeue model uses."""
    lines = (capture_dir / "reader-nodes-sample.txt").read_text().splitlines()
    f = next(x.split("|") for x in lines if x.startswith("N|") and "vgpu" in x)
    out = [f"V|1|nodes|{nodes}"]
    for i in range(nodes):
        f[1], f[6] = f"g{i:05d}", "gpu,scavenger"
        out.append("|".join(f))
    return ("\n".join(out) + "\n").encode()


def _model_documents(capture_dir: Path, nodes: int, running_per_node: int, pending: int
                     ) -> tuple[bytes, bytes]:
    """squeue/sinfo JSON for a cluster of `nodes` nodes, built from captured records."""
    sq = json.loads((capture_dir / "squeue-sample.json").read_text())
    si = json.loads((capture_dir / "sinfo.json").read_text())
    run_t = [j for j in sq["jobs"] if "RUNNING" in str(j.get("job_state"))]
    pend_t = [j for j in sq["jobs"] if "PENDING" in str(j.get("job_state"))]
    if not run_t or not pend_t:
        raise SystemExit(f"{capture_dir}: the capture needs running and pending jobs")
    node_t = next(n for n in si["nodes"] if n.get("gres"))
    jobs: list[dict[str, Any]] = []
    job_id = 1
    for i in range(nodes):
        name = f"g{i:05d}"
        for k in range(running_per_node):
            r = copy.copy(run_t[(i + k) % len(run_t)])
            r["job_id"], r["nodes"] = job_id, name
            r["gres_detail"] = [f"vgpu:{2 * (k + 1)}"]
            r["partition"] = "scavenger" if k == running_per_node - 1 else "gpu"
            jobs.append(r)
            job_id += 1
    for i in range(pending):
        p = copy.copy(pend_t[i % len(pend_t)])
        p["job_id"] = job_id
        jobs.append(p)
        job_id += 1
    sq["jobs"] = jobs
    node_docs = []
    for i in range(nodes):
        nd = copy.copy(node_t)
        nd["name"] = nd["hostname"] = f"g{i:05d}"
        nd["partitions"] = ["gpu", "scavenger"]
        node_docs.append(nd)
    si["nodes"] = node_docs
    return json.dumps(sq).encode(), json.dumps(si).encode()


def _model_formatted(capture_dir: Path, nodes: int, running_per_node: int, pending: int
                     ) -> bytes:
    """squeue's formatted output for the modelled cluster, from captured lines."""
    lines = (capture_dir / "squeue-formatted-sample.txt").read_text().splitlines()
    run_t = [x.split("|") for x in lines if "|R|" in x]
    pend_t = [x.split("|") for x in lines if "|PD|" in x]
    out = []
    job_id = 1
    for i in range(nodes):
        for k in range(running_per_node):
            f = list(run_t[(i + k) % len(run_t)])
            f[0], f[6], f[7] = str(job_id), f"g{i:05d}", f"gres:vgpu:{2 * (k + 1)}"
            f[2] = "scavenger" if k == running_per_node - 1 else "gpu"
            out.append("|".join(f))
            job_id += 1
    for i in range(pending):
        f = list(pend_t[i % len(pend_t)])
        f[0] = str(job_id)
        out.append("|".join(f))
        job_id += 1
    return ("\n".join(out) + "\n").encode()


def controller(args: argparse.Namespace) -> dict[str, Any]:
    import statistics

    from slurm_vgpu.policies.decide.config import (
        BackfillConfig,
        DaemonConfig,
        ExchangeConfig,
        PolicyConfig,
        SlurmConfig,
    )
    from slurm_vgpu.policies.service.controller import Controller
    from slurm_vgpu.policies.service.exchange import (
        ExchangeDir,
        NodeReport,
        make_dirs,
        report_to_bytes,
        write_atomic,
    )
    from slurm_vgpu.policies.slurm.slurm_client import CliSlurmClient
    from slurm_vgpu.policies.slurm.slurm_reader import ReaderSlurmClient
    from slurm_vgpu.policies.slurm.squeue_formatted import FormattedSlurmClient

    t0 = time.perf_counter()
    sq_bytes, si_bytes = _model_documents(Path(args.capture), args.nodes, args.running_per_node,
                                          args.jobs if args.read == "json" else 1)
    if args.read == "formatted":
        sq_bytes = _model_formatted(Path(args.capture), args.nodes, args.running_per_node,
                                    args.jobs)
    elif args.read == "reader":
        sq_bytes = _model_reader(Path(args.capture), args.nodes, args.running_per_node,
                                 args.jobs)
        si_bytes = _model_reader_nodes(Path(args.capture), args.nodes)
    build_s = time.perf_counter() - t0
    base: type[CliSlurmClient] = {"formatted": FormattedSlurmClient, "json": CliSlurmClient,
                                  "reader": ReaderSlurmClient}[args.read]

    class ModelledCli(base):  # type: ignore[valid-type,misc]
        """The CLI client with squeue/sinfo's output given (the documents above): json
        parsing and the client's parsers run for real, the CLI's run time is measured on the
        loopback cluster (capture) and added in the result."""

        def _run(self, tool: str, *a: str) -> str:
            if tool in ("squeue", "sinfo"):
                return (sq_bytes if tool == "squeue" else si_bytes).decode()
            return ""  # scontrol updates: counted, not run

        def _read(self, table: str, stdin: str = "") -> str:  # vgpu-slurm-read
            if table == "states":
                return job_states(stdin)
            if table != "jobs":
                return si_bytes.decode()
            return churned_jobs()

    job_lines = sq_bytes.decode().splitlines(keepends=True)
    running_at = [i for i, line in enumerate(job_lines) if line.startswith("R|")]
    per_read = int(len(running_at) * args.churn / 100)
    next_id = 10**8
    reads = 0

    states: dict[int, str] = {}
    for line in job_lines:
        f = line.rstrip("\n").split("|")
        if f[0] == "R":
            states[int(f[1])] = "R"
        elif f[0] == "P":
            states.update(dict.fromkeys(map(int, f[6].split(",")), "P"))

    def job_states(stdin: str) -> str:
        """`vgpu-slurm-read states` (Slurm 24.05+) in the same churn: each cycle's running
        jobs that ended are gone (the new ones are in the next full read)."""
        churn()
        asked = stdin.split()
        return "".join([f"V|1|states|{len(asked)}\n"] + [
            f"S|{t[:-1]}|{states.get(int(t[:-1]), '-')}\n" for t in asked
            if states.get(int(t[:-1]), "-") != t[-1]])

    def churned_jobs() -> str:
        churn()
        return "".join(job_lines)

    def churn() -> None:
        """The job table of the next period: `per_read` running jobs (a rotating window)
        ended and replaced by new ones with new ids, the rest unchanged."""
        nonlocal next_id, reads
        if reads:
            start = (reads - 1) * per_read
            for k in range(per_read):
                i = running_at[(start + k) % len(running_at)]
                f = job_lines[i].split("|")
                states.pop(int(f[1]), None)
                f[1] = str(next_id)
                states[next_id] = "R"
                next_id += 1
                job_lines[i] = "|".join(f)
        reads += 1

    work = Path(tempfile.mkdtemp(prefix="vgpu-bench-ctl-"))
    try:
        ex = ExchangeDir(work / "exchange")
        make_dirs(ex.root)
        now = time.time()
        for i in range(args.nodes):  # every agent's last report
            name = f"g{i:05d}"
            write_atomic(ex.report(name), report_to_bytes(NodeReport(
                node=name, time=now, vgpu_configured=80, vgpu_wanted=80, weight_wanted=100)))
        cfg = DaemonConfig(exchange=ExchangeConfig(dir=str(ex.root), stale_after_seconds=3600),
                           slurm=SlurmConfig(job_table_refresh_seconds=args.job_table_refresh),
                           policy=PolicyConfig(backfill=BackfillConfig(
                               enabled=True, preemptible_partitions=("scavenger",))))
        client = ModelledCli("vgpu-slurm-read") if args.read == "reader" else ModelledCli()
        ctl = Controller(cfg, client, ex, summary_runner=lambda argv: (0, "", ""))
        times = []
        phases: dict[str, list[float]] = {"slurm_read_parse": [], "rest": []}
        for rep in range(args.repeats):
            if rep == 1:
                pass  # the first cycle writes every directive; later ones only changes
            t0 = time.perf_counter()
            ctl.read_slurm()
            t_read = time.perf_counter() - t0
            t0 = time.perf_counter()
            ctl.cycle()
            t_cycle = time.perf_counter() - t0
            times.append(t_cycle)
            phases["slurm_read_parse"].append(t_read)
            phases["rest"].append(max(0.0, t_cycle - t_read))
        first, steady = times[0], times[1:]
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {
            "bench": "controller", "machine": machine(), "nodes": args.nodes, "gpus_per_node": 8,
            "running_jobs": args.nodes * args.running_per_node, "pending_jobs": args.jobs,
            "squeue_read": args.read, "squeue_output_mb": round(len(sq_bytes) / 1e6, 1),
            "running_jobs_replaced_per_read": per_read if args.read == "reader" else 0,
            "job_table": ("job states between full reads (Slurm 24.05+; no full read is due "
                          "in these cycles)" if args.read == "reader" and args.job_table_refresh
                          else "a full read every cycle"),
            "sinfo_json_mb": round(len(si_bytes) / 1e6, 1),
            "model_build_seconds": round(build_s, 2),
            "first_cycle_seconds": round(first, 3),
            "cycle_seconds_median": round(statistics.median(steady), 3) if steady else None,
            "of_which_slurm_output_parse_seconds_median":
                round(statistics.median(phases["slurm_read_parse"][1:] or
                                        phases["slurm_read_parse"]), 3),
            "controller_peak_rss_mb": round(peak, 1),
            "directives_written_total": ctl.state.directives_written,
            "modelled": ("squeue output (formatted lines or JSON records) and sinfo records "
                         "replicated from what was captured on the loopback "
                         "cluster (new job ids, node names g00000..); the squeue/sinfo CLI run "
                         "time is not in cycle_seconds: see the capture's per-1000-jobs cost"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sinfo_at(args: argparse.Namespace) -> dict[str, Any]:
    """`sinfo` at `--nodes` nodes: a loopback cluster with that many node entries (DOWN, no
    slurmd), sinfo --json, formatted sinfo (the daemon's old read and the steering's old
    room read), vgpu-slurm-read nodes and the steering's scontrol reads timed (best of 3)."""
    from slurm_vgpu.policies.slurm.steering_reads import ROOM_FORMAT

    work = Path(tempfile.mkdtemp(prefix="vgpu-bench-sinfo-"))
    cluster = start_cluster(work / "cluster", args.nodes)
    try:
        env = {**os.environ, **cluster.env}
        res: dict[str, Any] = {"bench": "sinfo", "machine": machine(),
                               "slurm": _slurm_version(env), "nodes": args.nodes + 2}
        for name, argv in [("sinfo_json", ["sinfo", "--json"]),
                           ("sinfo_formatted", ["sinfo", "-h", "-N", "-O",
                                                "NodeList:|,StateLong:|,Gres:|,GresUsed:|,"
                                                "Weight:|,Partition:"]),
                           ("vgpu_slurm_read_nodes",
                            [str(REPO / "build" / "spank" / "vgpu-slurm-read"), "nodes"]),
                           # the placement steering's node read (free CPUs and memory)
                           ("sinfo_steering_room", ["sinfo", "-h", "-N", "-O", ROOM_FORMAT]),
                           ("scontrol_nodes_oneliner", ["scontrol", "show", "nodes", "-o"]),
                           ("scontrol_partitions_oneliner",
                            ["scontrol", "show", "partitions", "-o"])]:
            times, size = [], 0
            for _ in range(3):
                t0 = time.perf_counter()
                size = len(subprocess.run(argv, env=env, capture_output=True,
                                          check=True).stdout)
                times.append(time.perf_counter() - t0)
            res[name] = {"seconds_best_of_3": round(min(times), 3), "bytes": size}
        return res
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def run() -> dict[str, Any]:
    """`python3 bench/run.py scale`: the three measurements with their defaults (the
    controller on the committed capture in bench/results/capture; the RPC count only as root
    with Slurm's daemons installed)."""
    ns = argparse.Namespace
    result: dict[str, Any] = {
        "agent": agent(ns(seconds=60.0, period=5.0)),
        "controller": controller(ns(capture=str(REPO / "bench" / "results" / "capture"),
                                    nodes=10000, running_per_node=4, jobs=100000, repeats=4,
                                    read="formatted", job_table_refresh=30.0, churn=1.0)),
    }
    if os.geteuid() == 0 and shutil.which("slurmctld"):
        result["rpc"] = rpc(ns(agents="1,8,32", daemons="1,4,8", periods=10, period=1.0,
                               warmup=6.0, reader=False))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("rpc")
    r.add_argument("--agents", default="1,8,32")
    r.add_argument("--daemons", default="1,4,8")
    r.add_argument("--periods", type=int, default=10)
    r.add_argument("--period", type=float, default=1.0)
    r.add_argument("--warmup", type=float, default=6.0)
    r.add_argument("--reader", action="store_true",
                   help="the controller reads through build/spank/vgpu-slurm-read (the README's "
                        "deployment installs it) instead of squeue/sinfo")
    a = sub.add_parser("agent")
    a.add_argument("--seconds", type=float, default=60.0)
    a.add_argument("--period", type=float, default=5.0)
    a.add_argument("--reader", action="store_true",
                   help="configure slurm.reader (the agent itself reads no Slurm; kept so that "
                        "its config is the README's)")
    a.add_argument("--vendor", choices=["nvidia", "amd"], default="nvidia",
                   help="amd: simulated AMD GPUs read through ROCm SMI")
    a.add_argument("--device-processes", type=int, default=None,
                   help="processes holding device memory, one per job round the GPUs "
                        "(default: 40 on AMD, 0 on NVIDIA as in the committed result)")
    c = sub.add_parser("capture")
    c.add_argument("--slurm-conf", required=True)
    c.add_argument("--out", required=True)
    k = sub.add_parser("controller")
    k.add_argument("--capture", default=str(REPO / "bench" / "results" / "capture"))
    k.add_argument("--nodes", type=int, default=10000)
    k.add_argument("--running-per-node", type=int, default=4)
    k.add_argument("--jobs", type=int, default=100000)
    k.add_argument("--repeats", type=int, default=4)
    k.add_argument("--read", choices=["reader", "formatted", "json"], default="reader",
                   help="the controller's job read (reader: vgpu-slurm-read, what it uses "
                        "where installed; formatted: squeue -O, its fallback)")
    k.add_argument("--job-table-refresh", type=float, default=30.0,
                   help="reader only: slurm.job_table_refresh_seconds (30: Slurm 24.05+, job "
                        "states between full reads; 0: a full read every cycle, as on "
                        "22.05-23.11)")
    k.add_argument("--churn", type=float, default=1.0,
                   help="%% of the running jobs replaced by new ones between two reads "
                        "(reader only: unchanged lines reuse the last read's records)")
    q = sub.add_parser("reader")
    q.add_argument("--jobs", type=int, default=20000)
    q.add_argument("--nodes", type=int, default=0,
                   help="node entries added to the 2 real ones (DOWN, no slurmd), for the "
                        "node read at scale")
    q.add_argument("--out", default="", help="save the program's output here (reader-sample.txt)")
    n = sub.add_parser("sinfo")
    n.add_argument("--nodes", type=int, default=10000)
    args = ap.parse_args()
    result = {"rpc": rpc, "agent": agent, "capture": capture, "controller": controller,
              "sinfo": sinfo_at, "reader": reader_at}[args.what](args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
