"""`sbatch --gres=vgpu:N` on a cluster with a simulated AMD node beside an NVIDIA one (issue 17).

n1 has two simulated NVIDIA GPUs, n2 two simulated AMD ones (fake libamdhip64 and ROCm SMI on
an AMD state file; docs/fakegpu.md), each cut into ten 1 GiB slices. n2's inventory has
`vendor=amd` and AMD UUIDs ("GPU-" and ROCm SMI's 16-hex-digit unique id). The plugin places
a job's slices on one GPU of the node's vendor and makes it visible with that vendor's
variable: ROCR_VISIBLE_DEVICES (the GPUs' UUIDs) for AMD, CUDA_VISIBLE_DEVICES for NVIDIA.
Jobs preload the real hook (build/native/libvgpu.so). Asserted: what the plugin controls
(placement, limits file, environment, which device a program sees), and issue 17's
acceptance on the AMD node by the simulated device's ground truth: a hipcc-built program sees
its 3 slices as the device and cannot pass them (also 4 racing processes), 7- and 3-slice jobs
split the card 70/30, and a step that sheds the hook is cancelled by the node's daemon.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REQUIRE_AMD, skip_or_fail
from slurm_cluster import SlurmCluster, ensure_user, require_slurm_cluster
from spank_cluster import FAKEGPU, SLICE_BYTES, SpankSite, spank_cluster, wait_for
from spank_helpers import ROOT, amd_gpu_uuid, gpu_uuid
from test_daemon_e2e import Daemon

pytestmark = [pytest.mark.slurm, pytest.mark.native, pytest.mark.slow]

USER = "vgpu-test"
HOOK = ROOT / "build" / "native" / "libvgpu.so"
HIP_BASIC = FAKEGPU / "test-hip-basic"
# a C driver-API program: the NVIDIA side needs no nvcc (bare Debian has none)
DRV_API = FAKEGPU / "test-drv-api"
RSMI = FAKEGPU / "test-rsmi"
HIP_PROBE = FAKEGPU / "test-hip-hook-probe"  # scripted HIP calls (hip_hook_probe.cpp)
DUMP = FAKEGPU / "fakegpu-dump"  # the simulated device's ground truth
MIB = 1 << 20
HIP_OUT_OF_MEMORY = 2  # hipErrorOutOfMemory
ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
            "LD_PRELOAD", "VGPU_LIMITS", "VGPU_STATE")

# Records the environment and what a HIP (on AMD) or CUDA driver API (on NVIDIA) program sees, then
# holds the slices until released. The submit environment carries stale visibility values
# (as from a login shell or an enclosing allocation): the plugin must replace them.
SCRIPT = """#!/bin/bash
env | grep -E '^({keys})=' | sort > "{jobs}/$SLURM_JOB_ID.env.tmp"
mv "{jobs}/$SLURM_JOB_ID.env.tmp" "{jobs}/$SLURM_JOB_ID.env"
if [ "$(hostname)" = n2 ]; then
    {hip} props > "{jobs}/$SLURM_JOB_ID.props" 2>&1
else
    {drv} basic > "{jobs}/$SLURM_JOB_ID.props" 2>&1
