"""The policy daemon: observe -> plan (pure policies) -> apply, once per control period.

Robustness rules it follows:
- a failed cycle (any exception, a policy bug included) is logged and counted; the limits
  files keep what they had, so the hook keeps enforcing the last limits;
- Slurm unreachable: the observer backs off (exponential, capped) and reuses the last answer;
  no Slurm-side action is taken meanwhile; `vgpu_daemon_slurm_up` says so;
- restart: nothing is kept in memory that cannot be re-derived from Slurm and the job files,
  except the per-job utilization figures (job_tracker.py), which are refreshed into the
  jobs' AdminComment and continued from there (docs/accounting.md).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.policies.accounting.job_summary import JobSummary, Runner, write_summary
from slurm_vgpu.policies.accounting.job_tracker import JobTracker, SummaryWriter, WriteResult
from slurm_vgpu.policies.decide.actions import Action, CancelStep, RecordViolation
from slurm_vgpu.policies.decide.config import DaemonConfig
from slurm_vgpu.policies.decide.lent_file import REFUSED_NAME, format_lent, write_lent
from slurm_vgpu.policies.decide.planner import CyclePlan, plan_cycle
from slurm_vgpu.policies.decide.snapshot import Snapshot
from slurm_vgpu.policies.service.applier import Applier
from slurm_vgpu.policies.service.job_files import JobFiles, RuntimeDirJobFiles
from slurm_vgpu.policies.service.metrics import DaemonState
from slurm_vgpu.policies.service.nvml_source import (
    NvmlError,
    NvmlSource,
    PynvmlSource,
    VendorSources,
)
from slurm_vgpu.policies.service.observer import InventoryGpuInfo, Observer
from slurm_vgpu.policies.slurm.slurm_client import SlurmClient, command_runner, make_slurm_client

log = logging.getLogger("slurm_vgpu.daemon")


def default_node_names() -> list[str]:
    return [socket.gethostname().split(".", 1)[0]]


def load_inventories(path_template: str, nodes: Sequence[str]
                     ) -> dict[str, list[InventoryGpuInfo]]:
    """Read each node's inventory (`%n` in the path expands to the node name)."""
    from slurm_vgpu.gres.inventory import read_inventory

    result: dict[str, list[InventoryGpuInfo]] = {}
    for node in nodes:
        path = Path(path_template.replace("%n", node))
        try:
            inv = read_inventory(path)
        except ConfigError as e:
            raise ConfigError(f"inventory: {e}") from e
        if inv.node not in (node, "") and "%n" not in path_template and len(nodes) > 1:
            raise ConfigError(f"inventory: {path} describes node {inv.node}, not {node}; "
                              "use %n in the inventory path for several nodes")
        result[node] = [
            InventoryGpuInfo(g.index, g.uuid, g.slices, g.slice_bytes, g.slice_permille,
                             g.memory_bytes, g.vendor)
            for g in inv.gpus
        ]
    return result


# A step the backstop asked Slurm to cancel is not asked again for this long.
CANCEL_RETRY_SECONDS = 30.0

# (node, gpu uuid, job id or None, kind: memory | compute)
ViolationKey = tuple[str, str, int | None, str]


