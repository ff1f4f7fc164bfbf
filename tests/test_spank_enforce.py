"""`sbatch --gres=vgpu:N` end to end and enforced: the real cluster, the SPANK plugin, the hook
(build/native/libvgpu.so) and CUDA driver-API programs on the simulated GPU.

Each node has two simulated 10 GiB GPUs cut into ten 1 GiB slices. Jobs run
build/native/tests/vgpu_probe, which prints one line per CUDA call ("alloc rc=0 ...").
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from conftest import REQUIRE_NATIVE, skip_or_fail
from slurm_cluster import SlurmCluster, ensure_user, require_slurm_cluster
from spank_cluster import SLICE_BYTES, SpankSite, spank_cluster, wait_for
from spank_helpers import ROOT, gpu_uuid

pytestmark = [pytest.mark.slurm, pytest.mark.native, pytest.mark.slow]

USER = "vgpu-test"
HOOK = ROOT / "build" / "native" / "libvgpu.so"
FAKEGPU = ROOT / "build" / "fakegpu"
PROBE = ROOT / "build" / "native" / "tests" / "vgpu_probe"
GIB = 1 << 30

# Run the probe with the given commands, then hold its allocations until released.
PROBE_SCRIPT = """#!/bin/bash
{probe} {cmds} hold > "{jobs}/$SLURM_JOB_ID.probe" 2>&1 &
pid=$!
for i in $(seq 1200); do [ -e "{jobs}/$SLURM_JOB_ID.release" ] && break; sleep 0.05; done
kill $pid; wait $pid
exit 0
"""


@pytest.fixture(scope="module")
def cluster_site() -> Iterator[tuple[SlurmCluster, SpankSite]]:
    require_slurm_cluster()
    for path in (HOOK, PROBE, FAKEGPU / "libcuda.so.1", FAKEGPU / "fakegpu-ctl"):
        if not path.exists():
            skip_or_fail(f"{path} not built (make)", REQUIRE_NATIVE)
    ensure_user(USER)
    with spank_cluster(hook=HOOK) as (cluster, site):
        for node in site.nodes:
            state = site.base / "fake" / f"{node}.state"
            state.parent.mkdir(mode=0o755, exist_ok=True)
            uuids = ",".join(gpu_uuid(node, i) for i, _ in site.gpus)
            subprocess.run([str(FAKEGPU / "fakegpu-ctl"), "create", "--state", str(state),
                            "--count", str(len(site.gpus)), "--mem", "10G", "--uuid", uuids,
                            # contexts free: these tests check caps in round numbers (the
                            # hook's own tests charge 512 MiB contexts, the default)
                            "--ctx-overhead", "0"],
                           check=True, capture_output=True, timeout=30)
            state.chmod(0o666)  # the simulated device is shared by every job user
        yield cluster, site


@pytest.fixture
def cluster(cluster_site: tuple[SlurmCluster, SpankSite]) -> SlurmCluster:
    return cluster_site[0]


@pytest.fixture
def site(cluster_site: tuple[SlurmCluster, SpankSite]) -> SpankSite:
    return cluster_site[1]


def export(site: SpankSite) -> str:
    # %n: the simulated machine of whichever node the job lands on
    return f"--export=ALL,FAKEGPU_STATE={site.base}/fake/%n.state,LD_LIBRARY_PATH={FAKEGPU}"


def device_used(site: SpankSite, node: str, index: int) -> int:
    out = subprocess.run([str(FAKEGPU / "fakegpu-dump"), "--state",
                          str(site.base / "fake" / f"{node}.state")],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    used: int = json.loads(out)["devices"][index]["memory_used"]
    return used


def submit_probe(cluster: SlurmCluster, site: SpankSite, cmds: str, *args: str) -> int:
    script = cluster.jobs_dir / f"probe-{abs(hash(cmds))}.sh"
    script.write_text(PROBE_SCRIPT.format(probe=PROBE, cmds=cmds, jobs=cluster.jobs_dir))
    script.chmod(0o755)
    return cluster.sbatch(export(site), "-o", f"{cluster.jobs_dir}/%j.out", *args,
                          str(script), user=USER)


def probe_lines(cluster: SlurmCluster, jobid: int) -> list[dict[str, str]]:
    """The probe's result lines once it holds ("hold ready")."""
    path = cluster.jobs_dir / f"{jobid}.probe"
    out = cluster.jobs_dir / f"{jobid}.out"
    wait_for(lambda: path.exists() and "hold ready" in path.read_text(),
             f"job {jobid}'s probe to finish its calls "
             f"({out.read_text() if out.exists() else 'no output'})")
    lines = []
    for line in path.read_text().splitlines():
        words = line.split()
        if words and words[0] != "hold" and all("=" in w for w in words[1:]):
            lines.append({"cmd": words[0], **dict(w.split("=", 1) for w in words[1:])})
    return lines


def nth(lines: list[dict[str, str]], cmd: str, n: int = 0) -> dict[str, str]:
    return [line for line in lines if line["cmd"] == cmd][n]


def release(cluster: SlurmCluster, site: SpankSite, jobid: int) -> None:
    (cluster.jobs_dir / f"{jobid}.release").touch()
    cluster.wait_job(jobid, timeout=60)
    wait_for(lambda: not any(site.job_dir(n, jobid).exists() for n in site.nodes),
             f"job {jobid}'s files to be removed")


