"""The controller's job table (policies/slurm/job_table.py): a full read of the job table every
refresh period in the background, job states in the cycles between, and a full read every
cycle where Slurm has no state RPC. A fake client; the real one on a real Slurm is in
test_slurm_reader.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.policies.decide.config import DaemonConfig, ExchangeConfig, config_from_dict
from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.service.controller import Controller
from slurm_vgpu.policies.service.exchange import (
    ExchangeDir,
    NodeReport,
    make_dirs,
    report_to_bytes,
    write_atomic,
)
from slurm_vgpu.policies.slurm.job_table import JobTable
from slurm_vgpu.policies.slurm.slurm_client import SlurmJob, SlurmUnavailable
from slurm_vgpu.policies.slurm.slurm_reader import ReaderSlurmClient


def _job(job_id: int) -> SlurmJob:
    return SlurmJob(job_id=job_id, state="RUNNING", partition="gpu", qos="", user_id=1000,
                    start_time=0.0, vgpu_per_node={"n1": 2})


class FakeClient:
    """A Slurm with running jobs 1-2 and waiting jobs 10-12 (one request) and 20 (another)."""

    def __init__(self, has_states: bool = True) -> None:
        self.has_job_states: bool | None = None
        self._has = has_states
        self.state = {1: "R", 2: "R", 10: "P", 11: "P", 12: "P", 20: "P"}
        self.full = 0
        self.asked: list[list[int]] = []
        self.fail_full = False
        self.gate: threading.Event | None = None

    def job_groups(self) -> tuple[list[SlurmJob], list[tuple[PendingJob, tuple[int, ...]]]]:
        if self.gate is not None:
            assert self.gate.wait(5)
        if self.fail_full:
            raise SlurmUnavailable("slurmctld down")
        self.full += 1
        running = [_job(i) for i, s in sorted(self.state.items()) if s == "R"]
        groups = []
        for ids, size in (((10, 11, 12), 4), ((20,), 8)):
            waiting = tuple(i for i in ids if self.state.get(i) == "P")
            if waiting:
                groups.append((PendingJob(waiting[0], ("gpu",), "", size), waiting))
        return running, groups

    def job_states(self, believed: Mapping[int, str]) -> dict[int, str] | None:
        if not self._has:
            self.has_job_states = False
            return None
        self.has_job_states = True
        self.asked.append(list(believed))
        now = {i: self.state.get(i, "-") for i in believed}
        return {i: s if s in ("R", "P") else "-" for i, s in now.items() if s != believed[i]}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _ids(read: tuple[list[SlurmJob], list[PendingJob]]) -> tuple[list[int], list[int]]:
    return [j.job_id for j in read[0]], [p.job_id for p in read[1]]


def test_between_full_reads_states_drop_ended_and_started_jobs() -> None:
    client, clock = FakeClient(), Clock()
    table = JobTable(client, refresh_seconds=30.0, clock=clock)
    assert _ids(table.read()) == ([1, 2], [10, 20])
    assert client.full == 1 and client.asked == [[]]  # the first cycle: a full read only
    # job 2 ends, job 10 starts (where is unknown until the next full read), 11 is cancelled
    client.state.update({10: "R", 11: "CA"})
    del client.state[2]
    clock.t += 5
    client.gate = threading.Event()  # hold the full read that job 10's start sets off
    running, pending = table.read()
    assert _ids((running, pending)) == ([1], [12, 20])
    assert pending[0] == PendingJob(12, ("gpu",), "", 4)
    assert client.full == 1 and sorted(client.asked[-1]) == [1, 2, 10, 11, 12, 20]
    # a listed waiting job started: a full read is under way at once, for where it runs
    assert table._refresh is not None
    client.gate.set()
    table._refresh.result(timeout=5)
    clock.t += 5
    assert _ids(table.read()) == ([1, 10], [12, 20]) and client.full == 2
    # nothing started, nothing due: states only
    clock.t += 5
    table.read()
    assert client.full == 2 and table._refresh is None
    table.close()


def test_full_read_every_refresh_in_the_background_and_adopted_when_done() -> None:
    client, clock = FakeClient(), Clock()
    table = JobTable(client, refresh_seconds=30.0, clock=clock)
    table.read()
    client.state[10] = "R"
    client.gate = threading.Event()  # the background read blocks until released
    clock.t += 31
    assert _ids(table.read()) == ([1, 2], [11, 20])  # not waiting for the full read
    client.gate.set()
    assert table._refresh is not None
    table._refresh.result(timeout=5)
    clock.t += 5
    assert _ids(table.read()) == ([1, 2, 10], [11, 20])  # job 10's record, from the new read
    assert client.full == 2
    table.close()


def test_failing_background_reads_keep_the_last_table_then_fail_the_cycle() -> None:
    client, clock = FakeClient(), Clock()
    table = JobTable(client, refresh_seconds=30.0, clock=clock)
    table.read()
    client.fail_full = True
    clock.t += 31
    table.read()  # starts a background read, which fails
    assert table._refresh is not None
    with pytest.raises(SlurmUnavailable):
        table._refresh.result(timeout=5)
    clock.t += 5
    assert _ids(table.read()) == ([1, 2], [10, 20])  # the last table, checked by state
    clock.t += 60  # more than 3 refresh periods old: read in the cycle, and fail with it
    with pytest.raises(SlurmUnavailable, match="slurmctld down"):
        table.read()
    table.close()


def test_without_the_state_rpc_or_with_refresh_0_every_cycle_reads_the_whole_table() -> None:
    old = FakeClient(has_states=False)
    table = JobTable(old, refresh_seconds=30.0, clock=Clock())
    for _ in range(3):
        assert _ids(table.read()) == ([1, 2], [10, 20])
    assert old.full == 3 and not table.incremental
    new = FakeClient()
    table = JobTable(new, refresh_seconds=0.0, clock=Clock())
    table.read()
    table.read()
    assert new.full == 2 and new.asked == []


def test_refresh_setting() -> None:
    assert config_from_dict({}).slurm.job_table_refresh_seconds == 30.0
    assert config_from_dict({"slurm": {"job_table_refresh_seconds": 0}}
                            ).slurm.job_table_refresh_seconds == 0.0
    with pytest.raises(ConfigError, match=r"^slurm\.job_table_refresh_seconds: 60 is more than "
                                          r"45: a job submitted and started between two"):
        config_from_dict({"slurm": {"job_table_refresh_seconds": 60}})


def test_a_job_an_agent_holds_but_the_table_misses_sets_off_a_full_read(tmp_path: Path) -> None:
    """A guest submitted and started between two full reads was never listed waiting: its
    agent reports it, and the controller reads the job table for it at once (not after the
    refresh period), so the next directive lists it with its partition."""
    jobs = ["R|5|gpu||1000|100|n1|gres:vgpu:2"]

    class Reader(ReaderSlurmClient):
        def _read(self, table: str, stdin: str = "") -> str:
            if table == "nodes":
                return "V|1|nodes|1\nN|n1|mixed|vgpu:20|vgpu:6|1|gpu,scavenger\n"
            if table == "states":  # jobs 5 and 77 run
                asked = stdin.split()
                return "".join([f"V|1|states|{len(asked)}\n"] +
                               [f"S|{t[:-1]}|-\n" for t in asked if t not in ("5R", "77R")])
            return "".join([f"V|1|jobs|{len(jobs)}\n"] + [j + "\n" for j in jobs])

    ex = ExchangeDir(tmp_path / "exchange")
    make_dirs(ex.root)
    cfg = DaemonConfig(exchange=ExchangeConfig(dir=str(ex.root), stale_after_seconds=3600))
    ctl = Controller(cfg, Reader("vgpu-slurm-read"), ex, summary_runner=lambda argv: (0, "", ""))
    assert ctl.job_table is not None

    def listed() -> list[int]:
        return [j["job_id"] for j in json.loads(ex.directive("n1").read_bytes())["jobs"]]

    ctl.cycle()
    assert listed() == [5]
    jobs.append("R|77|scavenger||1000|160|n1|gres:vgpu:4")  # started, never seen waiting
    write_atomic(ex.report("n1"), report_to_bytes(NodeReport(
        node="n1", time=time.time(), vgpu_configured=20, just_started=(77,))))
    ctl.cycle()
    refresh = ctl.job_table._refresh
    assert refresh is not None  # not waiting for the 30 s refresh
    refresh.result(timeout=5)
    ctl.cycle()
    assert listed() == [5, 77]
    assert ctl.job_table.full_reads == 2
    ctl.cycle()  # the agent still reports it until its directive lists it: no further read
    assert ctl.job_table._refresh is None and ctl.job_table.full_reads == 2
    ctl.job_table.close()
