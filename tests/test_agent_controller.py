"""The split deployment in one process: node agents (the daemon's cycle with the controller
relay as Slurm client) and the cluster controller, talking through a real exchange directory,
with a fake Slurm for the controller and real per-job files for the agents."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from summary_runner import FakeRunner

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.native import GpuLimit, GpuUsage, JobLimits, JobUsage, write_limits_file
from slurm_vgpu.native import SharePolicy as NativeShare
from slurm_vgpu.policies.decide.config import (
    BackfillConfig,
    DaemonConfig,
    ExchangeConfig,
    PackingConfig,
    PolicyConfig,
    ShareConfig,
    config_from_dict,
)
from slurm_vgpu.policies.decide.lent_file import parse_lent
from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.service.agent import NodeAgent, build_agent
from slurm_vgpu.policies.service.controller import Controller, WaitingIndex, build_controller
from slurm_vgpu.policies.service.job_files import RuntimeDirJobFiles
from slurm_vgpu.policies.service.metrics import ControllerCollector
from slurm_vgpu.policies.service.observer import InventoryGpuInfo
from slurm_vgpu.policies.slurm.slurm_client import SlurmJob, SlurmNode, SlurmUnavailable

GIB = 1 << 30


def uuid(node: int, gpu: int) -> str:
    return f"GPU-{node:08d}-1111-2222-3333-{gpu:012d}"


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="limits files must be root-owned")


class ClusterSlurm:
    """slurmctld as the controller sees it: every node and job of the cluster; counts reads."""

    def __init__(self, nodes: Sequence[str]) -> None:
        self.jobs: list[SlurmJob] = []
        self.pending: list[PendingJob] = []
        self.vgpu = dict.fromkeys(nodes, 20)
        self.weight = dict.fromkeys(nodes, 1)
        self.down = False
        self.calls: list[tuple[str, object]] = []

    def _maybe_fail(self) -> None:
        if self.down:
            raise SlurmUnavailable("slurmctld is down (fake)")

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        self._maybe_fail()
        self.calls.append(("squeue", nodes))
        return list(self.jobs)

    def pending_jobs(self) -> list[PendingJob]:
        return list(self.pending)

    def nodes(self, names: Sequence[str] | None = None) -> list[SlurmNode]:
        self._maybe_fail()
        self.calls.append(("sinfo", names))
        return [SlurmNode(n, "mixed", c, 0, self.weight[n], ("normal", "scavenger"))
                for n, c in self.vgpu.items() if names is None or n in names]

    def set_node_vgpu_count(self, node: str, count: int) -> None:
        self._maybe_fail()
        self.calls.append(("gres", (node, count)))
        self.vgpu[node] = count

    def set_node_weight(self, node: str, weight: int) -> None:
        self._maybe_fail()
        self.calls.append(("weight", (node, weight)))
        self.weight[node] = weight

    def requeue_job(self, job_id: int) -> None:
        self.calls.append(("requeue", job_id))

    def cancel_step(self, job_id: int, step: str) -> None:
        self.calls.append(("cancel", f"{job_id}.{step}"))


class NodeEvents(ClusterSlurm):
    """The agent's own Slurm client: only requeue/cancel may be called; reads fail the test."""

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        raise AssertionError("a node agent read the job table")

    def nodes(self, names: Sequence[str] | None = None) -> list[SlurmNode]:
        raise AssertionError("a node agent read the node table")