class Daemon:
    def __init__(self, cfg: DaemonConfig, observer: Observer, applier: Applier,
                 state: DaemonState | None = None, runtime_dir: Path | None = None,
                 summary_runner: Runner | None = None) -> None:
        self.cfg = cfg
        self.runtime_dir = runtime_dir
        self.observer = observer
        self.applier = applier
        self.state = state or DaemonState()
        self._violations: set[ViolationKey] = set()
        self._cancelled: dict[tuple[int, str], float] = {}
        # per-job utilization summaries in AdminComment (docs/accounting.md)
        self.summary_runner = summary_runner or command_runner(
            cfg.slurm.bin_dir, cfg.slurm.command_timeout_seconds)
        self.tracker = JobTracker()
        self.summaries = SummaryWriter(self._write_summary, dry_run=applier.dry_run)
        # The node agent lends only on a fresh word from the controller (fail safe): while
        # its "Slurm" is unavailable the lent file offers nothing.
        self.lend_only_when_slurm_ok = False

    def _write_summary(self, job_id: int, summary: JobSummary, running: bool | None,
                       admin_comment: str) -> str:
        # the rest of the AdminComment (placements, other nodes' summaries, site notes) is
        # kept: what slurmctld reported last (and, at job end, what accounting has)
        return write_summary(job_id, summary, run=self.summary_runner, running=running,
                             known_comment=admin_comment)

    def _summary_budget(self) -> float:
        """Seconds of one cycle the summary writes may take (each command is bounded by
        slurm.command_timeout_seconds; what does not fit waits for the next cycle)."""
        return max(1.0, self.cfg.control_period_seconds)

    def _account(self, snapshot: Snapshot, plan: CyclePlan,
                 new_violations: list[ViolationKey]) -> WriteResult:
        """Fold the cycle into the per-job figures; store ended jobs' (and due) summaries."""
        acc = self.cfg.accounting
        if not acc.enabled:
            self.tracker.jobs.clear()
            self.summaries.pending.clear()
            return WriteResult()
        ended = self.tracker.update(snapshot, plan.backfilled,
                                    [job for _, _, job, _ in new_violations if job is not None])
        return self.summaries.cycle(snapshot.time, self.tracker, ended, self.observer.health.ok,
                                    acc.update_interval_seconds, self._summary_budget())

    @staticmethod
    def _count_summaries(written: WriteResult, applied: Counter[str],
                         failed: Counter[str]) -> None:
        if written.written:
            applied["job_summary"] += written.written
        if written.failed:
            failed["job_summary"] += written.failed
        if written.dropped:
            failed["job_summary_dropped"] += written.dropped

    def flush_summaries(self) -> None:
        """At shutdown: store the running jobs' summaries so a restart continues them."""
        if not self.cfg.accounting.enabled or not self.observer.health.ok:
            return
        written = self.summaries.flush(self.tracker, self.observer.clock(),
                                       self._summary_budget())
        with self.state.lock:
            self._count_summaries(written, self.state.actions, self.state.action_errors)

    def _filter_repeats(self, actions: list[Action], now: float) -> list[Action]:
        """Drop cancel requests already sent recently (the step is on its way out)."""
        self._cancelled = {k: t for k, t in self._cancelled.items()
                           if now - t < CANCEL_RETRY_SECONDS}
        kept: list[Action] = []
        for a in actions:
            if isinstance(a, CancelStep):
                key = (a.job_id, a.step)
                if key in self._cancelled:
                    continue
                self._cancelled[key] = now
            kept.append(a)
        return kept

    def _record_violations(self, violations: list[RecordViolation]) -> list[ViolationKey]:
        """Log a violation when it starts (debug while it lasts); return the new ones."""
        current = {(v.node, v.gpu_uuid, v.job_id, v.kind): v for v in violations}
        new = [k for k in current if k not in self._violations]
        for key, v in current.items():
            level = logging.WARNING if key in new else logging.DEBUG
            log.log(level, "vgpu: backstop: %s (node %s, pids %s)", v.reason, v.node,
                    ",".join(map(str, v.pids)))
        for node, uuid, job, kind in self._violations - set(current):
            log.info("vgpu: backstop: over-cap %s on %s/%s (job %s) is gone", kind, node, uuid,
                     job)
        self._violations = set(current)
        return new

    def _publish_lent(self, snapshot: Snapshot, plan: CyclePlan) -> None:
        """Tell the SPANK plugin which GPUs' slices are lent (runtime_dir/lent)."""
        if self.runtime_dir is None or self.applier.dry_run or len(snapshot.nodes) != 1:
            return
        if not self.runtime_dir.is_dir():
            return  # no SPANK plugin has set this node up: nobody to tell
        node = snapshot.nodes[0]
        backfill = self.cfg.policy.backfill
        offered = plan.offered_gpus
        if self.lend_only_when_slurm_ok and not snapshot.slurm_ok:
            offered = {}
        try:
            # the preemptible partitions/QOS go with the offer: only their jobs may be placed
            # on lent slices by the plugin
            if write_lent(self.runtime_dir / "lent",
                          format_lent(node.name, node.gpus, offered,
                                      backfill.preemptible_partitions,
                                      backfill.preemptible_qos)):
                log.info("vgpu: lent slices now %s", offered or "none")
        except (OSError, ValueError) as e:
            log.warning("vgpu: cannot write %s/lent: %s", self.runtime_dir, e)

    def cycle(self) -> None:
        started = time.perf_counter()
        snapshot = self.observer.observe()
        plan = plan_cycle(snapshot, self.cfg.policy)
        actions = self._filter_repeats(plan.actions, time.monotonic())
        result = self.applier.apply(snapshot, actions)
        new_violations = self._record_violations(result.violations)
        # a lasting violation is one recorded action (when it starts), not one per cycle
        result.applied["record_violation"] = len(new_violations)
        if not new_violations:
            del result.applied["record_violation"]
        self._publish_lent(snapshot, plan)
        self._count_summaries(self._account(snapshot, plan, new_violations), result.applied,
                              result.failed)
        if result.slurm_error:
            self.observer.slurm_failed(result.slurm_error)
        elapsed = time.perf_counter() - started
        h = self.observer.health
        with self.state.lock:
            st = self.state
            st.snapshot, st.plan = snapshot, plan
            st.cycles += 1
            st.last_cycle_time = time.time()
            st.last_cycle_seconds = elapsed
            st.slurm_up = h.ok
            st.last_slurm_success = h.last_success
            st.slurm_failures = h.consecutive_failures
            st.nvml_up = self.observer.nvml is not None and not self.observer.nvml_error
            st.actions.update(result.applied)
            st.action_errors.update(result.failed)
            st.violations = result.violations
            for node, uuid, job_id, kind in new_violations:
                label = ("unattributed" if job_id is None
                         else "compute" if kind == "compute" else "over_cap")
                st.backstop_events[(node, uuid, label)] += 1

    def reload(self, new: DaemonConfig) -> None:
        """Take a new config's policy and accounting settings and period (SIGHUP). Paths,
        nodes, the Slurm client and the metrics endpoint need a restart."""
        fixed = ("nodes", "runtime_dir", "inventory_path", "slurm", "metrics", "nvml",
                 "exchange")
        ignored = [k for k in fixed if getattr(new, k) != getattr(self.cfg, k)]
        if ignored:
            log.warning("vgpu: reload: %s changed; restart the daemon to apply",
                        ", ".join(ignored))
        self.cfg = dataclasses.replace(self.cfg, policy=new.policy, log_level=new.log_level,
                                       control_period_seconds=new.control_period_seconds,
                                       accounting=new.accounting)
        logging.getLogger("slurm_vgpu.daemon").setLevel(new.log_level.upper())
        log.info("vgpu: reload: policy settings applied")

    def run(self, stop: threading.Event, max_cycles: int | None = None,
            reload: Callable[[], DaemonConfig | None] | None = None) -> None:
        """Cycle until `stop`; before each cycle `reload()` may hand over a new config."""
        done = 0
        while not stop.is_set():
            if reload is not None:
                new = reload()
                if new is not None:
                    self.reload(new)
            try:
                self.cycle()
            except Exception:
                # Never die on a bad cycle: the limits files still hold the last good limits.
                log.exception("vgpu: control cycle failed; keeping the last limits")
                with self.state.lock:
                    self.state.action_errors["cycle"] += 1
            done += 1
            if max_cycles is not None and done >= max_cycles:
                return
            stop.wait(self.cfg.control_period_seconds)
        try:
            self.flush_summaries()
        except Exception:
            log.exception("vgpu: storing the running jobs' summaries at shutdown failed")


