"""Prometheus metrics, produced at scrape time from the daemon's last cycle.

`DaemonCollector` is a prometheus_client custom collector: nothing is updated on the hot path;
each scrape reads the latest cycle record under a lock and yields fresh metric families.
All names start with `vgpu_`; ratios are 0..1, sizes in bytes, times in seconds, counters end
in `_total` (docs/daemon.md lists them).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from slurm_vgpu.policies.decide.actions import RecordViolation
from slurm_vgpu.policies.decide.planner import CyclePlan
from slurm_vgpu.policies.decide.snapshot import Snapshot

if TYPE_CHECKING:
    from slurm_vgpu.policies.service.controller import ControllerState


@dataclass(slots=True)
class DaemonState:
    """What the daemon shares with the collector (and `vgpu status` could read)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    snapshot: Snapshot | None = None
    plan: CyclePlan | None = None
    started: float = field(default_factory=time.time)
    cycles: int = 0
    last_cycle_time: float | None = None
    last_cycle_seconds: float = 0.0
    slurm_up: bool = False
    last_slurm_success: float | None = None
    slurm_failures: int = 0
    nvml_up: bool = False
    actions: Counter[str] = field(default_factory=Counter)
    action_errors: Counter[str] = field(default_factory=Counter)
    # (node, gpu uuid, kind) -> count; kind: over_cap (memory), compute, unattributed
    backstop_events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # current violations (the last cycle's), for the per-job gauge
    violations: list[RecordViolation] = field(default_factory=list)
    # GPU uuid -> vendor ("nvidia", "amd") from the node inventory; a GPU missing here is
    # labelled nvidia (as an inventory line without vendor= reads)
    gpu_vendors: dict[str, str] = field(default_factory=dict)


def _ratio(permille: int | None) -> float:
    return 0.0 if permille is None else permille / 1000.0