class UsageFiles(RuntimeDirJobFiles):
    def __init__(self, runtime_dir: Path) -> None:
        super().__init__(runtime_dir)
        self.busy_ns: dict[int, int] = {}

    def read_usage(self, job_id: int, ngpus: int) -> JobUsage | None:
        if job_id not in self.busy_ns:
            return None
        gpu = GpuUsage(index=0, used_bytes=GIB, peak_bytes=0, busy_ns=self.busy_ns[job_id],
                       throttled_ns=0, oom_denials=0, tokens_ns=0, effective_permille=0,
                       gate_closed=False, sampler_pid=0)
        return JobUsage(initialized=True, gpus=(gpu,), processes=(), repairs=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_job(runtime: Path, node: int, job_id: int, slices: int, share: NativeShare) -> Path:
    d = runtime / "jobs" / str(job_id)
    d.mkdir(parents=True)
    write_limits_file(d / "limits", JobLimits(
        job_id=job_id, uid=1000, share_policy=share,
        gpus=(GpuLimit(uuid(node, 0), 0, slices, slices * 8 * GIB, slices * 100,
                       slices * 100),)))
    return d / "limits"


def read_compute(path: Path) -> int:
    from slurm_vgpu.native import read_limits_file

    return read_limits_file(path).gpus[0].compute_limit_permille


def slurm_job(job_id: int, node: str, slices: int, partition: str = "normal") -> SlurmJob:
    return SlurmJob(job_id, "RUNNING", partition, "normal", 1000, float(job_id), {node: slices},
                    admin_comment="site-note")


@dataclasses.dataclass
class Cluster:
    tmp: Path
    cfg: DaemonConfig
    slurm: ClusterSlurm
    clock: Clock
    runner: FakeRunner
    controller: Controller
    agents: dict[str, NodeAgent]
    files: dict[str, UsageFiles]
    events: dict[str, NodeEvents]

    def runtime(self, node: str) -> Path:
        return self.tmp / "rt" / node

    def new_agent(self, node: str) -> NodeAgent:
        i = int(node[1:])
        inv = {node: [InventoryGpuInfo(g, uuid(i, g), 10, 8 * GIB, 100, 80 * GIB)
                      for g in (0, 1)]}
        cfg = dataclasses.replace(self.cfg, nodes=(node,), runtime_dir=str(self.runtime(node)))
        agent = build_agent(cfg, events=self.events[node], files=self.files[node],
                            inventories=inv, clock=self.clock)
        self.agents[node] = agent
        return agent

    def new_controller(self) -> Controller:
        self.controller = build_controller(self.cfg, slurm=self.slurm,
                                           summary_runner=self.runner, clock=self.clock)
        return self.controller

    def period(self, n: int = 1, agents: bool = True) -> None:
        """n control periods: the controller's cycle, then every agent's."""
        for _ in range(n):
            self.clock.now += 5
            self.controller.cycle()
            if agents:
                for a in self.agents.values():
                    a.cycle()


def make_cluster(tmp_path: Path, nodes: Sequence[str] = ("n1", "n2"),
                 policy: PolicyConfig | None = None) -> Cluster:
    cfg = DaemonConfig(nvml=False, policy=policy or PolicyConfig(
        share=ShareConfig(idle_after_seconds=10)),
        exchange=ExchangeConfig(dir=str(tmp_path / "exchange"), stale_after_seconds=30))
    slurm = ClusterSlurm(nodes)
    clock = Clock()
    runner = FakeRunner()
    cluster = Cluster(tmp_path, cfg, slurm, clock, runner, None,  # type: ignore[arg-type]
                      {}, {}, {})
    cluster.new_controller()
    for node in nodes:
        cluster.runtime(node).mkdir(parents=True)
        cluster.files[node] = UsageFiles(cluster.runtime(node))
        cluster.events[node] = NodeEvents([])
        cluster.new_agent(node)
    return cluster


def test_agents_read_nothing_from_slurm_and_the_controller_reads_twice(tmp_path: Path) -> None:
    nodes = [f"n{i}" for i in range(1, 9)]
    c = make_cluster(tmp_path, nodes)
    owner = write_job(c.runtime("n3"), 3, 1, 3, NativeShare.BURST)
    c.slurm.jobs = [slurm_job(1, "n3", 3)]
    c.files["n3"].busy_ns[1] = 0
    c.period()
    for _ in range(3):
        c.files["n3"].busy_ns[1] += 5 * 10**9  # computing, nobody else on the GPU: burst
        c.period()
    assert read_compute(owner) == 1000
    # whatever the number of agents: one job read and one node read per period
    assert sorted(name for name, _ in c.slurm.calls) == ["sinfo"] * 4 + ["squeue"] * 4
    assert all(e.calls == [] for e in c.events.values())
    # the agent learnt its job's partition and AdminComment from the controller
    snap = c.agents["n3"].state.snapshot
    assert snap is not None and snap.slurm_ok
    assert [(j.job_id, j.partition, j.admin_comment) for j in snap.jobs] == \
        [(1, "normal", "site-note")]
    # its report tells the controller who holds which GPU's slices (placement steering)
    report = c.agents["n3"].report()
    assert report.gpus is not None and [(g.slices, g.used, g.jobs) for g in report.gpus] == \
        [(10, 3, (1,)), (10, 0, ())] and report.unplaced == ()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControllerCollector(c.controller.state))
    text = generate_latest(registry).decode()
    assert "vgpu_controller_agents_reporting 8.0" in text
    assert "vgpu_controller_slurm_up 1.0" in text


