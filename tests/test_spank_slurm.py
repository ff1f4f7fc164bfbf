"""End-to-end tests of the vgpu SPANK plugin on the real loopback Slurm cluster.

Placement, per-job files, task environment, steps, arrays, options, cleanup and accounting.
Enforcement on the simulated GPU is in tests/test_spank_enforce.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, ensure_user, parse_tres, require_slurm_cluster
from spank_cluster import SLICE_BYTES, SpankSite, spank_cluster, wait_for
from spank_helpers import SHARE_BURST, SHARE_GUARANTEED, decode_limits

pytestmark = [pytest.mark.slurm, pytest.mark.native, pytest.mark.slow]

USER = "vgpu-test"
ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "LD_PRELOAD", "VGPU_LIMITS", "VGPU_STATE", "SLURMD_NODENAME")

# A batch script that records its environment, then holds its slices until released.
HOLD_SCRIPT = """#!/bin/bash
env | grep -E '^({keys})=' | sort > "{jobs}/$SLURM_JOB_ID.env"
for i in $(seq 1200); do [ -e "{jobs}/$SLURM_JOB_ID.release" ] && exit 0; sleep 0.05; done
exit 3
"""


@pytest.fixture(scope="module")
def cluster_site() -> Iterator[tuple[SlurmCluster, SpankSite]]:
    require_slurm_cluster()
    ensure_user(USER)
    with spank_cluster() as cs:
        yield cs


@pytest.fixture
def cluster(cluster_site: tuple[SlurmCluster, SpankSite]) -> SlurmCluster:
    return cluster_site[0]


@pytest.fixture
def site(cluster_site: tuple[SlurmCluster, SpankSite]) -> SpankSite:
    return cluster_site[1]


def hold_script(cluster: SlurmCluster) -> Path:
    path = cluster.jobs_dir / "hold.sh"
    if not path.exists():
        path.write_text(HOLD_SCRIPT.format(keys="|".join(ENV_KEYS), jobs=cluster.jobs_dir))
        path.chmod(0o755)
    return path


def submit_hold(cluster: SlurmCluster, *args: str) -> int:
    return cluster.sbatch("-o", f"{cluster.jobs_dir}/%j.out", *args, str(hold_script(cluster)),
                          user=USER)


def job_env(cluster: SlurmCluster, jobid: int) -> dict[str, str]:
    path = cluster.jobs_dir / f"{jobid}.env"
    wait_for(lambda: path.exists() and path.read_text().endswith("\n"),
             f"job {jobid} to start and record its environment")
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def wait_cleaned(site: SpankSite, node: str, jobid: int) -> None:
    wait_for(lambda: not site.job_dir(node, jobid).exists()
             and all(job != jobid for job, _, _ in site.placements(node)),
             f"job {jobid}'s files and placement on {node} to be removed")


def release(cluster: SlurmCluster, site: SpankSite, jobid: int) -> None:
    """Let a held job finish, then wait for its epilog to free its slices everywhere."""
    (cluster.jobs_dir / f"{jobid}.release").touch()
    cluster.wait_job(jobid, timeout=60)
    for node in site.nodes:
        wait_cleaned(site, node, jobid)


def test_vgpu_job_gets_its_slices_files_and_environment(cluster: SlurmCluster,
                                                        site: SpankSite) -> None:
    uid, gid = ensure_user(USER)
    jobid = submit_hold(cluster, "-w", "n1", "--gres=vgpu:3")
    env = job_env(cluster, jobid)
    jobdir = site.job_dir("n1", jobid)
    assert env["VGPU_LIMITS"] == str(jobdir / "limits")
    assert env["VGPU_STATE"] == str(jobdir / "state")
    assert env["LD_PRELOAD"].split(":")[0] == str(site.hook)
    assert env["SLURMD_NODENAME"] == "n1"
    lim = site.limits("n1", jobid)
    assert (lim.job_id, lim.uid, lim.share_policy) == (jobid, uid, SHARE_GUARANTEED)
    assert len(lim.gpus) == 1
    gpu = lim.gpus[0]
    assert env["CUDA_VISIBLE_DEVICES"] == str(gpu.physical_index)
    assert gpu.slices == 3 and gpu.memory_limit_bytes == 3 * SLICE_BYTES
    assert gpu.compute_guaranteed_permille == gpu.compute_limit_permille == 300
    # root-owned dir and limits; the state file is the job user's alone, and empty
    for path, mode, owner in ((jobdir, 0o755, 0), (jobdir / "limits", 0o644, 0),
                              (jobdir / "state", 0o600, uid)):
        st = path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (mode, owner), path
    assert (jobdir / "state").stat().st_gid == gid and (jobdir / "state").stat().st_size == 0
    assert (jobid, gpu.physical_index, 3) in site.placements("n1")
    # the placement is visible to accounting through the job's AdminComment
    token = f"vgpu:n1=gpu{gpu.physical_index}:3"
    assert token in cluster.job_info(jobid)["AdminComment"]
    release(cluster, site, jobid)
    wait_cleaned(site, "n1", jobid)

    def accounted() -> bool:
        out = cluster.run("sacct", "-n", "-X", "-P", "-j", str(jobid), "-o", "AdminComment",
                          timeout=15).stdout
        return token in out

    wait_for(accounted, "sacct to show the placement in AdminComment")


def test_job_without_vgpu_is_untouched(cluster: SlurmCluster, site: SpankSite) -> None:
    jobid = submit_hold(cluster, "-w", "n2")
    env = job_env(cluster, jobid)
    assert not {"VGPU_LIMITS", "VGPU_STATE", "CUDA_VISIBLE_DEVICES", "LD_PRELOAD"} & set(env)
    assert not site.job_dir("n2", jobid).exists()
    release(cluster, site, jobid)
    assert all(job != jobid for job, _, _ in site.placements("n2"))


def test_half_gpu_jobs_share_a_card_and_the_third_takes_the_next(cluster: SlurmCluster,
                                                                 site: SpankSite) -> None:
    jobs = [submit_hold(cluster, "-w", "n1", "--gres=vgpu:5") for _ in range(3)]
    envs = [job_env(cluster, j) for j in jobs]
    gpus = sorted(env["CUDA_VISIBLE_DEVICES"] for env in envs)
    assert gpus == ["0", "0", "1"]
    for jobid, env in zip(jobs, envs, strict=True):
        lim = site.limits("n1", jobid)
        assert [(g.physical_index, g.slices, g.memory_limit_bytes) for g in lim.gpus] == [
            (int(env["CUDA_VISIBLE_DEVICES"]), 5, 5 * SLICE_BYTES)]
        assert env["VGPU_LIMITS"] != envs[0]["VGPU_LIMITS"] or jobid == jobs[0]
    for jobid in jobs:
        release(cluster, site, jobid)


def test_best_fit_puts_a_small_job_beside_a_big_one(cluster: SlurmCluster,
                                                    site: SpankSite) -> None:
    big = submit_hold(cluster, "-w", "n1", "--gres=vgpu:7")
    big_gpu = job_env(cluster, big)["CUDA_VISIBLE_DEVICES"]
    small = submit_hold(cluster, "-w", "n1", "--gres=vgpu:4")
    small_gpu = job_env(cluster, small)["CUDA_VISIBLE_DEVICES"]
    assert small_gpu != big_gpu  # only 3 left beside the 7
    fit = submit_hold(cluster, "-w", "n1", "--gres=vgpu:3")
    assert job_env(cluster, fit)["CUDA_VISIBLE_DEVICES"] == big_gpu  # exact fit, not 6 free
    for jobid in (big, small, fit):
        release(cluster, site, jobid)


def test_a_job_spans_gpus_only_when_no_single_gpu_has_room(cluster: SlurmCluster,
                                                           site: SpankSite) -> None:
    seven = submit_hold(cluster, "-w", "n1", "--gres=vgpu:7")
    job_env(cluster, seven)
    wide = submit_hold(cluster, "-w", "n1", "--gres=vgpu:12")
    env = job_env(cluster, wide)
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
    # 3 free beside the 7, 10 on the other card: most-free first, each GPU its own cap
    lim = site.limits("n1", wide)
    assert [(g.physical_index, g.slices, g.memory_limit_bytes) for g in lim.gpus] == [
        (0, 2, 2 * SLICE_BYTES), (1, 10, 10 * SLICE_BYTES)]
    assert "+" in cluster.job_info(wide)["AdminComment"]
    for jobid in (seven, wide):
        release(cluster, site, jobid)


def test_multi_node_job_gets_slices_on_every_node(cluster: SlurmCluster,
                                                  site: SpankSite) -> None:
    script = cluster.jobs_dir / "multinode.sh"
    script.write_text("#!/bin/bash\n"
                      "srun -N2 --ntasks-per-node=1 bash -c "
                      "'echo $SLURMD_NODENAME $CUDA_VISIBLE_DEVICES $VGPU_LIMITS'\n")
    script.chmod(0o755)
    jobid = cluster.sbatch("-N2", "--gres=vgpu:4", "-o", f"{cluster.jobs_dir}/%j.out",
                           str(script), user=USER)
    cluster.wait_job(jobid, timeout=60)
    seen = {}
    for line in (cluster.jobs_dir / f"{jobid}.out").read_text().splitlines():
        node, visible, limits = line.split()
        seen[node] = (visible, limits)
    assert set(seen) == {"n1", "n2"}
    for node, (_visible, limits) in seen.items():
        assert limits == str(site.job_dir(node, jobid) / "limits")
    comment = cluster.run("sacct", "-n", "-X", "-P", "-j", str(jobid), "-o", "AdminComment",
                          timeout=15).stdout
    wait_for(lambda: all(
        f"vgpu:{n}=" in cluster.run("sacct", "-n", "-X", "-P", "-j", str(jobid), "-o",
                                    "AdminComment", timeout=15).stdout for n in ("n1", "n2")),
        f"both nodes' placements in the AdminComment (now {comment!r})")
    for node in ("n1", "n2"):
        wait_cleaned(site, node, jobid)


def test_jobs_starting_together_never_overbook_a_node(cluster: SlurmCluster,
                                                     site: SpankSite) -> None:
    # eight 2-slice jobs (one per CPU of n1) start at once; their prologs race for the table.
    # Best fit packs the first card full before using the second, whatever the order.
    jobs = [submit_hold(cluster, "-w", "n1", "--gres=vgpu:2") for _ in range(8)]
    envs = [job_env(cluster, j) for j in jobs]
    assert sorted(env["CUDA_VISIBLE_DEVICES"] for env in envs) == ["0"] * 5 + ["1"] * 3
    per_gpu: dict[int, int] = {}
    for _job, gpu, slices in site.placements("n1"):
        per_gpu[gpu] = per_gpu.get(gpu, 0) + slices
    assert per_gpu == {0: 10, 1: 6}
    for jobid in jobs:
        release(cluster, site, jobid)


def test_srun_steps_inside_a_batch_job(cluster: SlurmCluster, site: SpankSite) -> None:
    jobs = cluster.jobs_dir
    script = jobs / "steps.sh"
    script.write_text(
        "#!/bin/bash\n"
        "echo one $(srun --gres=vgpu:1 bash -c 'printenv CUDA_VISIBLE_DEVICES VGPU_LIMITS; "
        f"cp $VGPU_LIMITS {jobs}/$SLURM_JOB_ID.step0')\n"
        "echo all $(srun printenv CUDA_VISIBLE_DEVICES VGPU_LIMITS)\n"
        "echo none \"[$(srun --gres=vgpu:0 printenv CUDA_VISIBLE_DEVICES)]\" "
        "$(srun --gres=vgpu:0 printenv VGPU_LIMITS || echo unset)\n"
        "echo left $(ls $(dirname $VGPU_LIMITS))\n"
    )
    script.chmod(0o755)
    jobid = cluster.sbatch("-w", "n1", "--gres=vgpu:2", "-o", f"{jobs}/%j.out",
                           str(script), user=USER)
    cluster.wait_job(jobid, timeout=60)
    out = dict(line.split(" ", 1) for line in
               (jobs / f"{jobid}.out").read_text().splitlines() if " " in line)
    limits = str(site.job_dir("n1", jobid) / "limits")
    # a step holding 1 of the job's 2 slices runs under its own, smaller limits file
    assert out["one"].split()[1] == str(site.job_dir("n1", jobid) / "step.0.limits")
    step = decode_limits((jobs / f"{jobid}.step0").read_bytes())
    assert (step.job_id, [(g.slices, g.memory_limit_bytes) for g in step.gpus]) == (
        jobid, [(1, SLICE_BYTES)])
    assert out["all"].split()[1] == limits  # no --gres: the job's whole allocation
    assert out["none"] == "[] unset"
    assert out["left"] == "limits state"  # the step's file went with the step
    tres = cluster.sacct_alloc_tres(jobid, steps=("", "batch", "0", "1"))
    assert parse_tres(tres[str(jobid)])["gres/vgpu"] == "2"
    assert parse_tres(tres[f"{jobid}.batch"])["gres/vgpu"] == "2"
    assert parse_tres(tres[f"{jobid}.0"])["gres/vgpu"] == "1"
    assert parse_tres(tres[f"{jobid}.1"])["gres/vgpu"] == "2"


def test_job_array_tasks_each_get_their_own_slices(cluster: SlurmCluster,
                                                   site: SpankSite) -> None:
    first = submit_hold(cluster, "-w", "n1", "--array=1-3", "--gres=vgpu:2")
    task_ids = [first, first + 1, first + 2]  # array task job ids are consecutive here
    limits_paths = set()
    for jobid in task_ids:
        env = job_env(cluster, jobid)
        assert site.limits("n1", jobid).job_id == jobid
        limits_paths.add(env["VGPU_LIMITS"])
    assert len(limits_paths) == 3
    assert sum(s for job, _, s in site.placements("n1") if job in task_ids) == 6
    for jobid in task_ids:
        release(cluster, site, jobid)
    for jobid in task_ids:
        wait_cleaned(site, "n1", jobid)


@pytest.mark.parametrize(("option", "policy"), [
    ((), SHARE_GUARANTEED), (("--vgpu-share=guaranteed",), SHARE_GUARANTEED),
    (("--vgpu-share=burst",), SHARE_BURST),
])
def test_vgpu_share_reaches_the_limits_file(cluster: SlurmCluster, site: SpankSite,
                                            option: tuple[str, ...], policy: int) -> None:
    jobid = submit_hold(cluster, "-w", "n2", "--gres=vgpu:1", *option)
    job_env(cluster, jobid)
    assert site.limits("n2", jobid).share_policy == policy
    release(cluster, site, jobid)


@pytest.mark.parametrize("command", [("sbatch", "--wrap", "true"), ("srun", "true"),
                                     ("salloc", "true")])
def test_bad_vgpu_share_is_refused_before_the_job_starts(cluster: SlurmCluster,
                                                         command: tuple[str, ...]) -> None:
    result = cluster.run(command[0], "--gres=vgpu:1", "--vgpu-share=always", *command[1:],
                         check=False, user=USER, timeout=30)
    assert result.returncode != 0
    assert "vgpu: --vgpu-share=always is not valid: use --vgpu-share=guaranteed" in result.stderr


def test_salloc_and_plain_srun_jobs_get_slices_and_share_policy(cluster: SlurmCluster,
                                                                 site: SpankSite) -> None:
    out = cluster.run("salloc", "-w", "n2", "--gres=vgpu:2", "--vgpu-share=burst", "srun",
                      "bash", "-c", "echo $SLURM_JOB_ID $CUDA_VISIBLE_DEVICES; "
                      "cp $VGPU_LIMITS $SLURM_JOB_ID.salloc", user=USER, timeout=60).stdout
    jobid, visible = out.split()
    lim = decode_limits((cluster.jobs_dir / f"{jobid}.salloc").read_bytes())
    assert (lim.share_policy, [(g.physical_index, g.slices) for g in lim.gpus]) == (
        SHARE_BURST, [(int(visible), 2)])
    out = cluster.run("srun", "-w", "n2", "--gres=vgpu:1", "bash", "-c",
                      "echo $SLURM_JOB_ID; cp $VGPU_LIMITS $SLURM_JOB_ID.srun", user=USER,
                      timeout=60).stdout
    lim = decode_limits((cluster.jobs_dir / f"{out.strip()}.srun").read_bytes())
    assert (lim.share_policy, lim.gpus[0].slices) == (SHARE_GUARANTEED, 1)


def test_a_requeued_job_is_placed_afresh(cluster: SlurmCluster, site: SpankSite) -> None:
    jobid = submit_hold(cluster, "-w", "n1", "--gres=vgpu:4", "--requeue")
    job_env(cluster, jobid)
    (cluster.jobs_dir / f"{jobid}.env").unlink()
    cluster.run("scontrol", "requeue", str(jobid))
    # The epilog freed the slices and left a note for the next run, which gets no prolog.
    marker = site.runtime_dir("n1") / "jobs" / f"{jobid}.requeued"
    wait_for(marker.exists, "the epilog's requeue note")
    assert not site.job_dir("n1", jobid).exists()
    # Slurm delays a requeued job by minutes; start it now, but not within the second its
    # old credential was revoked in (slurmd would refuse the launch: "credential revoked").
    wait_for(lambda: cluster.job_state(jobid) == "PENDING", "the job to be pending again")
    time.sleep(2)
    cluster.run("scontrol", "update", f"jobid={jobid}", "StartTime=now")
    env = job_env(cluster, jobid)
    assert env.get("VGPU_LIMITS") == str(site.job_dir("n1", jobid) / "limits"), (
        env, cluster.job_info(jobid), (cluster.jobs_dir / f"{jobid}.out").read_text())
    assert sum(s for job, _, s in site.placements("n1") if job == jobid) == 4
    assert not marker.exists()
    release(cluster, site, jobid)


def test_help_documents_the_option(cluster: SlurmCluster) -> None:
    for command in ("sbatch", "srun", "salloc"):
        out = cluster.run(command, "--help", timeout=30).stdout
        assert "--vgpu-share=guaranteed|burst" in out, command


def test_cancellation_frees_the_slices(cluster: SlurmCluster, site: SpankSite) -> None:
    jobid = submit_hold(cluster, "-w", "n2", "--gres=vgpu:10")
    job_env(cluster, jobid)
    assert sum(s for job, _, s in site.placements("n2") if job == jobid) == 10
    cluster.run("scancel", str(jobid))
    wait_cleaned(site, "n2", jobid)


def test_a_job_that_fails_or_times_out_is_cleaned_up(cluster: SlurmCluster,
                                                     site: SpankSite) -> None:
    failing = cluster.sbatch("-w", "n2", "--gres=vgpu:2", "--wrap", "kill -SEGV $$",
                             "-o", "/dev/null", user=USER)
    slow = cluster.sbatch("-w", "n2", "--gres=vgpu:2", "-t", "0:01", "--wrap", "sleep 300",
                          "-o", "/dev/null", user=USER)
    cluster.wait_job(failing, states=("FAILED",), timeout=60)
    wait_cleaned(site, "n2", failing)
    cluster.wait_job(slow, states=("TIMEOUT",), timeout=150)
    wait_cleaned(site, "n2", slow)


def test_stale_placements_are_reconciled_after_a_slurmd_restart(cluster: SlurmCluster,
                                                                site: SpankSite) -> None:
    # A crash lost a job's epilog: its slices are still booked in the table.
    table = site.runtime_dir("n2") / "placements"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("job=999999 gpu=0 slices=10\njob=999998 gpu=1 slices=4\n")
    cluster.restart("slurmd-n2")
    # 3 slices would fit beside the stale 4 on gpu1; after the reconcile that slurmd's restart
    # asked for, both cards are empty and best fit takes gpu0
    jobid = submit_hold(cluster, "-w", "n2", "--gres=vgpu:3")
    env = job_env(cluster, jobid)
    rows = site.placements("n2")
    assert all(job < 999998 for job, _, _ in rows), rows
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert not (site.runtime_dir("n2") / "reconcile").exists()
    release(cluster, site, jobid)


def test_slices_booked_by_a_vanished_job_are_reclaimed_when_needed(
        cluster: SlurmCluster, site: SpankSite) -> None:
    table = site.runtime_dir("n2") / "placements"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("job=999997 gpu=0 slices=10\njob=999996 gpu=1 slices=10\n")
    jobid = submit_hold(cluster, "-w", "n2", "--gres=vgpu:4")
    job_env(cluster, jobid)
    assert [row for row in site.placements("n2") if row[0] >= 999996] == []
    release(cluster, site, jobid)


def test_a_false_node_name_in_the_job_environment_changes_nothing(
        cluster: SlurmCluster, site: SpankSite) -> None:
    # %n comes from slurmd's environment, never from the job's (which the user writes)
    result = cluster.run("srun", "-w", "n1", "--gres=vgpu:2", "--export=ALL,SLURMD_NODENAME=n2",
                         "bash", "-c", "echo $SLURM_JOB_ID $VGPU_LIMITS", user=USER, timeout=60)
    jobid, limits = result.stdout.split()
    assert limits == str(site.job_dir("n1", int(jobid)) / "limits")


def test_users_cannot_touch_another_jobs_files(cluster: SlurmCluster, site: SpankSite) -> None:
    jobid = submit_hold(cluster, "-w", "n1", "--gres=vgpu:1")
    job_env(cluster, jobid)
    other = "vgpu-test2"
    ensure_user(other)
    jobdir = site.job_dir("n1", jobid)
    probe = cluster.run(
        "bash", "-c",
        f"cat {jobdir}/state && echo READ; echo x >> {jobdir}/state && echo WROTE; "
        f"echo x >> {jobdir}/limits && echo WROTE; touch {jobdir}/new && echo CREATED; true",
        user=other, check=False)
    assert "READ" not in probe.stdout and "WROTE" not in probe.stdout
    assert "CREATED" not in probe.stdout
    release(cluster, site, jobid)


def test_missing_inventory_denies_vgpu_steps_with_a_clear_message() -> None:
    require_slurm_cluster()
    ensure_user(USER)
    with spank_cluster(nodes=["n1"]) as (cluster, site):
        site.inventory("n1").unlink()
        result = cluster.run("srun", "--gres=vgpu:2", "true", check=False, user=USER,
                             timeout=60)
        assert result.returncode != 0
        assert "vgpu: job" in result.stderr and "cannot get its GPU slices" in result.stderr
        assert "inventory" in result.stderr
        jobid = cluster.sbatch("--gres=vgpu:2", "-o", f"{cluster.jobs_dir}/%j.out", "--wrap",
                               "echo RAN", user=USER)
        cluster.wait_job(jobid, states=("FAILED",), timeout=60)
        out = (cluster.jobs_dir / f"{jobid}.out").read_text()
        assert "RAN" not in out and "cannot get its GPU slices" in out
        # jobs without slices still run
        assert cluster.run("srun", "true", user=USER, check=False).returncode == 0


def test_on_error_allow_runs_the_job_without_limits() -> None:
    require_slurm_cluster()
    ensure_user(USER)
    with spank_cluster(nodes=["n1"], plugstack_extra={"on_error": "allow"}) as (cluster, site):
        site.inventory("n1").unlink()
        result = cluster.run("srun", "--gres=vgpu:2", "printenv", "VGPU_LIMITS", check=False,
                             user=USER, timeout=60)
        assert result.returncode == 1 and result.stdout == ""  # ran, with no limits set


def test_file_backed_gres_conf_is_understood_too(tmp_path: Path) -> None:
    """gres.conf with one device file per slice: slurmctld reports "vgpu:3(IDX:0-2)"
    instead of "vgpu(CNT:3)"."""
    require_slurm_cluster()
    ensure_user(USER)
    devdir = Path(tempfile.mkdtemp(prefix="vgpu-dev-"))
    try:
        for i in range(20):
            os.mknod(devdir / f"s{i}", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        with spank_cluster(nodes=["n1"], gres_conf=f"Name=vgpu File={devdir}/s[0-19]") as (
                cluster, site):
            jobid = submit_hold(cluster, "--gres=vgpu:3")
            env = job_env(cluster, jobid)
            assert "IDX:" in cluster.job_info(jobid)["GRES"]
            assert [(g.physical_index, g.slices) for g in site.limits("n1", jobid).gpus] == [
                (int(env["CUDA_VISIBLE_DEVICES"]), 3)]
            release(cluster, site, jobid)
    finally:
        shutil.rmtree(devdir, ignore_errors=True)


def test_visible_env_sets_other_vendors_variables_too() -> None:
    require_slurm_cluster()
    ensure_user(USER)
    names = "CUDA_VISIBLE_DEVICES,ROCR_VISIBLE_DEVICES,ASCEND_RT_VISIBLE_DEVICES"
    with spank_cluster(nodes=["n1"], plugstack_extra={"visible_env": names}) as (cluster, _):
        out = cluster.run("srun", "--gres=vgpu:12", "printenv", *names.split(","), user=USER,
                          timeout=60).stdout.split()
        assert out == ["0,1", "0,1", "0,1"]


def test_whole_gpus_never_share_a_card_with_slices() -> None:
    """Node with GPU 0 kept whole (gres gpu, its device file) and GPU 1 sliced (gres vgpu): the
    inventory lists only GPU 1, so vgpu jobs can only ever land there. (/dev/null stands for
    the GPU's device file; with task/none nothing restricts device access.)"""
    require_slurm_cluster()
    ensure_user(USER)
    with spank_cluster(
        nodes=["n1"], site_gpus=[(1, 10)], gres_types="gpu,vgpu",
        gres_conf="Name=gpu File=/dev/null\nName=vgpu Count=10", node_gres="gpu:1,vgpu:10",
    ) as (cluster, site):
        whole = submit_hold(cluster, "--gres=gpu:1")
        sliced = [submit_hold(cluster, "--gres=vgpu:5") for _ in range(2)]
        whole_env = job_env(cluster, whole)
        assert "LD_PRELOAD" not in whole_env and "VGPU_LIMITS" not in whole_env
        assert whole_env["CUDA_VISIBLE_DEVICES"] == "0"  # set by Slurm's gres/gpu
        assert {job_env(cluster, j)["CUDA_VISIBLE_DEVICES"] for j in sliced} == {"1"}
        assert all(gpu == 1 for _, gpu, _ in site.placements("n1"))
        for jobid in (whole, *sliced):
            release(cluster, site, jobid)