class DaemonCollector(Collector):
    def __init__(self, state: DaemonState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        # Returning no descriptions keeps registration cheap (no collect() at register time).
        return []

    def collect(self) -> Iterator[Metric]:
        st = self.state
        with st.lock:
            snapshot, plan = st.snapshot, st.plan
            health = (st.slurm_up, st.last_slurm_success, st.slurm_failures, st.nvml_up,
                      st.cycles, st.last_cycle_time, st.last_cycle_seconds, st.started)
            actions, errors = Counter(st.actions), Counter(st.action_errors)
            backstop = Counter(st.backstop_events)
            violations = list(st.violations)
            vendors = dict(st.gpu_vendors)
        yield from self._health(*health)
        yield from self._counters(actions, errors, backstop, violations)
        if snapshot is not None:
            yield from self._gpus(snapshot, plan, vendors)
            yield from self._jobs(snapshot, plan)

    def _health(self, slurm_up: bool, last_success: float | None, failures: int, nvml_up: bool,
                cycles: int, last_cycle: float | None, cycle_seconds: float, started: float
                ) -> Iterator[Metric]:
        yield GaugeMetricFamily("vgpu_daemon_slurm_up",
                                "1 if the last Slurm poll succeeded, else 0", value=slurm_up)
        yield GaugeMetricFamily(
            "vgpu_daemon_last_slurm_success_timestamp_seconds",
            "Unix time of the last successful Slurm poll (0: none yet)",
            value=last_success or 0.0)
        yield GaugeMetricFamily("vgpu_daemon_slurm_consecutive_failures",
                                "Failed Slurm polls since the last success", value=failures)
        yield GaugeMetricFamily("vgpu_daemon_nvml_up",
                                "1 if the last device sample (NVML, ROCm SMI) succeeded",
                                value=nvml_up)
        yield CounterMetricFamily("vgpu_daemon_cycles", "Control cycles run", value=cycles)
        yield GaugeMetricFamily("vgpu_daemon_last_cycle_timestamp_seconds",
                                "Unix time the last control cycle ended", value=last_cycle or 0)
        yield GaugeMetricFamily("vgpu_daemon_last_cycle_duration_seconds",
                                "Duration of the last control cycle", value=cycle_seconds)
        yield GaugeMetricFamily("vgpu_daemon_start_time_seconds",
                                "Unix time the daemon started", value=started)

    def _counters(self, actions: Counter[str], errors: Counter[str],
                  backstop: Counter[tuple[str, str, str]], violations: list[RecordViolation]
                  ) -> Iterator[Metric]:
        applied = CounterMetricFamily("vgpu_policy_actions", "Policy actions applied",
                                      labels=["action"])
        for kind, n in sorted(actions.items()):
            applied.add_metric([kind], n)
        yield applied
        failed = CounterMetricFamily("vgpu_policy_action_errors",
                                     "Policy actions that failed or were refused",
                                     labels=["action"])
        for kind, n in sorted(errors.items()):
            failed.add_metric([kind], n)
        yield failed
        events = CounterMetricFamily(
            "vgpu_backstop_events", "Device memory found over a job's cap (or unattributed)",
            labels=["node", "uuid", "kind"])
        for (node, uuid, kind), n in sorted(backstop.items()):
            events.add_metric([node, uuid, kind], n)
        yield events
        over = GaugeMetricFamily(
            "vgpu_backstop_over_cap_bytes",
            "Device memory held beyond the cap in the last cycle (job '' = unattributed)",
            labels=["node", "uuid", "job"])
        for v in violations:
            over.add_metric([v.node, v.gpu_uuid, "" if v.job_id is None else str(v.job_id)],
                            max(0, v.used_bytes - v.limit_bytes))
        yield over

    def _gpus(self, snapshot: Snapshot, plan: CyclePlan | None, vendors: dict[str, str]
              ) -> Iterator[Metric]:
        labels = ["node", "gpu", "uuid"]
        fams = {
            "slices": GaugeMetricFamily("vgpu_gpu_slices", "Slices the GPU is cut into",
                                        labels=labels),
            "alloc": GaugeMetricFamily("vgpu_gpu_slices_allocated",
                                       "Slices held by running jobs (lent ones included)",
                                       labels=labels),
            "mem": GaugeMetricFamily("vgpu_gpu_memory_bytes", "Device memory", labels=labels),
            "used": GaugeMetricFamily("vgpu_gpu_memory_used_bytes",
                                      "Device memory in use (NVML or ROCm SMI)",
                                      labels=labels),
            "util": GaugeMetricFamily("vgpu_gpu_utilization_ratio",
                                      "Device utilization (NVML or ROCm SMI busy percent), 0..1",
                                      labels=labels),
            "lent": GaugeMetricFamily("vgpu_gpu_slices_lent",
                                      "Idle slices of this GPU offered back to Slurm",
                                      labels=labels),
            "backfilled": GaugeMetricFamily("vgpu_gpu_slices_backfilled",
                                            "Slices of this GPU held by jobs on lent capacity",
                                            labels=labels),
            "over": GaugeMetricFamily("vgpu_gpu_overcommitted_slices",
                                      "Slices beyond the GPU's held by non-preemptible jobs",
                                      labels=labels),
        }
        # The vendor of each GPU as an info metric (value 1) rather than a label on every
        # per-GPU family: their label sets stay what dashboards and scrapers match on, and a
        # query adds the vendor with `* on (node, uuid) group_left (vendor) vgpu_gpu_info`.
        info = GaugeMetricFamily("vgpu_gpu_info",
                                 "1 per sliced GPU; its vendor (nvidia, amd) as a label",
                                 labels=[*labels, "vendor"])
        allocated: Counter[str] = Counter()
        backfilled: Counter[str] = Counter()
        backfilled_jobs = plan.backfilled if plan else set()
        for job in snapshot.jobs:
            for jg in job.gpus:
                allocated[jg.gpu_uuid] += jg.slices
                if job.job_id in backfilled_jobs:
                    backfilled[jg.gpu_uuid] += jg.slices
        lent = plan.offered_gpus if plan else {}
        overcommitted = plan.overcommitted if plan else {}
        node_fams = {
            "configured": GaugeMetricFamily("vgpu_node_slices_configured",
                                            "The node's vgpu count in slurm.conf",
                                            labels=["node"]),
            "current": GaugeMetricFamily("vgpu_node_slices_slurm",
                                         "The node's vgpu count slurmctld has now",
                                         labels=["node"]),
            "lent": GaugeMetricFamily("vgpu_node_slices_lent",
                                      "Idle slices offered back to Slurm (backfill)",
                                      labels=["node"]),
            "backfilled": GaugeMetricFamily("vgpu_node_slices_backfilled",
                                            "Slices running on lent capacity",
                                            labels=["node"]),
            "weight": GaugeMetricFamily("vgpu_node_weight", "The node's Slurm weight",
                                        labels=["node"]),
            "withheld": GaugeMetricFamily(
                "vgpu_node_backfill_withheld",
                "1 while the node lends none of its idle slices because a job that is not "
                "preemptible wants them (reason: holdoff, waiting_job)",
                labels=["node", "reason"]),
        }
        for node in snapshot.nodes:
            node_fams["configured"].add_metric([node.name], node.vgpu_configured)
            if node.vgpu_current is not None:
                node_fams["current"].add_metric([node.name], node.vgpu_current)
            if node.weight is not None:
                node_fams["weight"].add_metric([node.name], node.weight)
            if plan is not None:
                node_fams["lent"].add_metric([node.name], plan.offered.get(node.name, 0))
                if node.name in plan.withheld:
                    node_fams["withheld"].add_metric([node.name, plan.withheld[node.name]], 1)
                node_fams["backfilled"].add_metric([node.name],
                                                   plan.backfilled_slices.get(node.name, 0))
            for gpu in node.gpus:
                lv = [node.name, str(gpu.index), gpu.uuid]
                info.add_metric([*lv, vendors.get(gpu.uuid, "nvidia")], 1)
                fams["slices"].add_metric(lv, gpu.slices)
                fams["alloc"].add_metric(lv, allocated.get(gpu.uuid, 0))
                fams["mem"].add_metric(lv, gpu.memory_bytes)
                if gpu.memory_used_bytes is not None:
                    fams["used"].add_metric(lv, gpu.memory_used_bytes)
                if gpu.utilization_permille is not None:
                    fams["util"].add_metric(lv, _ratio(gpu.utilization_permille))
                fams["over"].add_metric(lv, overcommitted.get(gpu.uuid, 0))
                fams["lent"].add_metric(lv, lent.get(gpu.uuid, 0))
                fams["backfilled"].add_metric(lv, backfilled.get(gpu.uuid, 0))
        yield info
        yield from fams.values()
        yield from node_fams.values()

    def _jobs(self, snapshot: Snapshot, plan: CyclePlan | None) -> Iterator[Metric]:
        labels = ["node", "job", "gpu", "uuid"]
        gpu_index = {(g.node, g.uuid): g.index for n in snapshot.nodes for g in n.gpus}
        fams: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "slices": GaugeMetricFamily("vgpu_job_slices", "Slices the job holds", labels=labels),
            "limit": GaugeMetricFamily("vgpu_job_memory_limit_bytes", "The job's memory cap",
                                       labels=labels),
            "used": GaugeMetricFamily("vgpu_job_memory_used_bytes",
                                      "Device memory the job holds", labels=labels),
            "guaranteed": GaugeMetricFamily("vgpu_job_compute_guaranteed_ratio",
                                            "Guaranteed compute share, 0..1", labels=labels),
            "target": GaugeMetricFamily("vgpu_job_compute_target_ratio",
                                        "Compute share target in the limits file, 0..1",
                                        labels=labels),
            "achieved": GaugeMetricFamily("vgpu_job_compute_achieved_ratio",
                                          "Compute share achieved over the last period, 0..1",
                                          labels=labels),
            "idle": GaugeMetricFamily("vgpu_job_idle_seconds",
                                      "Time since the job last used the GPU", labels=labels),
            "throttled": CounterMetricFamily("vgpu_job_throttled_seconds",
                                             "Time the job's launches waited for its share",
                                             labels=labels),
            "backfilled": GaugeMetricFamily("vgpu_job_backfilled",
                                            "1 if the job runs on lent slices", labels=labels),
        }
        targets = {}
        if plan is not None:
            for a in plan.actions:
                permille = getattr(a, "permille", None)
                if permille is not None:
                    targets[(getattr(a, "job_id", 0), getattr(a, "gpu_uuid", ""))] = permille
        backfilled = plan.backfilled if plan else set()
        for job in snapshot.jobs:
            for jg in job.gpus:
                lv = [job.node, str(job.job_id),
                      str(gpu_index.get((job.node, jg.gpu_uuid), "")), jg.gpu_uuid]
                fams["slices"].add_metric(lv, jg.slices)
                fams["limit"].add_metric(lv, jg.memory_limit_bytes)
                fams["used"].add_metric(lv, jg.memory_used_bytes)
                fams["guaranteed"].add_metric(lv, _ratio(jg.compute_guaranteed_permille))
                target = targets.get((job.job_id, jg.gpu_uuid), jg.compute_limit_permille)
                fams["target"].add_metric(lv, _ratio(target))
                fams["achieved"].add_metric(lv, _ratio(jg.compute_used_permille))
                fams["idle"].add_metric(lv, jg.idle_seconds)
                fams["throttled"].add_metric(lv, jg.throttled_seconds)
                fams["backfilled"].add_metric(lv, 1.0 if job.job_id in backfilled else 0.0)
        yield from fams.values()


