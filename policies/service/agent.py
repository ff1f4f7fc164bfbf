"""The node agent (`vgpu agent`): the per-node daemon without Slurm reads.

It runs the very same observe -> plan -> apply cycle as `vgpu daemon` (daemon.py), with one
difference: its `SlurmClient` is `ControllerRelay`, which answers the job and node questions
from the cluster controller's directive for this node (exchange.py) instead of asking
slurmctld. So an agent makes no job-table or node-table RPC at all; its jobs' placement, caps
and usage still come from the node's own files and NVML every period.

What goes the other way: the node count and weight its policies want (the controller applies
them with `scontrol update`) and the job summaries to store in AdminComment, in the agent's
report. Two Slurm requests stay on the node because they must not wait for anyone: the
backstop's `scancel` of a step over its memory cap and the requeue of a backfilled job whose
memory an owner needs (both rare events, never reads).

Cut off from the controller (no heartbeat for `exchange.stale_after_seconds`, or the
controller says Slurm is down) the agent keeps enforcing and adjusting shares on the last job
list, like the daemon with Slurm down, and lends nothing: the lent file offers no GPU, and
the controller, no longer hearing the agent, takes the node's count back to its configured
value.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.policies.accounting.job_summary import JobSummary, format_summary, merge_comment
from slurm_vgpu.policies.decide.config import DaemonConfig
from slurm_vgpu.policies.decide.policy_common import index_snapshot
from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.service.daemon import Daemon, build_daemon, default_node_names
from slurm_vgpu.policies.service.exchange import (
    Directive,
    ExchangeDir,
    ExchangeError,
    GpuTenants,
    NodeReport,
    SummaryRequest,
    check_dir,
    directive_from_dict,
    heartbeat_from_dict,
    read_trusted_json,
    report_from_dict,
    report_to_bytes,
    trusted_uids,
    write_atomic,
)
from slurm_vgpu.policies.service.job_files import JobFiles
from slurm_vgpu.policies.service.nvml_source import NvmlSource
from slurm_vgpu.policies.service.observer import InventoryGpuInfo
from slurm_vgpu.policies.slurm.slurm_client import (
    SlurmClient,
    SlurmJob,
    SlurmNode,
    SlurmUnavailable,
    make_slurm_client,
)

log = logging.getLogger("slurm_vgpu.daemon")


class ControllerRelay:
    """A SlurmClient for one node, answered by the controller's files. Reads are local file
    reads (no RPC); the node count and weight are recorded for the report; requeue and cancel
    go to Slurm directly (`events`)."""

    def __init__(self, exchange: ExchangeDir, node: str, writers: frozenset[int],
                 stale_after: float, events: SlurmClient | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.exchange = exchange
        self.node = node
        self.writers = writers
        self.stale_after = stale_after
        self.events = events
        self.clock = clock
        self.directive: Directive | None = None
        self.vgpu_wanted: int | None = None
        self.weight_wanted: int | None = None

    def _load(self) -> Directive:
        try:
            check_dir(self.exchange.root, self.writers)
            beat = heartbeat_from_dict(read_trusted_json(self.exchange.heartbeat, self.writers),
                                       str(self.exchange.heartbeat))
            age = self.clock() - beat.time
            if age > self.stale_after:
                raise SlurmUnavailable(f"no word from the cluster controller for {age:.0f}s "
                                       f"({self.exchange.heartbeat})")
            if not beat.slurm_ok:
                raise SlurmUnavailable(f"the cluster controller cannot read Slurm: "
                                       f"{beat.slurm_error}")
            check_dir(self.exchange.root / "to-node", self.writers)
            path = self.exchange.directive(self.node)
            directive = directive_from_dict(read_trusted_json(path, self.writers), str(path))
        except ExchangeError as e:
            raise SlurmUnavailable(f"cluster controller: {e}") from e
        if directive.node.name != self.node:
            raise SlurmUnavailable(f"{path} is for node {directive.node.name}, not {self.node}")
        self.directive = directive
        return directive

    def running_jobs(self, nodes: Sequence[str] | None = None) -> list[SlurmJob]:
        return list(self._load().jobs)

    def pending_jobs(self) -> list[PendingJob]:
        return list(self.directive.waiting) if self.directive else []

    def nodes(self, names: Sequence[str] | None = None) -> list[SlurmNode]:
        d = self.directive or self._load()
        return [d.node] if names is None or d.node.name in names else []

    def set_node_vgpu_count(self, node: str, count: int) -> None:
        self.vgpu_wanted = int(count)

    def set_node_weight(self, node: str, weight: int) -> None:
        self.weight_wanted = int(weight)

    def _events(self) -> SlurmClient:
        if self.events is None:
            raise SlurmUnavailable("no Slurm client for requeue/cancel on this node")
        return self.events

    def requeue_job(self, job_id: int) -> None:
        self._events().requeue_job(job_id)

    def cancel_step(self, job_id: int, step: str) -> None:
        self._events().cancel_step(job_id, step)


class NodeAgent(Daemon):
    """The daemon's cycle, plus the report to the controller after each one. Job summaries go
    into the report (an outbox kept until the controller says it stored them)."""

    relay: ControllerRelay
    outbox: dict[int, SummaryRequest]

    def attach(self, relay: ControllerRelay) -> None:
        self.relay = relay
        self.lend_only_when_slurm_ok = True
        self.outbox = {}
        self._vgpu_configured = 0
        self._last_report = b""
        self._heard_controller = False
        # a restarted agent still owes the summaries its last report listed
        path = relay.exchange.report(relay.node)
        try:
            doc = read_trusted_json(path, frozenset({0, os.geteuid()}))
            for s in report_from_dict(doc, str(path)).summaries:
                self.outbox[s.job_id] = s
        except ExchangeError:
            pass

    def _write_summary(self, job_id: int, summary: JobSummary, running: bool | None,
                       admin_comment: str) -> str:
        token = format_summary(summary)
        self.outbox[job_id] = SummaryRequest(job_id, token, True if running else None,
                                             admin_comment)
        return merge_comment(admin_comment, token)

    def report(self) -> NodeReport:
        d = self.relay.directive
        if d is not None:
            for job_id, token in d.summaries_stored.items():
                if job_id in self.outbox and self.outbox[job_id].token == token:
                    del self.outbox[job_id]
        wanted = self.relay.vgpu_wanted
        if not self._heard_controller and self._vgpu_configured > 0:
            # cut off (no fresh or trusted directive) while the controller may still read
            # this: it lends nothing, so slurmctld should not count lent slices either
            wanted = self._vgpu_configured
        gpus, unplaced = self._tenants()
        return NodeReport(node=self.relay.node, time=self.observer.clock(),
                          vgpu_configured=self._vgpu_configured,
                          vgpu_wanted=wanted,
                          weight_wanted=self.relay.weight_wanted,
                          summaries=tuple(self.outbox[k] for k in sorted(self.outbox)),
                          just_started=tuple(sorted(self.observer.just_started)),
                          gpus=gpus, unplaced=unplaced)

    def _tenants(self) -> tuple[tuple[GpuTenants, ...] | None, tuple[tuple[int, int], ...]]:
        """This node's GPUs and who holds their slices, from the last cycle's snapshot."""
        with self.state.lock:
            snapshot = self.state.snapshot
        if snapshot is None:
            return None, ()
        tenancy = index_snapshot(snapshot).get(self.relay.node)
        if tenancy is None:
            return None, ()
        gpus = tuple(GpuTenants(t.gpu.slices, t.allocated_slices,
                                tuple(sorted(j.job_id for j, _ in t.jobs)))
                     for t in sorted(tenancy.gpus, key=lambda t: t.gpu.index))
        return gpus, tuple(sorted((j.job_id, j.vgpu_slices) for j in tenancy.unplaced))

    def write_report(self) -> None:
        if self.applier.dry_run:
            return
        path = self.relay.exchange.report(self.relay.node)
        report = self.report()
        # unchanged but for the time: touch the file (the controller reads its time from the
        # file and re-reads only replaced reports: 10,000 agents cost it 10,000 stats)
        content = report_to_bytes(dataclasses.replace(report, time=0.0))
        try:
            if content == self._last_report:
                os.utime(path, (report.time, report.time))
                return
            write_atomic(path, report_to_bytes(report))
            self._last_report = content
        except OSError as e:
            self._last_report = b""
            log.warning("vgpu: cannot write the report to the controller (%s): %s", path, e)

    def cycle(self) -> None:
        try:
            super().cycle()
        finally:
            snap = self.state.snapshot
            if snap is not None and snap.nodes:
                self._vgpu_configured = snap.nodes[0].vgpu_configured
            self._heard_controller = self.observer.health.ok
            self.write_report()

    def flush_summaries(self) -> None:
        super().flush_summaries()
        self.write_report()


def build_agent(cfg: DaemonConfig, *, events: SlurmClient | None = None,
                files: JobFiles | None = None, nvml: NvmlSource | None = None,
                inventories: Mapping[str, Sequence[InventoryGpuInfo]] | None = None,
                proc_root: Path = Path("/proc"), clock: Callable[[], float] | None = None,
                dry_run: bool = False) -> NodeAgent:
    """Wire a node agent: the daemon with the controller relay as its Slurm client; every
    dependency can be injected (tests)."""
    if cfg.exchange.dir is None:
        raise ConfigError("exchange.dir: the node agent needs the exchange directory "
                          "shared with the cluster controller")
    nodes = list(cfg.nodes) or default_node_names()
    if len(nodes) != 1:
        raise ConfigError(f"nodes: a node agent manages one node, got {len(nodes)}")
    exchange = ExchangeDir(Path(cfg.exchange.dir))
    if events is None:
        events = make_slurm_client("cli", cfg.slurm.bin_dir, cfg.slurm.command_timeout_seconds)
    relay = ControllerRelay(exchange, nodes[0], trusted_uids(cfg.exchange.writers),
                            cfg.exchange.stale_after_seconds, events,
                            clock=clock or time.time)
    period = cfg.control_period_seconds
    agent = build_daemon(cfg, slurm=relay, files=files, nvml=nvml, inventories=inventories,
                         proc_root=proc_root, dry_run=dry_run, backoff=(period, period),
                         daemon_class=NodeAgent)
    assert isinstance(agent, NodeAgent)
    if clock is not None:
        agent.observer.clock = clock
    agent.attach(relay)
    if dry_run:
        return agent
    try:
        (exchange.root / "from-node").mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"exchange.dir: cannot create {exchange.root}/from-node: "
                          f"{e.strerror or e}") from e
    return agent