def backfill_cluster(tmp_path: Path) -> Cluster:
    policy = PolicyConfig(
        backfill=BackfillConfig(enabled=True, idle_after_seconds=30,
                                preemptible_partitions=("scavenger",)),
        packing=PackingConfig(enabled=True))
    c = make_cluster(tmp_path, ("n1", "n2"), policy)
    write_job(c.runtime("n1"), 1, 1, 8, NativeShare.GUARANTEED)
    c.files["n1"].busy_ns[1] = 0
    c.slurm.jobs = [slurm_job(1, "n1", 8)]
    return c


def test_backfill_offer_goes_through_the_controller_and_is_withheld_by_waiting_jobs(
        tmp_path: Path) -> None:
    c = backfill_cluster(tmp_path)
    c.period(9)
    assert c.slurm.vgpu == {"n1": 27, "n2": 20}
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {0: 7}
    # packing: the agents' weights (whole GPUs, free slices) reach slurmctld through the controller
    assert c.slurm.weight == {"n1": 1102, "n2": 2100}
    # a normal job waits in a partition of n1: the controller says so, the agent withdraws
    c.slurm.pending = [PendingJob(7, ("normal",), "normal", 4)]
    c.period(2)
    assert c.slurm.vgpu["n1"] == 20
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {}
    c.slurm.pending = []
    c.period(2)
    assert c.slurm.vgpu["n1"] == 27
    # scontrol reconfigure resets the count: re-applied from the agent's standing wish
    c.slurm.vgpu["n1"] = 20
    c.period(1, agents=False)
    assert c.slurm.vgpu["n1"] == 27
    # the owner computes again: withdrawn within two periods (agent, then controller)
    c.files["n1"].busy_ns[1] += 5 * 10**9
    c.period(2)
    assert c.slurm.vgpu["n1"] == 20
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {}


def test_cut_off_agent_keeps_limits_and_lends_nothing(tmp_path: Path) -> None:
    c = backfill_cluster(tmp_path)
    burst = write_job(c.runtime("n2"), 2, 2, 3, NativeShare.BURST)
    c.slurm.jobs.append(slurm_job(2, "n2", 3))
    c.files["n2"].busy_ns[2] = 0
    c.period(9)
    assert c.slurm.vgpu["n1"] == 27
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {0: 7}
    # the controller stops (no heartbeat): after stale_after_seconds the agents lend nothing
    # and keep adjusting shares on the last job list
    for _ in range(7):
        c.clock.now += 5
        c.files["n2"].busy_ns[2] += 5 * 10**9
        for a in c.agents.values():
            a.cycle()
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {}
    assert c.agents["n1"].state.slurm_up is False
    assert read_compute(burst) == 1000  # share adjustment went on
    # a restarted controller carries on: the agents are heard again and lend again
    c.new_controller()
    c.period(2)
    assert c.agents["n1"].state.slurm_up is True
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {0: 7}
    # the agent stops: the controller withdraws its node's lent slices
    del c.agents["n1"]
    c.period(7)
    assert c.slurm.vgpu["n1"] == 20
    assert c.controller.state.agents_silent == 1
    # ... and a restarted agent needs no Slurm read to take up its jobs again
    c.new_agent("n1")
    c.period(1)
    snap = c.agents["n1"].state.snapshot
    assert snap is not None and [j.job_id for j in snap.jobs] == [1]
    assert all(e.calls == [] for e in c.events.values())


