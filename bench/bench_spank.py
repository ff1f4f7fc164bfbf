"""Step-launch latency added by the vgpu SPANK plugin, on the real loopback Slurm cluster.

One cluster (contrib/devcluster), nodes n1/n2 with two simulated 10-slice GPUs each. A batch
job runs `srun true` STEPS times back to back and records each step's wall time (date +%s%N
around srun, inside the allocation, so only step launch is measured). Four variants on the
same cluster: plugin loaded or not (plugstack.conf rewritten and slurmd restarted between
runs), job with or without --gres=vgpu:2; the variants alternate over
several rounds so that load from other work on the host falls on all of them alike. A second
measurement times a whole `srun --gres=vgpu:1 true` job from outside an allocation (job prolog
included, where the plugin asks slurmctld for the allocation and places the slices).

On a small shared host the end-to-end differences are dominated by noise, so the plugin's own
time is also read from its debug log lines ("step setup took N us", "job prolog took N us";
the cluster runs with SlurmdDebug=debug): that is the latency it adds to a launch, besides
loading the plugin (~0.3 ms, measured with dlopen). Needs root.

    python3 bench/run.py spank        # -> bench/results/spank.json
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "contrib" / "devcluster"))
from devcluster import SlurmCluster, missing_binaries  # noqa: E402

PLUGIN = ROOT / "build" / "spank" / "vgpu.so"
REAL_HOOK = ROOT / "build" / "native" / "libvgpu.so"
ROUNDS = 4             # variants alternate each round, so drift on a busy host hits all alike
STEPS_PER_ROUND = 14   # `srun true` steps per variant per round (first 2 dropped: warm-up)
JOBS_PER_ROUND = 4     # whole `srun --gres=vgpu:1 true` jobs per variant per round

STEP_LOOP = """#!/bin/bash
for i in $(seq {steps}); do
  t0=$(date +%s%N); srun -n1 true; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 ))
done > "{out}"
"""


def _prepare(base: Path) -> tuple[Path, str]:
    subprocess.run(["make", "-s", "-C", str(ROOT / "spank"), f"BUILD={PLUGIN.parent}"],
                   check=True, capture_output=True, timeout=300)
    hook = REAL_HOOK
    if not hook.exists():
        src = base / "standin.c"
        src.write_text("void vgpu_standin_hook(void);\nvoid vgpu_standin_hook(void) {}\n")
        hook = base / "standin.so"
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(hook), str(src)], check=True,
                       timeout=60)
    for node in ("n1", "n2"):
        inv = base / "inv" / f"{node}.conf"
        inv.parent.mkdir(parents=True, exist_ok=True)
        inv.write_text(
            f"version=1\nnode={node}\n" + "".join(
                f"gpu index={i} uuid=GPU-{node}-{i} slices=10 slice_bytes=1073741824 "
                f"slice_permille=100 memory_bytes=10737418240 model=Simulated\n"
                for i in range(2)))
    plugstack = (f"required {PLUGIN} runtime_dir={base}/rt/%n inventory={base}/inv/%n.conf "
                 f"hook={hook} on_error=deny\n")
    return hook, plugstack


def _set_plugstack(cluster: SlurmCluster, content: str) -> None:
    """Load or unload the plugin. slurmd decides at start whether a SPANK job prolog exists,
    so it is restarted; srun and slurmstepd read plugstack.conf afresh anyway."""
    (cluster.conf_dir / "plugstack.conf").write_text(content)
    cluster.restart("slurmd")


def _step_latencies(cluster: SlurmCluster, gres: list[str], tag: str) -> list[float]:
    out = cluster.jobs_dir / f"steps-{tag}.txt"
    script = cluster.jobs_dir / f"steps-{tag}.sh"
    script.write_text(STEP_LOOP.format(steps=STEPS_PER_ROUND, out=out))
    script.chmod(0o755)
    jobid = cluster.sbatch("-w", "n1", *gres, "-o", "/dev/null", str(script))
    cluster.wait_job(jobid, timeout=600)
    samples = [int(x) / 1000.0 for x in out.read_text().split()]
    return samples[2:]  # the first steps warm caches (plugin load, page cache)


def _job_latencies(cluster: SlurmCluster, gres: list[str]) -> list[float]:
    samples = []
    for _ in range(JOBS_PER_ROUND):
        t0 = time.perf_counter()
        cluster.run("srun", "-w", "n2", *gres, "true", timeout=120)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples[1:]


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "n": len(ordered),
    }


def _plugin_times(cluster: SlurmCluster, what: str, tail: str = "") -> list[float]:
    """Milliseconds from the plugin's "<what> took N us<tail>" debug lines in slurmd's logs."""
    pattern = re.compile(rf"vgpu: {what} took (\d+) us{re.escape(tail)}")
    values: list[float] = []
    for node in cluster.node_names:
        text = cluster.log_path(f"slurmd-{node}").read_text(errors="replace")
        values += [int(m.group(1)) / 1000.0 for m in pattern.finditer(text)]
    return values


def run() -> dict[str, object]:
    if os.geteuid() != 0 or missing_binaries():
        return {"skipped": "needs root and Debian's Slurm packages (see contrib/devcluster)"}
    base = Path(tempfile.mkdtemp(prefix="vgpu-bench-spank-"))
    base.chmod(0o755)
    hook, plugstack = _prepare(base)
    cluster = SlurmCluster(debug="debug")
    result: dict[str, object] = {
        "hook": "build/native/libvgpu.so" if hook == REAL_HOOK else "do-nothing stand-in",
        "rounds": ROUNDS,
    }
    try:
        cluster.start()
        samples: dict[str, list[float]] = {}
        for _ in range(ROUNDS):
            for plugin in (False, True):
                _set_plugstack(cluster, plugstack if plugin else "")
                for gres in ([], ["--gres=vgpu:2"]):
                    tag = ("plugin" if plugin else "noplugin") + ("_vgpu" if gres else "_plain")
                    samples.setdefault(f"step_{tag}", []).extend(
                        _step_latencies(cluster, gres, tag))
                tag = "plugin" if plugin else "noplugin"
                samples.setdefault(f"job_{tag}_vgpu", []).extend(
                    _job_latencies(cluster, ["--gres=vgpu:1"]))
        variants = {name: _summary(values) for name, values in samples.items()}
        result.update(variants)
        result["plugin_step_setup_vgpu_job"] = _summary(
            _plugin_times(cluster, "step setup", " (vgpu job)"))
        result["plugin_step_setup_plain_job"] = _summary(
            _plugin_times(cluster, "step setup", " (plain job)"))
        result["plugin_job_prolog"] = _summary(_plugin_times(cluster, "job prolog"))

        def added(a: str, b: str) -> float:
            return round(variants[a]["median_ms"] - variants[b]["median_ms"], 2)

        result["added_step_latency_vgpu_job_median_ms"] = added("step_plugin_vgpu",
                                                                "step_noplugin_vgpu")
        result["added_step_latency_plain_job_median_ms"] = added("step_plugin_plain",
                                                                 "step_noplugin_plain")
        result["added_job_latency_vgpu_median_ms"] = added("job_plugin_vgpu",
                                                           "job_noplugin_vgpu")
        result["goal_added_step_median_ms"] = 10.0
    finally:
        cluster.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