fi
echo "rc=$?" >> "{jobs}/$SLURM_JOB_ID.props"
for i in $(seq 1200); do [ -e "{jobs}/$SLURM_JOB_ID.release" ] && exit 0; sleep 0.05; done
exit 3
"""


@pytest.fixture(scope="module")
def cluster_site() -> Iterator[tuple[SlurmCluster, SpankSite]]:
    require_slurm_cluster()
    for path in (HOOK, HIP_BASIC, HIP_PROBE, DUMP, DRV_API, RSMI, FAKEGPU / "libamdhip64.so.5",
                 FAKEGPU / "librocm_smi64.so.1", FAKEGPU / "fakegpu-ctl"):
        if not path.exists():
            skip_or_fail(f"{path} not built (make; the AMD parts need hipcc, "
                         "libamdhip64-dev and librocm-smi-dev)", REQUIRE_AMD)
    ensure_user(USER)
    with spank_cluster(hook=HOOK, site_vendors={"n2": "amd"}) as (cluster, site):
        site.create_fake_gpus(mem="10G")
        yield cluster, site


@pytest.fixture
def cluster(cluster_site: tuple[SlurmCluster, SpankSite]) -> SlurmCluster:
    return cluster_site[0]


@pytest.fixture
def site(cluster_site: tuple[SlurmCluster, SpankSite]) -> SpankSite:
    return cluster_site[1]


def submit(cluster: SlurmCluster, site: SpankSite, *args: str) -> int:
    script = cluster.jobs_dir / "amd-probe.sh"
    if not script.exists():
        script.write_text(SCRIPT.format(keys="|".join(ENV_KEYS), jobs=cluster.jobs_dir,
                                        hip=HIP_BASIC, drv=DRV_API))
        script.chmod(0o755)
    stale = "CUDA_VISIBLE_DEVICES=7,HIP_VISIBLE_DEVICES=5,ROCR_VISIBLE_DEVICES=6"
    return cluster.sbatch(f"{site.fake_export()},{stale}", "-o", f"{cluster.jobs_dir}/%j.out",
                          *args, str(script), user=USER)


def job_env(cluster: SlurmCluster, jobid: int) -> dict[str, str]:
    path = cluster.jobs_dir / f"{jobid}.env"
    out = cluster.jobs_dir / f"{jobid}.out"
    wait_for(path.exists, f"job {jobid} to start and record its environment "
             f"({out.read_text() if out.exists() else 'no output yet'})")
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def job_props(cluster: SlurmCluster, jobid: int) -> list[str]:
    path = cluster.jobs_dir / f"{jobid}.props"
    wait_for(lambda: path.exists() and "rc=" in path.read_text(),
             f"job {jobid}'s program to report its devices")
    return path.read_text().splitlines()


def release(cluster: SlurmCluster, site: SpankSite, jobid: int) -> None:
    (cluster.jobs_dir / f"{jobid}.release").touch()
    cluster.wait_job(jobid, timeout=60)
    wait_for(lambda: not any(site.job_dir(n, jobid).exists() for n in site.nodes)
             and not any(job == jobid for n in site.nodes for job, _, _ in site.placements(n)),
             f"job {jobid}'s files and placements to be removed")


def rsmi_bus(site: SpankSite, node: str, index: int) -> str:
    """PCI bus id ("0000:11:00.0") of physical GPU `index` as ROCm SMI reports it."""
    out = subprocess.run([str(RSMI), "devices"], check=True, capture_output=True, text=True,
                         timeout=30, env={"FAKEGPU_STATE": str(site.fake_state(node)),
                                          "LD_LIBRARY_PATH": str(FAKEGPU)}).stdout
    device = json.loads(out)["devices"][index]
    assert device["unique_id"] == int(amd_gpu_uuid(node, index)[4:], 16)
    bdf = int(device["bdfid"])
    return f"0000:{(bdf >> 8) & 0xff:02x}:{(bdf >> 3) & 0x1f:02x}.{bdf & 0x7}"


def test_inventories_name_each_nodes_vendor(site: SpankSite) -> None:
    amd = site.inventory("n2").read_text()
    assert f"uuid={amd_gpu_uuid('n2', 0)} " in amd and " vendor=amd model=" in amd
    nvidia = site.inventory("n1").read_text()
    assert f"uuid={gpu_uuid('n1', 0)} " in nvidia and "vendor=" not in nvidia


def test_three_slices_on_the_amd_node(cluster: SlurmCluster, site: SpankSite) -> None:
    jobid = submit(cluster, site, "-w", "n2", "--gres=vgpu:3")
    try:
        env = job_env(cluster, jobid)
        rows = [(gpu, n) for job, gpu, n in site.placements("n2") if job == jobid]
        assert len(rows) == 1 and rows[0][1] == 3, site.placements("n2")
        index = rows[0][0]
        # the AMD runtime's variable, by UUID; no CUDA GPU, no stale HIP selection
        assert env["ROCR_VISIBLE_DEVICES"] == amd_gpu_uuid("n2", index)
        assert "CUDA_VISIBLE_DEVICES" not in env
        assert "HIP_VISIBLE_DEVICES" not in env
        assert env["LD_PRELOAD"].split(":")[0] == str(HOOK)
        assert env["VGPU_LIMITS"] == str(site.job_dir("n2", jobid) / "limits")
        limits = site.limits("n2", jobid)
        assert len(limits.gpus) == 1
        gpu = limits.gpus[0]
        assert gpu.uuid == amd_gpu_uuid("n2", index) == site.uuid("n2", index)
        assert (gpu.physical_index, gpu.slices) == (index, 3)
        assert gpu.memory_limit_bytes == 3 * SLICE_BYTES
        assert gpu.compute_guaranteed_permille == 300
        # a hipcc-built program in the job sees exactly the placed GPU
        props = job_props(cluster, jobid)
        assert props[-1] == "rc=0", props
        seen = json.loads(props[0])
        assert seen["count"] == 1, props
        assert seen["devices"][0]["bus"] == rsmi_bus(site, "n2", index)
        assert not list(site.runtime_dir("n1").glob(f"jobs/{jobid}"))
    finally:
        release(cluster, site, jobid)


def test_a_vgpu_job_on_the_nvidia_node_still_works(cluster: SlurmCluster,
                                                   site: SpankSite) -> None:
    jobid = submit(cluster, site, "-w", "n1", "--gres=vgpu:3")
    try:
        env = job_env(cluster, jobid)
        rows = [(gpu, n) for job, gpu, n in site.placements("n1") if job == jobid]
        assert len(rows) == 1 and rows[0][1] == 3
        index = rows[0][0]
        assert env["CUDA_VISIBLE_DEVICES"] == str(index)
        # n1 lists no AMD GPU: the plugin leaves AMD variables as they were
        assert env["ROCR_VISIBLE_DEVICES"] == "6" and env["HIP_VISIBLE_DEVICES"] == "5"
        gpu = site.limits("n1", jobid).gpus[0]
        assert (gpu.uuid, gpu.slices, gpu.memory_limit_bytes) == (
            gpu_uuid("n1", index), 3, 3 * SLICE_BYTES)
        props = job_props(cluster, jobid)
        assert props[-1] == "rc=0", props
        assert props[0].split()[1] == "devices=1", props
    finally:
        release(cluster, site, jobid)


def test_jobs_land_on_either_node_each_with_its_vendors_variable(
        cluster: SlurmCluster, site: SpankSite) -> None:
    # 20 slices fill a node: the second job must go to the other one; each spans its node's
    # two GPUs, which are of one vendor
    jobs = [submit(cluster, site, "--gres=vgpu:20") for _ in range(2)]
    try:
        envs = {job: job_env(cluster, job) for job in jobs}
        nodes = {job: cluster.job_info(job)["NodeList"] for job in jobs}
        assert sorted(nodes.values()) == ["n1", "n2"], nodes
        for job in jobs:
            env = envs[job]
            limits = site.limits(nodes[job], job)
            assert [(g.physical_index, g.slices) for g in limits.gpus] == [(0, 10), (1, 10)]
            assert [g.uuid for g in limits.gpus] == [site.uuid(nodes[job], i) for i in (0, 1)]
            if nodes[job] == "n2":
                assert env["ROCR_VISIBLE_DEVICES"] == ",".join(
                    amd_gpu_uuid("n2", i) for i in (0, 1))
                assert "CUDA_VISIBLE_DEVICES" not in env
                assert json.loads(job_props(cluster, job)[0])["count"] == 2
            else:
                assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
                assert job_props(cluster, job)[0].split()[1] == "devices=2"
    finally:
        for job in jobs:
            release(cluster, site, job)


def test_srun_steps_of_an_amd_job(cluster: SlurmCluster, site: SpankSite) -> None:
    jobs = cluster.jobs_dir
    script = jobs / "amd-steps.sh"
    script.write_text(
        "#!/bin/bash\n"
        'echo "batch rocr=$ROCR_VISIBLE_DEVICES cuda=${CUDA_VISIBLE_DEVICES-unset}"\n'
        "srun --gres=vgpu:1 bash -c 'echo \"one rocr=$ROCR_VISIBLE_DEVICES "
        f'limits=$VGPU_LIMITS\"; {HIP_BASIC} props | head -1 | sed \"s/^/one /\"\'\n'
        "srun --gres=vgpu:0 bash -c 'echo \"none rocr=[$ROCR_VISIBLE_DEVICES] "
        f'cuda=[$CUDA_VISIBLE_DEVICES]\"; {HIP_BASIC} props >/dev/null 2>&1; '
        "echo \"none rc=$?\"'\n"
    )
    script.chmod(0o755)
    jobid = cluster.sbatch(site.fake_export(), "-w", "n2", "--gres=vgpu:2", "-o",
                           f"{jobs}/%j.out", str(script), user=USER)
    cluster.wait_job(jobid, timeout=60)
    text = (jobs / f"{jobid}.out").read_text()
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        out.setdefault(key, []).append(rest)
    uuid = out["batch"][0].split()[0].removeprefix("rocr=")
    assert uuid.startswith("GPU-") and out["batch"] == [f"rocr={uuid} cuda=unset"], text
    # a step holding 1 of the job's 2 slices: the same GPU, its own smaller limits file
    assert out["one"][0] == (f"rocr={uuid} "
                             f"limits={site.job_dir('n2', jobid) / 'step.0.limits'}"), text
    assert json.loads(out["one"][1])["count"] == 1, text
    # a step holding none sees no GPU: ROCr's list and CUDA's both empty
    assert out["none"] == ["rocr=[] cuda=[]", "rc=1"], text


def probe_lines(path: Path) -> dict[str, dict[str, str]]:
    """The probe's "<cmd> key=value ..." lines by command (the last of each)."""
    lines: dict[str, dict[str, str]] = {}
    for raw in path.read_text().splitlines():
        cmd, *tokens = raw.split()
        lines[cmd] = dict(t.partition("=")[::2] for t in tokens)
    return lines