def test_agent_without_a_trusted_directive_asks_for_its_lent_slices_back(
        tmp_path: Path) -> None:
    c = backfill_cluster(tmp_path)
    c.period(9)
    assert c.slurm.vgpu["n1"] == 27
    os.chown(tmp_path / "exchange" / "to-node" / "n1.json", 65534, 65534)
    c.period(2)  # the controller still hears the agent, which lends nothing: count back
    assert c.slurm.vgpu["n1"] == 20
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {}


def test_slurm_down_at_the_controller_reaches_the_agents(tmp_path: Path) -> None:
    c = backfill_cluster(tmp_path)
    c.period(9)
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {0: 7}
    c.slurm.down = True
    c.period(1)
    assert c.agents["n1"].state.slurm_up is False
    assert parse_lent((c.runtime("n1") / "lent").read_text()) == {}
    c.slurm.down = False
    c.period(3)
    assert c.agents["n1"].state.slurm_up is True


def test_summaries_are_stored_by_the_controller_and_survive_an_agent_restart(
        tmp_path: Path) -> None:
    c = make_cluster(tmp_path, ("n1",))
    write_job(c.runtime("n1"), 1, 1, 3, NativeShare.BURST)
    c.slurm.jobs = [slurm_job(1, "n1", 3)]
    c.files["n1"].busy_ns[1] = 0
    c.period(4)
    # the job ends; the agent sees it gone but is restarted before the controller stores it
    c.slurm.jobs = []
    c.clock.now += 5
    c.controller.cycle()
    c.agents["n1"].cycle()
    report = (tmp_path / "exchange" / "from-node" / "n1.json").read_text()
    assert '"job_id":1' in report and "vgpu1;" in report
    assert c.runner.calls == []
    c.new_agent("n1")
    c.period(2)
    writes = [call for call in c.runner.calls if call[0] == "scontrol"]
    assert len(writes) == 1 and writes[0][2] == "job=1"
    assert writes[0][3].startswith("AdminComment=site-note vgpu1;")
    c.period(2)  # acknowledged: the agent drops it, nothing written twice
    assert len([call for call in c.runner.calls if call[0] == "scontrol"]) == 1
    report = (tmp_path / "exchange" / "from-node" / "n1.json").read_text()
    assert '"summaries":[]' in report


def test_untrusted_files_are_ignored(tmp_path: Path) -> None:
    c = backfill_cluster(tmp_path)
    c.period(2)
    assert c.agents["n1"].state.slurm_up is True
    directive = tmp_path / "exchange" / "to-node" / "n1.json"
    os.chown(directive, 65534, 65534)  # anyone but root/SlurmUser: no instruction
    c.clock.now += 5
    c.agents["n1"].cycle()
    assert c.agents["n1"].state.slurm_up is False
    os.chown(directive, 0, 0)
    os.chmod(directive, 0o666)  # writable by others: no instruction either
    c.clock.now += 5
    c.agents["n1"].cycle()
    assert c.agents["n1"].state.slurm_up is False
    os.chmod(directive, 0o644)
    # a report a user could have written is not believed by the controller
    report = tmp_path / "exchange" / "from-node" / "n2.json"
    os.chown(report, 1000, 1000)
    c.controller.cycle()
    assert c.controller.state.agents_reporting == 1


def test_waiting_index_matches_the_policy_question() -> None:
    cfg = BackfillConfig(enabled=True, preemptible_partitions=("scav",), preemptible_qos=("low",))
    pending = [PendingJob(1, ("scav",), "normal", 2), PendingJob(2, ("a",), "low", 2),
               PendingJob(3, ("b",), "normal", 99), PendingJob(4, ("b", "a"), "normal", 4),
               PendingJob(5, ("a",), "normal", 1)]
    index = WaitingIndex(pending, cfg)
    assert index.first_for(("scav",), 20) is None
    assert index.first_for(("a", "scav"), 20) == pending[3]
    assert index.first_for(("b",), 20) == pending[3]  # job 3 can never fit a 20-slice node
    assert index.first_for(("b",), 60) == pending[2]