def build_daemon(cfg: DaemonConfig, *, slurm: SlurmClient | None = None,
                 files: JobFiles | None = None, nvml: NvmlSource | None = None,
                 inventories: Mapping[str, Sequence[InventoryGpuInfo]] | None = None,
                 proc_root: Path = Path("/proc"), dry_run: bool = False,
                 summary_runner: Runner | None = None,
                 backoff: tuple[float, float] | None = None,
                 daemon_class: type[Daemon] | None = None) -> Daemon:
    """Wire a daemon from its config; every dependency can be injected (tests). `backoff`
    (initial, max seconds) replaces the slurm section's retry delays (the node agent's
    "Slurm" is a local file that costs nothing to retry)."""
    nodes = list(cfg.nodes) or default_node_names()
    if inventories is None:
        inventories = load_inventories(cfg.inventory_path, nodes)
    if slurm is None:
        slurm = make_slurm_client(cfg.slurm.client, cfg.slurm.bin_dir,
                                  cfg.slurm.command_timeout_seconds)
    if "%n" in cfg.runtime_dir and len(nodes) != 1:
        raise ConfigError("runtime_dir: %n needs exactly one node (run one daemon per node)")
    runtime_dir = Path(cfg.runtime_dir.replace("%n", nodes[0]))
    if files is None:
        files = RuntimeDirJobFiles(runtime_dir)
    if nvml is None and cfg.nvml:
        nvml = device_source(inventories)
    initial, most = backoff or (cfg.slurm.backoff_initial_seconds,
                                cfg.slurm.backoff_max_seconds)
    observer = Observer(nodes, inventories, slurm, files, cfg.policy.share, nvml=nvml,
                        proc_root=proc_root, backoff_initial=initial, backoff_max=most,
                        poll_interval=cfg.slurm.poll_interval_seconds,
                        lent_refused=runtime_dir / REFUSED_NAME)
    cls = daemon_class or Daemon
    daemon = cls(cfg, observer, Applier(slurm, files, dry_run=dry_run),
                 runtime_dir=runtime_dir, summary_runner=summary_runner)
    daemon.state.gpu_vendors = daemon.tracker.gpu_vendors = gpu_vendors(inventories)
    return daemon