def test_a_hip_program_in_an_amd_job_sees_its_slice_and_cannot_pass_it(
        cluster: SlurmCluster, site: SpankSite) -> None:
    """The issue's acceptance on the loopback cluster: 3 slices of a 10 GiB AMD card are a
    3 GiB device to a hipcc-built program; past that hipMalloc fails with
    hipErrorOutOfMemory, also for 4 processes racing for the rest, by the device's count."""
    jobs = cluster.jobs_dir
    script = jobs / "amd-caps.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"J={jobs}/$SLURM_JOB_ID\n"
        f"{HIP_PROBE} info alloc malloc 3073 > $J.single 2>&1\n"
        # four processes fill the cap in 64 MiB steps at once and hold what they got while
        # the simulated device is read
        f"for i in 1 2 3 4; do {HIP_PROBE} fill malloc 64 sleep 4000 > $J.fill$i 2>&1 & done\n"
        f"sleep 2; {DUMP} --state $FAKEGPU_STATE > $J.truth\n"
        "wait\n")
    script.chmod(0o755)
    jobid = cluster.sbatch(site.fake_export(), "-w", "n2", "--gres=vgpu:3", "-o",
                           f"{jobs}/%j.out", str(script), user=USER)
    cluster.wait_job(jobid, timeout=90)
    out = jobs / f"{jobid}.out"
    single = probe_lines(jobs / f"{jobid}.single")
    assert single["info"]["count"] == "1", single
    assert int(single["info"]["total"]) == 3 * SLICE_BYTES, single
    assert int(single["info"]["devtotal"]) == 3 * SLICE_BYTES, single
    assert int(single["alloc"]["rc"]) == HIP_OUT_OF_MEMORY, single
    fills = [probe_lines(jobs / f"{jobid}.fill{i}")["fill"] for i in range(1, 5)]
    assert all(int(f["rc"]) == HIP_OUT_OF_MEMORY for f in fills), fills
    granted = sum(int(f["n"]) for f in fills) * 64 * MIB
    truth = json.loads((jobs / f"{jobid}.truth").read_text())
    used = max(d["memory_used"] for d in truth["devices"])
    assert granted <= 3 * SLICE_BYTES and used <= 3 * SLICE_BYTES, (granted, used, fills)
    # the race leaves at most one 64 MiB step per process unclaimed
    assert granted > 3 * SLICE_BYTES - 4 * 64 * MIB, (granted, fills, out.read_text())


