"""The cluster controller's reads through vgpu-slurm-read (spank/slurm_read.c): its format,
its errors, the controller's choice of reader, and on the loopback Slurm the same answers as
squeue's formatted read and sinfo's JSON for the questions the controller asks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.policies.decide.config import (
    DaemonConfig,
    ExchangeConfig,
    SlurmConfig,
    SteeringConfig,
    config_from_dict,
)
from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.service.controller import WaitingIndex, build_controller
from slurm_vgpu.policies.slurm.job_table import JobTable
from slurm_vgpu.policies.slurm.slurm_client import CliSlurmClient, SlurmNode, SlurmUnavailable
from slurm_vgpu.policies.slurm.slurm_reader import (
    ReaderParser,
    ReaderSlurmClient,
    ReaderTooOld,
    SlurmReaderError,
    find_slurm_reader,
)
from slurm_vgpu.policies.slurm.squeue_formatted import FormattedSlurmClient
from slurm_vgpu.policies.slurm.steering_reads import ROOM_FORMAT, PendingVgpuJob, SteeringSlurm

REPO = Path(__file__).resolve().parent.parent
READER = REPO / "build" / "spank" / "vgpu-slurm-read"

JOBS = """\
V|1|jobs|7
R|41721|gpu||0|1796405742|n1|gres:vgpu:2
R|41726|scavenger|low|1000|1796405742|n[1-2]|gres/vgpu:4
R|41727|gpu||0|1796405742|n1|gres:gpu:1
P|1204|gpu,debug||gres:vgpu:2|3|1204,1207,1210
P|1300|gpu|high|gres:vgpu:20|1
"""

NODES = """\
V|1|nodes|3
N|n1|mixed|vgpu:20|vgpu:6|1|gpu,debug
N|n2|idle+drain|vgpu:20(S:0)|vgpu:0|100|gpu
N|login|idle|||1|
"""


def test_reader_output_is_parsed_and_unchanged_lines_are_reused() -> None:
    parser = ReaderParser()
    running, pending = parser.jobs(JOBS)
    assert [(j.job_id, j.partition, j.qos, j.user_id, dict(j.vgpu_per_node), j.start_time)
            for j in running] == [
        (41721, "gpu", "", 0, {"n1": 2}, 1796405742.0),
        (41726, "scavenger", "low", 1000, {"n1": 4, "n2": 4}, 1796405742.0)]
    assert pending == [PendingJob(1204, ("gpu", "debug"), "", 2),
                       PendingJob(1300, ("gpu",), "high", 20)]
    assert [ids for _, ids in ReaderParser().job_groups(JOBS)[1]] == [(1204, 1207, 1210),
                                                                      (1300,)]
    again, _ = parser.jobs(JOBS.replace("R|41721|gpu||0|1796405742|n1|gres:vgpu:2\n", ""))
    assert again == running[1:] and again[0] is running[1]  # the same record, not re-parsed
    nodes = parser.nodes(NODES)
    assert nodes == [SlurmNode("n1", "mixed", 20, 6, 1, ("gpu", "debug")),
                     SlurmNode("n2", "idle+drain", 20, 0, 100, ("gpu",)),
                     SlurmNode("login", "idle", None, None, 1, ())]
    assert parser.nodes(NODES, ["n2"])[0] is nodes[1]


@pytest.mark.parametrize(("table", "text", "message"), [
    ("jobs", "", r"jobs printed 'nothing', not its format 1 header"),
    ("jobs", "V|2|jobs|0\n", r"jobs printed 'V\|2\|jobs\|0', not its format 1 header"),
    ("jobs", "V|1|nodes|0\n", r"jobs printed 'V\|1\|nodes\|0'"),
    ("jobs", "V|1|jobs|1\nR|x|gpu||0|0|n1|gres:vgpu:2\n", r"cannot read the line 'R\|x\|gpu"),
    ("jobs", "V|1|jobs|1\nQ|1|2\n", r"cannot read the line 'Q\|1\|2' \(not an R or P record\)"),
    ("jobs", "V|1|jobs|1\nP|5|gpu||gres:vgpu:2|2|6,5\n",
     r"\(its job ids do not start with its first job\)"),
    ("states", "V|1|states|1\nS|5|X\n", r"cannot read the line 'S\|5\|X' \(not an S record\)"),
    ("states", "V|1|states|1\nS|x|-\n", r"cannot read the line 'S\|x\|-'"),
    ("nodes", "V|1|nodes|1\nN|n1|idle|vgpu:2|vgpu:0|heavy|gpu\n",
     r"cannot read the line 'N\|n1\|idle\|vgpu:2\|vgpu:0\|heavy\|gpu'"),
])
def test_output_that_is_not_the_format_is_a_one_line_error(table: str, text: str, message: str
                                                           ) -> None:
    parser = ReaderParser()
    with pytest.raises(SlurmReaderError, match=message):
        {"jobs": parser.jobs, "nodes": parser.nodes, "states": parser.states}[table](text)


def test_reader_setting(tmp_path: Path) -> None:
    assert find_slurm_reader("cli") is None
    assert find_slurm_reader("/opt/x/vgpu-slurm-read") == "/opt/x/vgpu-slurm-read"
    with pytest.raises(ConfigError, match=r"slurm\.reader: 'bin/r' is neither auto, cli nor an "
                                          r"absolute path"):
        config_from_dict({"slurm": {"reader": "bin/r"}})
    assert config_from_dict({"slurm": {"reader": "cli"}}).slurm.reader == "cli"

    def controller_slurm(reader: str) -> Any:
        c = DaemonConfig(exchange=ExchangeConfig(dir=str(tmp_path / "x")),
                         slurm=SlurmConfig(client="cli", reader=reader))
        return build_controller(c).slurm

    assert type(controller_slurm("cli")) is FormattedSlurmClient
    with pytest.raises(ConfigError, match=r"slurm\.reader: /nonexistent/r is not an "
                                          r"executable file"):
        controller_slurm("/nonexistent/r")
    program = tmp_path / "reader"
    program.write_text("#!/bin/sh\nprintf 'V|1|%s|0\\n' \"$1\"\n")
    program.chmod(0o755)
    slurm = controller_slurm(str(program))
    assert isinstance(slurm, ReaderSlurmClient)
    assert slurm.running_jobs() == [] and slurm.pending_jobs() == [] and slurm.nodes() == []
    program.write_text("#!/bin/sh\necho 'vgpu: cannot read the job table' >&2\nexit 1\n")
    with pytest.raises(SlurmUnavailable, match=r"reader jobs failed \(exit 1\): vgpu: cannot "
                                               r"read the job table"):
        slurm.running_jobs()

    # the steering reads its held jobs through the same program; an older one (no `held`
    # table: its usage, exit 2) is a ReaderTooOld, which sends the steering back to squeue
    c = DaemonConfig(exchange=ExchangeConfig(dir=str(tmp_path / "x")),
                     slurm=SlurmConfig(client="cli", reader=str(program)),
                     steering=SteeringConfig(enabled=True, file=str(tmp_path / "steering")))
    steerer = build_controller(c).steerer
    assert steerer is not None
    program.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\ncat > {tmp_path}/stdin\n"
                       "printf 'V|2|held|0\\n'\n")
    assert steerer.slurm.pending([12, 5], 2.5) == []
    assert (tmp_path / "argv").read_text() == "held 4\n"
    assert (tmp_path / "stdin").read_text() == "12 5"
    program.write_text("#!/bin/sh\necho 'vgpu: usage: vgpu-slurm-read jobs|nodes|states' >&2\n"
                       "exit 2\n")
    assert isinstance(slurm, ReaderSlurmClient)
    with pytest.raises(ReaderTooOld, match=r"has no 'held' table .*install the "
                                           r"vgpu-slurm-read of this slurm-vgpu version"):
        slurm.held_jobs(4, [1])


def test_reader_usage_error() -> None:
    import subprocess

    assert READER.is_file(), "build/spank/vgpu-slurm-read: run make"
    done = subprocess.run([str(READER), "queue"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("vgpu: usage: vgpu-slurm-read jobs|nodes")


def _wait(check: Any, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout:g}s")


@pytest.mark.slurm
def test_reader_agrees_with_squeue_and_sinfo_on_a_real_slurm(slurm_cluster_factory: Any
                                                             ) -> None:
    """One running vgpu job, a CPU-only job, three identical vgpu jobs waiting for n1, one of
    another size, one held and one waiting on a dependency; n2 drained: the reader prints the
    running job, one line per waiting (partitions, QOS, request) with its first job and count,
    and the nodes as sinfo's JSON has them; squeue's formatted read gives the same running
    job and the same answer per node."""
    assert READER.is_file(), "build/spank/vgpu-slurm-read: run make"
    cluster = slurm_cluster_factory(nodes=("n1", "n2"), accounting=False)
    run = cluster.sbatch("-w", "n1", "--gres=vgpu:2", "-o", "/dev/null", "--wrap", "sleep 300")
    cpu = cluster.sbatch("-w", "n2", "-o", "/dev/null", "--wrap", "sleep 300")
    _wait(lambda: cluster.job_state(run) == "RUNNING" and cluster.job_state(cpu) == "RUNNING",
          "the running jobs")
    big = [cluster.sbatch("-w", "n1", "--gres=vgpu:20", "-o", "/dev/null", "--wrap", "true")
           for _ in range(3)]
    other = cluster.sbatch("-w", "n1", "--gres=vgpu:19", "-o", "/dev/null", "--wrap", "true")
    held = cluster.sbatch("-H", "--gres=vgpu:1", "-o", "/dev/null", "--wrap", "true")
    dep = cluster.sbatch(f"--dependency=afterok:{run}", "--gres=vgpu:1", "-o", "/dev/null",
                         "--wrap", "true")
    _wait(lambda: all(cluster.job_state(j) == "PENDING" for j in (*big, other, held, dep)),
          "the pending jobs")
    cluster.run("scontrol", "update", "nodename=n2", "state=drain", "reason=test")

    reader = ReaderSlurmClient(str(READER))
    reader.env = cluster.env
    out = cluster.run(str(READER), "jobs").stdout
    assert out.splitlines()[0] == f"V|1|jobs|{len(big) + 5}"
    lines = [x for x in out.splitlines() if x.startswith("P|")]
    assert any(x.startswith(f"P|{big[0]}|") and x.endswith(f"|3|{big[0]},{big[1]},{big[2]}")
               for x in lines), lines
    running = reader.running_jobs()
    pending = reader.pending_jobs()
    assert [(j.job_id, dict(j.vgpu_per_node)) for j in running] == [(run, {"n1": 2})]
    assert sorted((p.job_id, p.vgpu_per_node) for p in pending) == [(big[0], 20), (other, 19)]

    formatted = FormattedSlurmClient(env=cluster.env)
    f_running = formatted.running_jobs()
    assert [(j.job_id, j.partition, j.user_id, dict(j.vgpu_per_node), j.start_time)
            for j in f_running] == [(j.job_id, j.partition, j.user_id, dict(j.vgpu_per_node),
                                     j.start_time) for j in running]
    f_pending = formatted.pending_jobs()
    assert {p.job_id for p in f_pending} == {*big, other}
    cfg = DaemonConfig().policy.backfill
    parts = sorted({part for p in f_pending for part in p.partitions})
    for configured in (1, 10, 19, 20, 40):
        got = WaitingIndex(pending, cfg).first_for(parts, configured)
        want = WaitingIndex(sorted(f_pending, key=lambda p: p.job_id), cfg).first_for(
            parts, configured)
        assert (got and got.job_id) == (want and want.job_id), configured

    # REQUEST_JOB_STATE (24.05+): the states of the jobs asked, nothing else; older: None
    states = reader.job_states({run: "R", cpu: "P", big[0]: "P", other: "R", 999999: "P"})
    release = tuple(int(x) for x in cluster.run("sinfo", "-V").stdout.split()[1].split(".")[:2])
    if release >= (24, 5):  # only what is not as believed
        assert states == {cpu: "R", other: "P", 999999: "-"}
        assert reader.job_states({}) == {}
    else:
        assert states is None and reader.has_job_states is False
    # the controller's job table: a job that leaves the queue is dropped at the next cycle,
    # by its state where Slurm has the RPC (no second full read), by a full read where not
    table = JobTable(reader, refresh_seconds=30.0)
    assert [p.job_id for p in table.read()[1]] == [big[0], other]
    cluster.run("scancel", str(big[0]))
    _wait(lambda: cluster.job_state(big[0]) != "PENDING", "the cancelled job")
    running, waiting = table.read()
    assert [j.job_id for j in running] == [run]
    assert [p.job_id for p in waiting] == [big[1], other]
    assert (table.full_reads, table.state_reads) == ((1, 1) if release >= (24, 5) else (2, 0))

    nodes = {n.name: n for n in reader.nodes()}
    listed = {n.name: n for n in CliSlurmClient(env=cluster.env).nodes()}
    assert set(nodes) == set(listed) == {"n1", "n2"}
    for name, node in nodes.items():
        other_view = listed[name]
        assert (node.vgpu_count, node.vgpu_used, node.weight, set(node.partitions)) == \
            (other_view.vgpu_count, other_view.vgpu_used, other_view.weight,
             set(other_view.partitions)), name
    assert "drain" in nodes["n2"].state and "drain" in listed["n2"].state
    assert nodes["n1"].vgpu_used == 2


@pytest.mark.slurm
def test_steering_reads_agree_with_squeue_and_sinfo_on_a_real_slurm(
        slurm_cluster_factory: Any) -> None:
    """The steering's pending read through `vgpu-slurm-read held` gives the jobs squeue's
    gives it and the steerer keeps (held for at most the hold, or asked for), with the same
    times, CPUs (all of the job's), memory (all of it: --mem-per-cpu multiplied out, the
    node's whole memory where a job names none) and slices; not a later --begin, a job
    array, a job on two nodes or a held job nobody asked for. Its node read (scontrol) gives
    the free CPUs and memory and the default partition sinfo -N gives."""
    assert READER.is_file(), "build/spank/vgpu-slurm-read: run make"
    cluster = slurm_cluster_factory(nodes=("n1", "n2"), accounting=False)
    busy = cluster.sbatch("-w", "n1", "-c", "1", "--mem=50", "-o", "/dev/null", "--wrap",
                          "sleep 300")
    _wait(lambda: cluster.job_state(busy) == "RUNNING", "the running job")
    begin = ("--begin=now+40", "-o", "/dev/null", "--wrap", "true")
    vgpu = cluster.sbatch("--gres=vgpu:2", "-n", "2", "-c", "2", "--mem-per-cpu=100", *begin)
    cpu_only = cluster.sbatch("-c", "3", "--mincpus=5", "--mem=200", *begin)
    later = cluster.sbatch("--begin=now+3600", "--gres=vgpu:1", "-o", "/dev/null", "--wrap",
                           "true")
    array = cluster.sbatch("--array=1-2", "--gres=vgpu:1", *begin)
    two_nodes = cluster.sbatch("-N", "2", "--gres=vgpu:1", *begin)
    user_held = cluster.sbatch("-H", "--gres=vgpu:3", "-o", "/dev/null", "--wrap", "true")
    asked = cluster.sbatch("-H", "--gres=vgpu:4", "-w", "n2", "-o", "/dev/null", "--wrap",
                           "true")
    _wait(lambda: all(cluster.job_state(j) == "PENDING"
                      for j in (vgpu, cpu_only, later, two_nodes, user_held, asked)),
          "the pending jobs")
    hold = 45.0
    cli = SteeringSlurm(CliSlurmClient(env=cluster.env)._run)
    reader = ReaderSlurmClient(str(READER))
    reader.env = cluster.env
    via_reader = SteeringSlurm(CliSlurmClient(env=cluster.env)._run, reader.held_jobs)

    def seen(jobs: list[PendingVgpuJob]) -> list[tuple[Any, ...]]:
        return [(j.job_id, j.submit_time, j.eligible_time, j.reason == "BeginTime",
                 j.req_nodes, j.partitions, j.cpus, j.memory_mib, j.vgpu) for j in jobs]

    want = [j for j in cli.pending([asked], hold)
            if j.held_for_steering(hold) or j.job_id == asked]
    got = via_reader.pending([asked], hold)
    assert seen(got) == seen(want)
    assert [j.job_id for j in got] == [vgpu, cpu_only, asked]
    # 2 tasks of 2 CPUs with 100 MiB each: what slurmctld places, not the per-node minimum
    # (2 CPUs) and the per-CPU figure (100) squeue's MinCpus and MinMemory print
    assert (got[0].cpus, got[0].memory_mib, got[0].vgpu) == (4, 400, 2)
    assert (got[1].cpus, got[1].vgpu, got[1].memory_mib) == (5, 0, 200)  # --mincpus=5
    assert (got[2].req_nodes, got[2].memory_mib) == ("n2", cluster.real_memory_mb)
    assert all(j.held_for_steering(hold) for j in got[:2]) and not got[2].held_for_steering(hold)
    # nothing asked: the two held jobs and the 2-node one (the steering drops it), not the
    # later --begin, the array's tasks or the user's held jobs
    out = cluster.run(str(READER), "held", "46", input="").stdout.splitlines()
    assert out[0].startswith("V|2|held|")
    assert sorted(int(x.split("|")[1]) for x in out[1:]) == [vgpu, cpu_only, two_nodes]
    # still pending, in the table, just not printed
    for job in (array, later, user_held):
        assert cluster.run("squeue", "-h", "-j", str(job), "-o", "%T").stdout.split() \
            == ["PENDING"], job
    bad = cluster.run(str(READER), "held", "0", check=False, input="")
    assert bad.returncode == 2 and bad.stderr.startswith("vgpu: ")

    # the loopback cluster's CR_Core: Slurm starts jobs regardless of memory, nor does the
    # steering count it (scontrol show config)
    assert cli.memory_placed() is False

    # the node read (scontrol show nodes -o): what sinfo -N says, without its quadratic time
    room = cli.room()
    lines = cluster.run("sinfo", "-h", "-N", "-O", ROOM_FORMAT).stdout.splitlines()
    assert {x.split("|")[0] for x in lines} == set(room) == {"n1", "n2"}
    for line in lines:
        name, cpus, memory, alloc, _, part = line.split("|")
        _, idle, _, total = (int(x) for x in cpus.split("/"))
        assert (room[name].cpus_free, room[name].cpus_total,
                room[name].memory_free_mib) == (idle, total, int(memory) - int(alloc or 0))
        assert room[name].default_partition == (part[:-1] if part.endswith("*") else "")
    assert room["n1"].cpus_free == room["n1"].cpus_total - 1