def gpu_vendors(inventories: Mapping[str, Sequence[InventoryGpuInfo]]) -> dict[str, str]:
    """GPU uuid -> vendor, from the node inventories (metrics and job summaries show it)."""
    return {g.uuid: g.vendor for inv in inventories.values() for g in inv}


def _open_source(vendor: str) -> NvmlSource | None:
    try:
        if vendor == "amd":
            from slurm_vgpu.policies.service.rsmi_source import RsmiSource

            return RsmiSource()
        return PynvmlSource()
    except (NvmlError, ImportError, OSError) as e:
        log.warning("vgpu: %s; the memory backstop and device metrics of %s GPUs are off",
                    e, vendor)
        return None


def device_source(inventories: Mapping[str, Sequence[InventoryGpuInfo]]
                  ) -> NvmlSource | None:
    """The device readings for the inventory's GPUs, chosen per GPU by its vendor: NVML for
    nvidia, ROCm SMI for amd, both (VendorSources) on a node with both. A node whose
    inventory lists no GPU gets NVML, as before vendors existed."""
    by_vendor: dict[str, set[str]] = {}
    for inv in inventories.values():
        for g in inv:
            by_vendor.setdefault(g.vendor if g.vendor == "amd" else "nvidia", set()).add(g.uuid)
    if not by_vendor:
        return _open_source("nvidia")
    sources = {v: s for v in sorted(by_vendor, reverse=True)
               if (s := _open_source(v)) is not None}
    if not sources:
        return None
    if len(by_vendor) == 1:
        return next(iter(sources.values()))
    return VendorSources(sources, {v: by_vendor[v] for v in sources})