def test_two_amd_jobs_of_7_and_3_slices_split_the_card_70_30(
        cluster: SlurmCluster, site: SpankSite) -> None:
    """Two jobs on one simulated AMD card, both launching kernels flat out: the device's own
    per-process busy time splits 70/30 within 3 points."""
    jobs = cluster.jobs_dir
    script = jobs / "amd-spin.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"J={jobs}/$SLURM_JOB_ID\n"
        "echo $$ > $J.pid.tmp; mv $J.pid.tmp $J.pid\n"
        "for i in $(seq 1200); do [ -e $J.go ] && break; sleep 0.05; done\n"
        f"exec {HIP_PROBE} spin launch 2000000 6 > $J.spin 2>&1\n")
    script.chmod(0o755)
    ids = [cluster.sbatch(site.fake_export(), "-w", "n2", f"--gres=vgpu:{n}", "-o",
                          f"{jobs}/%j.out", str(script), user=USER) for n in (7, 3)]
    try:
        for jobid in ids:
            wait_for((jobs / f"{jobid}.pid").exists, f"job {jobid} to start")
        gpus = {gpu for job, gpu, _ in site.placements("n2") if job in ids}
        assert len(gpus) == 1, site.placements("n2")  # best fit: 3 slices fill the 7's card
        pids = [int((jobs / f"{jobid}.pid").read_text()) for jobid in ids]
        t0 = time.monotonic_ns()
        for jobid in ids:
            (jobs / f"{jobid}.go").touch()
        # measure after both have started and the shares settled, before either ends
        time.sleep(4.6)
        dump = subprocess.run([str(DUMP), "--state", str(site.fake_state("n2")), "--from-ns",
                               str(t0 + 1_500_000_000), "--to-ns", str(t0 + 4_500_000_000)],
                              check=True, capture_output=True, text=True, timeout=30)
        device = json.loads(dump.stdout)["devices"][gpus.pop()]
        busy = {int(p["pid"]): int(p["busy_window_ns"]) for p in device["processes"]}
        total = sum(busy.get(pid, 0) for pid in pids) or 1
        shares = [100.0 * busy.get(pid, 0) / total for pid in pids]
        assert shares[0] == pytest.approx(70, abs=3), (shares, busy, pids)
        assert shares[1] == pytest.approx(30, abs=3), (shares, busy, pids)
    finally:
        for jobid in ids:
            (jobs / f"{jobid}.go").touch()
        for jobid in ids:
            cluster.wait_job(jobid, timeout=60)
    for jobid in ids:
        assert probe_lines(jobs / f"{jobid}.spin")["spin"]["rc"] == "0"


