"""The cluster controller (`vgpu controller`): the only part that reads Slurm.

One per cluster. Once per control period it reads the whole cluster from slurmctld (one job
read and one node read, whatever the number of nodes), and
- tells every node's agent what its policies need from Slurm (exchange.py's directive: its
  running jobs' partition/QOS/start/AdminComment, the node's count, weight and partitions,
  and the first job that is not preemptible waiting for it, which holds back lending);
- applies what the agents' policies want slurmctld to know (the node's vgpu count for
  backfill, its weight for packing) with `scontrol update`, only where sinfo differs;
- withdraws the lent slices of a node whose agent went silent (fail safe);
- stores the job summaries the agents send into AdminComment (docs/accounting.md).

It keeps nothing that the next cycle cannot rebuild from Slurm and the exchange directory,
so a restarted (or standby) controller carries on where the last one stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from slurm_vgpu.policies.accounting.job_summary import Runner, SummaryError, write_summary_token
from slurm_vgpu.policies.decide.config import BackfillConfig, DaemonConfig
from slurm_vgpu.policies.decide.snapshot import PendingJob
from slurm_vgpu.policies.service.exchange import (
    FROM_NODE,
    Directive,
    ExchangeDir,
    ExchangeError,
    Heartbeat,
    NodeReport,
    directive_to_bytes,
    heartbeat_to_bytes,
    make_dirs,
    read_trusted_json,
    report_from_dict,
    write_atomic,
)
from slurm_vgpu.policies.service.steerer import Steerer
from slurm_vgpu.policies.slurm.job_table import JobTable
from slurm_vgpu.policies.slurm.slurm_client import (
    CliSlurmClient,
    SlurmClient,
    SlurmJob,
    SlurmNode,
    SlurmRequestRejected,
    SlurmUnavailable,
    command_runner,
    make_slurm_client,
)
from slurm_vgpu.policies.slurm.slurm_reader import PROGRAM as SLURM_READER
from slurm_vgpu.policies.slurm.slurm_reader import ReaderSlurmClient, find_slurm_reader
from slurm_vgpu.policies.slurm.squeue_formatted import FormattedSlurmClient
from slurm_vgpu.policies.slurm.steering_reads import SteeringSlurm

log = logging.getLogger("slurm_vgpu.controller")

# A summary the controller could not store is tried this many times, then given up.
SUMMARY_ATTEMPTS = 5


class WaitingIndex:
    """The first pending job that is not preemptible and may start on a node, for every node
    at once: per partition that is not preemptible, its candidates in queue order, so a node
    costs a look at the head of its partitions' lists (the per-node question of
    backfill_policy, answered for 10,000 nodes and 100,000 pending jobs)."""

    def __init__(self, pending: Iterable[PendingJob], cfg: BackfillConfig) -> None:
        self.cfg = cfg
        self.by_partition: dict[str, list[tuple[int, PendingJob]]] = {}
        for order, p in enumerate(pending):
            if p.qos and p.qos in cfg.preemptible_qos:
                continue
            for part in p.partitions:
                if part not in cfg.preemptible_partitions:
                    self.by_partition.setdefault(part, []).append((order, p))

    def first_for(self, partitions: Iterable[str], configured: int) -> PendingJob | None:
        # a job larger than the node can ever offer will not start there (as the policy says)
        most = configured + (self.cfg.max_offer_slices or configured)
        best: tuple[int, PendingJob] | None = None
        for part in partitions:
            for order, p in self.by_partition.get(part, ()):
                if best is not None and order >= best[0]:
                    break
                if p.vgpu_per_node <= most:
                    best = (order, p)
                    break
        return best[1] if best else None


@dataclass(slots=True)
class ControllerState:
    """What the controller's metrics show (read at scrape time under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    cycles: int = 0
    last_cycle_time: float = 0.0
    last_cycle_seconds: float = 0.0
    slurm_up: bool = False
    last_slurm_success: float | None = None
    slurm_failures: int = 0
    nodes: int = 0
    agents_reporting: int = 0
    agents_silent: int = 0
    directives_written: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    action_errors: Counter[str] = field(default_factory=Counter)
    start_time: float = field(default_factory=time.time)


@dataclass(slots=True)
class _SummaryState:
    token: str
    attempts: int = 0
    stored: bool = False