class ControllerCollector(Collector):
    """The cluster controller's health (`vgpu controller`), read at scrape time."""

    def __init__(self, state: ControllerState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        st = self.state
        with st.lock:
            values = (st.slurm_up, st.last_slurm_success, st.slurm_failures, st.cycles,
                      st.last_cycle_time, st.last_cycle_seconds, st.nodes,
                      st.agents_reporting, st.agents_silent, st.directives_written)
            actions, errors = Counter(st.actions), Counter(st.action_errors)
        (up, last_ok, failures, cycles, last_cycle, seconds, nodes, reporting, silent,
         written) = values
        yield GaugeMetricFamily("vgpu_controller_slurm_up",
                                "1 if the controller's last Slurm read succeeded", value=up)
        yield GaugeMetricFamily("vgpu_controller_last_slurm_success_timestamp_seconds",
                                "Unix time of the last successful Slurm read (0: none yet)",
                                value=last_ok or 0.0)
        yield GaugeMetricFamily("vgpu_controller_slurm_consecutive_failures",
                                "Failed Slurm reads since the last success", value=failures)
        yield CounterMetricFamily("vgpu_controller_cycles", "Controller cycles run",
                                  value=cycles)
        yield GaugeMetricFamily("vgpu_controller_last_cycle_timestamp_seconds",
                                "Unix time the last cycle ended", value=last_cycle)
        yield GaugeMetricFamily("vgpu_controller_last_cycle_duration_seconds",
                                "Duration of the last cycle (Slurm reads included)",
                                value=seconds)
        yield GaugeMetricFamily("vgpu_controller_nodes", "Nodes with vgpu in sinfo",
                                value=nodes)
        yield GaugeMetricFamily("vgpu_controller_agents_reporting",
                                "Node agents heard within exchange.stale_after_seconds",
                                value=reporting)
        yield GaugeMetricFamily("vgpu_controller_agents_silent",
                                "Node agents whose last report is older than "
                                "exchange.stale_after_seconds (their lent slices withdrawn)",
                                value=silent)
        yield CounterMetricFamily("vgpu_controller_directives_written",
                                  "Directives rewritten because their content changed",
                                  value=written)
        a = CounterMetricFamily("vgpu_controller_actions", "Slurm writes and summaries done",
                                labels=["action"])
        for k, v in sorted(actions.items()):
            a.add_metric([k], v)
        yield a
        e = CounterMetricFamily("vgpu_controller_action_errors",
                                "Slurm writes and summaries that failed", labels=["action"])
        for k, v in sorted(errors.items()):
            e.add_metric([k], v)
        yield e