def test_exchange_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exchange\.dir: expected an absolute path"):
        config_from_dict({"exchange": {"dir": "relative"}})
    with pytest.raises(ConfigError, match=r"exchange\.stale_after_seconds"):
        config_from_dict({"exchange": {"dir": "/x", "stale_after_seconds": 0}})
    with pytest.raises(ConfigError, match=r"exchange\.dir: the node agent needs"):
        build_agent(DaemonConfig(nodes=("n1",)))
    with pytest.raises(ConfigError, match=r"exchange\.dir: the cluster controller needs"):
        build_controller(DaemonConfig())


SQUEUE_FORMATTED = """\
41721|R|gpu|(null)|0|2026-12-04T17:35:42|n1|gres:vgpu:2|None
41726|R|scavenger|low|1000|2026-12-04T17:35:42|n[1-2]|gres:vgpu:4|None
41727|R|gpu|(null)|0|2026-12-04T17:35:42|n1||None
1204|PD|gpu,debug|(null)|0|2026-12-06T17:30:25||gres:vgpu:2|Resources
1205|PD|gpu|(null)|0|N/A||gres:vgpu:3|JobHeldUser
1206_[1-9]|PD|gpu|(null)|0|N/A||gres:vgpu:3|Priority
"""


def test_formatted_squeue_read() -> None:
    """squeue -O output as 22.05 prints it (captured; bench/results/scale-capture.json)."""
    from slurm_vgpu.policies.slurm.squeue_formatted import parse_squeue_formatted

    running, pending = parse_squeue_formatted(SQUEUE_FORMATTED)
    assert [(j.job_id, j.partition, j.qos, j.user_id, dict(j.vgpu_per_node)) for j in running] \
        == [(41721, "gpu", "", 0, {"n1": 2}), (41726, "scavenger", "low", 1000,
                                               {"n1": 4, "n2": 4})]
    assert running[0].start_time > 1.7e9 and running[0].admin_comment == ""
    assert pending == [PendingJob(1204, ("gpu", "debug"), "", 2)]  # held: not waiting


def test_controller_on_the_formatted_read_keeps_the_plugins_admin_comment(
        tmp_path: Path) -> None:
    """Without AdminComment in squeue's output, the first summary of a running job starts
    from accounting's copy (sacct), later ones from what the controller wrote."""
    from slurm_vgpu.policies.slurm.squeue_formatted import FormattedSlurmClient

    class Formatted(FormattedSlurmClient):
        def _run(self, tool: str, *args: str) -> str:
            if tool == "squeue":
                return "1|R|gpu|(null)|1000|2026-12-04T17:35:42|n1|gres:vgpu:3|None\n"
            return json_sinfo()

    class Sacct(FakeRunner):
        def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
            if argv[0] == "sacct":
                self.reads.append(list(argv))
                return 0, "vgpu:n1=gpu0:3\n", ""
            return super().__call__(argv)

    c = make_cluster(tmp_path, ("n1",), PolicyConfig(share=ShareConfig(idle_after_seconds=10)))
    c.cfg = dataclasses.replace(c.cfg, accounting=dataclasses.replace(
        c.cfg.accounting, update_interval_seconds=10))
    c.runner = Sacct()
    c.controller = Controller(c.cfg, Formatted(), c.controller.exchange,
                              summary_runner=c.runner, clock=c.clock)
    c.agents["n1"].cfg = c.cfg
    write_job(c.runtime("n1"), 1, 1, 3, NativeShare.BURST)
    c.files["n1"].busy_ns[1] = 0
    c.period(6)
    writes = [call for call in c.runner.calls if call[0] == "scontrol"]
    assert len(writes) >= 2 and len(c.runner.reads) == 1  # accounting read once
    assert all(w[3].startswith("AdminComment=vgpu:n1=gpu0:3 vgpu1;n:n1;") for w in writes)
    snap = c.agents["n1"].state.snapshot
    assert snap is not None and snap.jobs[0].admin_comment.startswith("vgpu:n1=gpu0:3 vgpu1;")