class Controller:
    def __init__(self, cfg: DaemonConfig, slurm: SlurmClient, exchange: ExchangeDir,
                 summary_runner: Runner | None = None, clock: Callable[[], float] = time.time,
                 dry_run: bool = False) -> None:
        self.cfg = cfg
        self.slurm = slurm
        self.exchange = exchange
        self.clock = clock
        self.dry_run = dry_run
        self.summary_runner = summary_runner or command_runner(
            cfg.slurm.bin_dir, cfg.slurm.command_timeout_seconds)
        self.state = ControllerState()
        self._written: dict[str, bytes] = {}  # node -> directive last written
        self._summaries: dict[tuple[str, int], _SummaryState] = {}
        self._report_errors: dict[str, str] = {}
        self._report_cache: dict[str, tuple[tuple[int, int, int, int], NodeReport]] = {}
        # node -> when its agent was last heard (the report file's time)
        self.heard: dict[str, float] = {}
        self._stored_index: dict[str, dict[int, str]] = {}  # node -> job -> token stored
        # node -> what its last directive was made of (unchanged: not even serialized again)
        self._inputs: dict[str, tuple[object, ...]] = {}
        # AdminComments this controller wrote (squeue's formatted read has none: the next
        # write of a running job starts from the last one written, not from nothing)
        self._comments: dict[int, str] = {}
        self._slurm_has_comments = getattr(slurm, "reports_admin_comment", True)
        self._next_attempt = 0.0
        self._failures = 0
        # vgpu-slurm-read: the whole job table every slurm.job_table_refresh_seconds, job
        # states (Slurm 24.05+) in the cycles between (job_table.py)
        self.job_table = (JobTable(slurm, cfg.slurm.job_table_refresh_seconds)
                          if isinstance(slurm, ReaderSlurmClient) else None)
        self._asked_for: set[int] = set()  # just-started jobs a full read was started for
        self.steerer = self._make_steerer(cfg)

    def _make_steerer(self, cfg: DaemonConfig) -> Steerer | None:
        if not cfg.steering.enabled:
            return None
        if not isinstance(self.slurm, CliSlurmClient):
            log.warning("vgpu: steering needs Slurm's commands (slurm.client: cli or auto); "
                        "new jobs are placed by node weights only")
            return None
        return Steerer(cfg.steering, cfg.control_period_seconds,
                       SteeringSlurm(self.slurm._run,
                                     self.slurm.held_jobs
                                     if isinstance(self.slurm, ReaderSlurmClient) else None),
                       self.clock,
                       cfg.exchange.stale_after_seconds, self.dry_run)

    # --- reads -------------------------------------------------------------------------------

    def read_slurm(self) -> tuple[list[SlurmJob], list[PendingJob], list[SlurmNode]]:
        """One job read (running and pending) and one node read for the whole cluster, side
        by side (two CLI processes: at 10,000 nodes sinfo takes half a second of its own)."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            node_read = pool.submit(self.slurm.nodes, None)
            try:
                if self.job_table is not None:
                    jobs, pending = self.job_table.read()
                else:
                    jobs = self.slurm.running_jobs(None)
                    pending = self.slurm.pending_jobs()
            finally:
                all_nodes = node_read.result()
        nodes = [n for n in all_nodes if n.vgpu_count is not None]
        return jobs, pending, nodes

    def read_reports(self) -> dict[str, NodeReport]:
        """Every agent's last report (only root's files: agents run as root)."""
        reports: dict[str, NodeReport] = {}
        where = self.exchange.root / FROM_NODE
        try:
            entries = list(os.scandir(where))
        except OSError as e:
            log.warning("vgpu: controller: cannot list %s: %s", where, e.strerror or e)
            return reports
        for entry in entries:
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            # an agent whose report did not change only touches it: its time is the file's
            # (only the owner, root, can set it), its content is re-read only when replaced
            # replaced (renamed over) = a new inode; owner and mode are checked again
            key = (st.st_ino, st.st_size, st.st_uid, st.st_mode)
            cached = self._report_cache.get(entry.name)
            if cached is not None and cached[0] == key:
                reports[cached[1].node] = cached[1]
                self.heard[cached[1].node] = max(cached[1].time, st.st_mtime)
                continue
            try:
                r = report_from_dict(read_trusted_json(path, frozenset({0})), str(path))
            except ExchangeError as e:
                if self._report_errors.get(entry.name) != str(e):
                    log.warning("vgpu: controller: %s", e)
                self._report_errors[entry.name] = str(e)
                continue
            self._report_errors.pop(entry.name, None)
            if f"{r.node}.json" != entry.name:
                log.warning("vgpu: controller: %s reports for node %s; ignored", path, r.node)
                continue
            self._report_cache[entry.name] = (key, r)
            reports[r.node] = r
            self.heard[r.node] = max(r.time, st.st_mtime)
        return reports

    # --- one cycle ------------------------------------------------------------------------------

    def _slurm_action(self, kind: str, what: str, call: Callable[[], None]) -> bool:
        if self.dry_run:
            log.info("vgpu: dry run: would %s: %s", kind, what)
            return True
        try:
            call()
        except SlurmRequestRejected as e:
            log.warning("vgpu: %s not applied: %s", kind, e)
            self.state.action_errors[kind] += 1
            return False
        log.info("vgpu: %s: %s", kind, what)
        self.state.actions[kind] += 1
        return True

    def _node_actions(self, node: SlurmNode, report: NodeReport | None, now: float) -> None:
        if report is None or node.vgpu_count is None:
            return  # no agent here (yet): leave the node as slurm.conf has it
        heard = self.heard.get(node.name, report.time)
        silent = now - heard > self.cfg.exchange.stale_after_seconds
        if silent:
            self.state.agents_silent += 1
            if node.vgpu_count != report.vgpu_configured and report.vgpu_configured > 0:
                self._slurm_action(
                    "set_node_vgpu_count",
                    f"{node.name}: gres=vgpu:{report.vgpu_configured} (its agent is silent "
                    f"for {now - heard:.0f}s: lent slices withdrawn)",
                    lambda: self.slurm.set_node_vgpu_count(node.name, report.vgpu_configured))
            return
        self.state.agents_reporting += 1
        wanted = report.vgpu_wanted
        if wanted is not None and wanted != node.vgpu_count:
            self._slurm_action(
                "set_node_vgpu_count", f"{node.name}: gres=vgpu:{wanted} (its agent's backfill)",
                lambda: self.slurm.set_node_vgpu_count(node.name, wanted))
        weight = report.weight_wanted
        down = any(s in node.state for s in ("down", "drain", "fail"))
        if weight is not None and weight != node.weight and not down:
            self._slurm_action(
                "set_node_weight", f"{node.name}: weight={weight} (its agent's packing)",
                lambda: self.slurm.set_node_weight(node.name, weight))

    def _store_summaries(self, reports: Mapping[str, NodeReport],
                         running: Mapping[int, SlurmJob], deadline: float) -> None:
        """Store the summaries the agents sent; later tokens of the same job and node replace
        earlier ones. Within a cycle each write starts from the AdminComment the previous one
        left (several nodes of one job)."""
        wanted: set[tuple[str, int]] = set()
        comments = self._comments
        if self._slurm_has_comments:
            comments.update((job_id, j.admin_comment) for job_id, j in running.items())
        for node, report in reports.items():
            for req in report.summaries:
                key = (node, req.job_id)
                wanted.add(key)
                st = self._summaries.get(key)
                if st is None or st.token != req.token:
                    st = self._summaries[key] = _SummaryState(req.token)
                if st.stored or time.monotonic() > deadline:
                    continue
                if not self.cfg.accounting.enabled:
                    st.stored = True
                    continue
                # a job slurmctld no longer lists as running has ended: scontrol, then sacctmgr.
                # Without a known AdminComment (first write since the controller started, on
                # squeue's formatted read) the accounting copy is read first, as at job end,
                # so the plugin's placement records are kept.
                is_running = (True if req.running and req.job_id in running
                              and req.job_id in comments else None)
                if self.dry_run:
                    log.info("vgpu: dry run: would store job %d's summary from %s",
                             req.job_id, node)
                    continue
                try:
                    comments[req.job_id] = write_summary_token(
                        req.job_id, req.token, self.summary_runner, is_running,
                        comments.get(req.job_id) or req.known_comment)
                    st.stored = True
                    self.state.actions["job_summary"] += 1
                except SummaryError as e:
                    st.attempts += 1
                    self.state.action_errors["job_summary"] += 1
                    if st.attempts >= SUMMARY_ATTEMPTS:
                        log.warning("vgpu: %s; giving up after %d attempts", e, st.attempts)
                        self.state.action_errors["job_summary_dropped"] += 1
                        st.stored = True  # the agent may forget it
                    else:
                        log.info("vgpu: %s; will retry", e)
        for key in [k for k in self._summaries if k not in wanted]:
            del self._summaries[key]
        self._stored_index = {}
        for (n, job_id), st in self._summaries.items():
            if st.stored:
                self._stored_index.setdefault(n, {})[job_id] = st.token
        owed = {job_id for _, job_id in wanted}
        for job_id in [j for j in comments if j not in running and j not in owed]:
            del comments[job_id]

    def _read_for_started(self, reports: Mapping[str, NodeReport],
                          running: Mapping[int, SlurmJob]) -> None:
        """Jobs an agent holds that this cycle's table does not list started since the last
        full read: one full read (in the background) for each new such job."""
        assert self.job_table is not None
        unknown = {j for r in reports.values() for j in r.just_started if j not in running}
        if unknown - self._asked_for:
            self.job_table.refresh_now()
        self._asked_for = unknown

    def _directive(self, node: SlurmNode, jobs: list[SlurmJob], waiting: PendingJob | None
                   ) -> Directive:
        stored = self._stored_for(node.name)
        # the AdminComment this controller wrote, where squeue's read has none (an agent that
        # restarts continues its jobs' figures from it)
        jobs = [dataclasses.replace(j, admin_comment=self._comments[j.job_id])
                if not j.admin_comment and j.job_id in self._comments else j for j in jobs]
        return Directive(node=node, jobs=tuple(jobs), waiting=(waiting,) if waiting else (),
                         summaries_stored=stored)

    def _stored_for(self, node: str) -> dict[int, str]:
        return self._stored_index.get(node, {})

    def _write(self, path: Path, content: bytes) -> None:
        if not self.dry_run:
            write_atomic(path, content)

    def cycle(self) -> None:
        started = time.perf_counter()
        now = self.clock()
        if self._failures and now < self._next_attempt:
            return
        try:
            jobs, pending, nodes = self.read_slurm()
        except SlurmUnavailable as e:
            self._slurm_failed(str(e), now)
            return
        if self._failures:
            log.info("vgpu: Slurm reachable again after %d failed read(s)", self._failures)
        self._failures = 0
        st = self.state
        st.agents_reporting = st.agents_silent = 0
        reports = self.read_reports()
        on_node: dict[str, list[SlurmJob]] = {}
        running: dict[int, SlurmJob] = {}
        for j in jobs:
            running[j.job_id] = j
            for name in j.vgpu_per_node:
                on_node.setdefault(name, []).append(j)
        if self.job_table is not None:
            self._read_for_started(reports, running)
        index = WaitingIndex(pending, self.cfg.policy.backfill)
        try:
            for node in nodes:
                self._node_actions(node, reports.get(node.name), now)
        except SlurmUnavailable as e:
            self._slurm_failed(str(e), now)
            return
        if self.steerer is not None:
            self._steer(reports)
        written = 0
        for node in nodes:
            report = reports.get(node.name)
            configured = report.vgpu_configured if report else (node.vgpu_count or 0)
            waiting = (index.first_for(node.partitions, configured)
                       if self.cfg.policy.backfill.enabled else None)
            node_jobs = on_node.get(node.name, [])
            inputs = (node, node_jobs, waiting, self._stored_for(node.name),
                      [self._comments.get(j.job_id) for j in node_jobs])
            if self._inputs.get(node.name) == inputs and node.name in self._written:
                continue
            self._inputs[node.name] = inputs
            content = directive_to_bytes(self._directive(node, node_jobs, waiting))
            if self._written.get(node.name) == content:
                continue
            try:
                self._write(self.exchange.directive(node.name), content)
            except (OSError, ExchangeError) as e:
                log.warning("vgpu: controller: cannot write %s's directive: %s", node.name, e)
                continue
            self._written[node.name] = content
            written += 1
        self._heartbeat(Heartbeat(self.clock(), True))
        # after the heartbeat: slow accounting (sacct, scontrol, sacctmgr with their timeouts)
        # must not make the agents think the controller is gone; the acknowledgements go out
        # with the next cycle's directives
        self._store_summaries(reports, running,
                              time.monotonic() + max(1.0, self.cfg.control_period_seconds))
        elapsed = time.perf_counter() - started
        with st.lock:
            st.cycles += 1
            st.last_cycle_time = time.time()
            st.last_cycle_seconds = elapsed
            st.slurm_up, st.last_slurm_success, st.slurm_failures = True, now, 0
            st.nodes = len(nodes)
            st.directives_written += written

    def _steer(self, reports: Mapping[str, NodeReport]) -> None:
        assert self.steerer is not None
        before = dict(self.steerer.counts)
        try:
            self.steerer.cycle(reports, self.heard)
        except SlurmUnavailable as e:
            log.warning("vgpu: steering: %s; held jobs start at their BeginTime", e)
        with self.state.lock:
            for kind, count in self.steerer.counts.items():
                if count > before.get(kind, 0):
                    self.state.actions[f"steer_{kind}"] += count - before.get(kind, 0)

    def _heartbeat(self, beat: Heartbeat) -> None:
        try:
            self._write(self.exchange.heartbeat, heartbeat_to_bytes(beat))
        except OSError as e:
            log.warning("vgpu: controller: cannot write %s: %s", self.exchange.heartbeat, e)

    def _slurm_failed(self, error: str, now: float) -> None:
        self._failures += 1
        s = self.cfg.slurm
        delay = min(s.backoff_max_seconds, s.backoff_initial_seconds * 2 ** (self._failures - 1))
        self._next_attempt = now + delay
        log.warning("vgpu: controller: Slurm unavailable (%s); agents keep their last limits, "
                    "retry in %.1fs", error, delay)
        # the agents hear it at once: they keep their last job lists and lend nothing new
        self._heartbeat(Heartbeat(now, False, error))
        if self.steerer is not None:
            self.steerer.withdraw()  # no new holds while nobody can steer them
        with self.state.lock:
            self.state.slurm_up = False
            self.state.slurm_failures = self._failures

    def reload(self, new: DaemonConfig) -> None:
        """SIGHUP: take the new policy (backfill's preemptible partitions/QOS), accounting,
        exchange timing and period; the Slurm client, paths and metrics need a restart."""
        if (new.exchange.dir, new.slurm, new.metrics, new.steering) != (
                self.cfg.exchange.dir, self.cfg.slurm, self.cfg.metrics, self.cfg.steering):
            log.warning("vgpu: reload: exchange.dir, slurm, metrics or steering changed; "
                        "restart the controller to apply")
        self.cfg = dataclasses.replace(
            self.cfg, policy=new.policy, accounting=new.accounting, log_level=new.log_level,
            control_period_seconds=new.control_period_seconds,
            exchange=dataclasses.replace(new.exchange, dir=self.cfg.exchange.dir))
        log.setLevel(new.log_level.upper())
        log.info("vgpu: reload: controller settings applied")

    def run(self, stop: threading.Event, max_cycles: int | None = None,
            reload: Callable[[], DaemonConfig | None] | None = None) -> None:
        done = 0
        while not stop.is_set():
            if reload is not None:
                new = reload()
                if new is not None:
                    self.reload(new)
            try:
                self.cycle()
            except Exception:
                log.exception("vgpu: controller cycle failed")
                with self.state.lock:
                    self.state.action_errors["cycle"] += 1
            done += 1
            if max_cycles is not None and done >= max_cycles:
                return
            stop.wait(self.cfg.control_period_seconds)
        if self.steerer is not None:
            self.steerer.withdraw()  # stopping: job_submit.lua holds no new job


def _reader_client(cfg: DaemonConfig) -> CliSlurmClient:
    """Jobs and nodes through vgpu-slurm-read (libslurm, only what the controller uses
    printed) where it is installed or configured, else squeue's formatted output (15x cheaper
    than --json) and the JSON node listing."""
    from slurm_vgpu.errors import ConfigError

    program = find_slurm_reader(cfg.slurm.reader)
    if program is None:
        log.info("vgpu: controller: reading Slurm with squeue and sinfo/scontrol (slurm.reader: "
                 "%s%s)", cfg.slurm.reader,
                 "" if cfg.slurm.reader == "cli" else f"; no {SLURM_READER} installed")
        return FormattedSlurmClient(cfg.slurm.bin_dir, cfg.slurm.command_timeout_seconds)
    if not os.access(program, os.X_OK):
        raise ConfigError(f"slurm.reader: {program} is not an executable file: install "
                          f"{SLURM_READER} there (make install, the .deb) or set auto")
    log.info("vgpu: controller: reading Slurm with %s", program)
    return ReaderSlurmClient(program, cfg.slurm.bin_dir, cfg.slurm.command_timeout_seconds)


def build_controller(cfg: DaemonConfig, *, slurm: SlurmClient | None = None,
                     summary_runner: Runner | None = None,
                     clock: Callable[[], float] = time.time,
                     dry_run: bool = False) -> Controller:
    from slurm_vgpu.errors import ConfigError

    if cfg.exchange.dir is None:
        raise ConfigError("exchange.dir: the cluster controller needs the exchange directory "
                          "shared with the node agents")
    exchange = ExchangeDir(Path(cfg.exchange.dir))
    if not dry_run:
        try:
            make_dirs(exchange.root)
        except OSError as e:
            raise ConfigError(f"exchange.dir: cannot create {exchange.root}: "
                              f"{e.strerror or e}") from e
    if slurm is None:
        slurm = make_slurm_client(cfg.slurm.client, cfg.slurm.bin_dir,
                                  cfg.slurm.command_timeout_seconds)
        if type(slurm) is CliSlurmClient:
            slurm = _reader_client(cfg)
    return Controller(cfg, slurm, exchange, summary_runner=summary_runner, clock=clock,
                      dry_run=dry_run)