def test_a_hip_step_that_sheds_the_hook_is_stopped_from_the_root_side(
        cluster: SlurmCluster, site: SpankSite) -> None:
    """The job's user drops LD_PRELOAD and launches kernels flat out on its 1-slice share of an
    AMD card: the node's daemon measures the process's device time through ROCm SMI (the
    occupancy poller) and cancels the step, as the NVIDIA backstop does (test_adversarial)."""
    # `vgpu daemon` for n2 with the shipped backstop: its inventory says vendor=amd, so it
    # reads the simulated ROCm SMI
    daemon = Daemon(site, site.fake_state("n2"), cluster, "", node="n2")
    jobs = cluster.jobs_dir
    try:
        # the device source is up: ROCm SMI answered (the metric keeps NVML's name)
        wait_for(lambda: "vgpu_daemon_nvml_up 1.0" in daemon.metrics()
                 or daemon.proc.poll() is not None, "the daemon and ROCm SMI", 30)
        assert daemon.proc.poll() is None, daemon.log_text()
        script = jobs / "amd-strip.sh"
        script.write_text(f"#!/bin/bash\nenv -u LD_PRELOAD {HIP_PROBE} spin launch 2000000 90 "
                          f"> {jobs}/$SLURM_JOB_ID.strip 2>&1\n")
        script.chmod(0o755)
        jobid = cluster.sbatch(site.fake_export(), "-w", "n2", "--gres=vgpu:1", "-o",
                               f"{jobs}/%j.out", str(script), user=USER)
        try:
            # 10 reads (about 2 s) make the first figure, then one period and scancel
            assert cluster.wait_job(jobid, states=("CANCELLED",), timeout=45) == "CANCELLED"
            assert f"job {jobid} kept GPU" in daemon.log_text(), daemon.log_text()
        finally:
            cluster.run("scancel", str(jobid), check=False)
            cluster.wait_job(jobid, states=("CANCELLED", "COMPLETED", "FAILED"), timeout=60)
    finally:
        daemon.stop()


def test_amd_job_files_are_gone_after_the_job(cluster: SlurmCluster, site: SpankSite) -> None:
    jobid = submit(cluster, site, "-w", "n2", "--gres=vgpu:1")
    job_env(cluster, jobid)
    release(cluster, site, jobid)
    assert not Path(site.job_dir("n2", jobid)).exists()