def json_sinfo() -> str:
    return json.dumps({"nodes": [{"name": "n1", "state": "MIXED", "gres": "vgpu:20",
                                  "gres_used": "vgpu:3", "weight": 1,
                                  "partitions": ["gpu"]}]})


def test_agent_and_controller_processes(tmp_path: Path) -> None:
    """`vgpu controller` and `vgpu agent` as processes (stopped by PID), the controller's
    squeue/sinfo/scontrol being scripts in slurm.bin_dir: the agent learns its job from the
    directive, `vgpu status` shows it without Slurm, the controller applies the agent's count
    and survives SIGHUP and a bad config, the agent restarts and takes up its job again."""
    import signal
    import subprocess
    import sys
    import time

    from slurm_vgpu.native import read_limits_file

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    scripts = {
        "squeue": "echo '7|R|scavenger|normal|1000|2026-12-04T17:35:42|n1|gres:vgpu:3|None'",
        "sinfo": f"echo '{json_sinfo()}'",
        "scontrol": f'echo "$*" >> {calls}',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    rt = tmp_path / "rt" / "n1"
    rt.mkdir(parents=True)
    limits = write_job(rt, 1, 7, 3, NativeShare.BURST)
    (tmp_path / "n1.conf").write_text(
        "version=1\nnode=n1\n" + "".join(
            f"gpu index={g} uuid={uuid(1, g)} slices=10 slice_bytes={8 * GIB} "
            f"slice_permille=100 memory_bytes={80 * GIB} model=x\n" for g in (0, 1)))
    config = tmp_path / "vgpu.yaml"
    base = (f"control_period_seconds: 0.2\nnvml: false\nruntime_dir: {tmp_path}/rt/%n\n"
            f"inventory: {tmp_path}/%n.conf\nmetrics: {{enabled: false}}\n"
            f"slurm: {{bin_dir: {bin_dir}}}\nexchange: {{dir: {tmp_path}/exchange}}\n"
            "packing: {enabled: true}\n")
    config.write_text(base)
    logs = {name: tmp_path / f"{name}.log" for name in ("controller", "agent", "agent2")}

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        with logs[name].open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", "slurm_vgpu.cli", *args,
                                     "--config", str(config)],
                                    stdout=out, stderr=subprocess.STDOUT)

    def wait(pred: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not pred():
            text = "\n".join(p.read_text() for p in logs.values() if p.exists())
            assert time.monotonic() < deadline, f"{what}:\n{text}"
            time.sleep(0.1)

    def status() -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "slurm_vgpu.cli", "status", "--config",
                              str(config), "--node", "n1", "--json", "--sample-seconds", "0"],
                             capture_output=True, text=True, check=True).stdout
        return dict(json.loads(out))

    procs = [start("controller", "controller"), start("agent", "agent", "--node", "n1")]
    try:
        wait(lambda: calls.exists() and "weight=" in calls.read_text(),
             "the agent's weight applied by the controller")
        doc = status()
        assert doc["slurm_ok"] is True
        job = doc["nodes"][0]["jobs"][0]
        assert (job["job_id"], job["partition"]) == (7, "scavenger")  # from the directive
        wait(lambda: read_limits_file(limits).gpus[0].compute_limit_permille == 1000,
             "the burst job's raised limit (the agent's share adjustment)")
        procs[0].send_signal(signal.SIGHUP)
        config.write_text(base + "share: {idle_after_seconds: -1}\n")
        procs[0].send_signal(signal.SIGHUP)
        wait(lambda: "reload refused" in logs["controller"].read_text(), "bad config refused")
        assert procs[0].poll() is None
        config.write_text(base)
        procs[1].send_signal(signal.SIGKILL)  # the agent dies; a new one takes over
        procs[1].wait(10)
        procs.append(start("agent2", "agent", "--node", "n1"))
        wait(lambda: "node agent managing n1" in logs["agent2"].read_text(), "agent restart")
        assert status()["nodes"][0]["jobs"][0]["partition"] == "scavenger"
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
    assert all(p.returncode in (0, -signal.SIGTERM, -signal.SIGKILL) for p in procs)