def test_three_slices_see_thirty_percent_and_cannot_exceed_it(cluster: SlurmCluster,
                                                              site: SpankSite) -> None:
    jobid = submit_probe(cluster, site, "info total alloc 2G info alloc 1536M alloc 1G info",
                         "-w", "n1", "--gres=vgpu:3")
    lines = probe_lines(cluster, jobid)
    assert nth(lines, "total")["total"] == str(3 * SLICE_BYTES)  # 30% of the 10 GiB card
    assert nth(lines, "info")["total"] == str(3 * SLICE_BYTES)
    assert nth(lines, "alloc", 0)["rc"] == "0"                   # 2 GiB: within the cap
    assert nth(lines, "info", 1)["free"] == str(1 * GIB)
    assert nth(lines, "alloc", 1)["rc"] == "2"                   # 2 + 1.5 GiB > 3: OOM
    assert nth(lines, "alloc", 2)["rc"] == "0"                   # 2 + 1 GiB == 3: fits
    assert nth(lines, "info", 2)["free"] == "0"
    gpu = site.limits("n1", jobid).gpus[0].physical_index
    assert device_used(site, "n1", gpu) == 3 * GIB  # ground truth: what the driver holds
    release(cluster, site, jobid)
    assert device_used(site, "n1", gpu) == 0


def test_two_half_jobs_share_one_gpu_each_with_its_own_cap(cluster: SlurmCluster,
                                                           site: SpankSite) -> None:
    a = submit_probe(cluster, site, "total alloc 4G alloc 2G", "-w", "n2", "--gres=vgpu:5")
    lines_a = probe_lines(cluster, a)
    b = submit_probe(cluster, site, "total alloc 4G alloc 2G", "-w", "n2", "--gres=vgpu:5")
    lines_b = probe_lines(cluster, b)
    c = submit_probe(cluster, site, "total alloc 4G", "-w", "n2", "--gres=vgpu:5")
    lines_c = probe_lines(cluster, c)
    gpus = [site.limits("n2", j).gpus[0].physical_index for j in (a, b, c)]
    assert gpus[0] == gpus[1] != gpus[2]  # a third half-GPU job goes to the other card
    for lines in (lines_a, lines_b):
        assert nth(lines, "total")["total"] == str(5 * GIB)
        assert nth(lines, "alloc", 0)["rc"] == "0"
        assert nth(lines, "alloc", 1)["rc"] == "2"  # 4 + 2 GiB > its 5 GiB
    assert nth(lines_c, "alloc")["rc"] == "0"
    assert device_used(site, "n2", gpus[0]) == 8 * GIB  # both jobs on one card
    assert device_used(site, "n2", gpus[2]) == 4 * GIB
    for jobid in (a, b, c):
        release(cluster, site, jobid)


def test_srun_steps_inside_a_job_are_capped_too(cluster: SlurmCluster,
                                               site: SpankSite) -> None:
    script = cluster.jobs_dir / "step-probe.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"srun --gres=vgpu:3 {PROBE} total alloc 4G alloc 3G\n"
        f"srun --gres=vgpu:1 {PROBE} total alloc 2G alloc 1G\n"
    )
    script.chmod(0o755)
    jobid = cluster.sbatch(export(site), "-w", "n1", "--gres=vgpu:3", "-o",
                           f"{cluster.jobs_dir}/%j.out", str(script), user=USER)
    cluster.wait_job(jobid, timeout=60)
    out = (cluster.jobs_dir / f"{jobid}.out").read_text()
    totals = [line for line in out.splitlines() if line.startswith("total ")]
    allocs = [line.split()[1] for line in out.splitlines() if line.startswith("alloc ")]
    # the whole job's 3 slices, then a step holding 1 of them: its own 1 GiB cap
    assert totals == [f"total rc=0 total={3 * GIB}", f"total rc=0 total={GIB}"]
    assert allocs == ["rc=2", "rc=0", "rc=2", "rc=0"]


def test_a_job_without_vgpu_sees_the_whole_machine(cluster: SlurmCluster,
                                                   site: SpankSite) -> None:
    result = cluster.run("srun", export(site), "-w", "n1", str(PROBE), "total", "alloc", "6G",
                         user=USER, timeout=60)
    assert f"total rc=0 total={10 * GIB}" in result.stdout
    assert "alloc rc=0" in result.stdout


def test_cancelled_job_frees_its_slices_and_memory(cluster: SlurmCluster,
                                                   site: SpankSite) -> None:
    jobid = submit_probe(cluster, site, "alloc 9G", "-w", "n2", "--gres=vgpu:10")
    assert nth(probe_lines(cluster, jobid), "alloc")["rc"] == "0"
    gpu = site.limits("n2", jobid).gpus[0].physical_index
    cluster.run("scancel", str(jobid))
    wait_for(lambda: not site.job_dir("n2", jobid).exists(), "the epilog to clean up")
    assert all(job != jobid for job, _, _ in site.placements("n2"))
    wait_for(lambda: device_used(site, "n2", gpu) == 0, "the killed job's memory to return")
    again = submit_probe(cluster, site, "total alloc 9G", "-w", "n2", "--gres=vgpu:10")
    assert nth(probe_lines(cluster, again), "alloc")["rc"] == "0"
    release(cluster, site, again)
