"""The policy daemon: observe -> plan (pure policies) -> apply, once per control period.

Robustness rules it follows:
- a failed cycle (any exception, a policy bug included) is logged and counted; the limits
  files keep what they had, so the hook keeps enforcing the last limits;
- Slurm unreachable: the observer backs off (exponential, capped) and reuses the last answer;
  no Slurm-side action is taken meanwhile; `vgpu_daemon_slurm_up` says so;
- restart: nothing is kept in memory that cannot be re-derived from Slurm and the job files.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.policies.applier import Applier
from slurm_vgpu.policies.config import DaemonConfig
from slurm_vgpu.policies.job_files import JobFiles, RuntimeDirJobFiles
from slurm_vgpu.policies.metrics import DaemonState
from slurm_vgpu.policies.nvml_source import NvmlError, NvmlSource, PynvmlSource
from slurm_vgpu.policies.observer import InventoryGpuInfo, Observer
from slurm_vgpu.policies.planner import plan_cycle
from slurm_vgpu.policies.slurm_client import SlurmClient, make_slurm_client

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
                             g.memory_bytes)
            for g in inv.gpus
        ]
    return result


class Daemon:
    def __init__(self, cfg: DaemonConfig, observer: Observer, applier: Applier,
                 state: DaemonState | None = None) -> None:
        self.cfg = cfg
        self.observer = observer
        self.applier = applier
        self.state = state or DaemonState()

    def cycle(self) -> None:
        started = time.perf_counter()
        snapshot = self.observer.observe()
        plan = plan_cycle(snapshot, self.cfg.policy)
        result = self.applier.apply(snapshot, plan.actions)
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
            for v in result.violations:
                kind = "unattributed" if v.job_id is None else "over_cap"
                st.backstop_events[(v.node, v.gpu_uuid, kind)] += 1

    def run(self, stop: threading.Event, max_cycles: int | None = None) -> None:
        done = 0
        while not stop.is_set():
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


def build_daemon(cfg: DaemonConfig, *, slurm: SlurmClient | None = None,
                 files: JobFiles | None = None, nvml: NvmlSource | None = None,
                 inventories: Mapping[str, Sequence[InventoryGpuInfo]] | None = None,
                 proc_root: Path = Path("/proc"), dry_run: bool = False) -> Daemon:
    """Wire a daemon from its config; every dependency can be injected (tests)."""
    nodes = list(cfg.nodes) or default_node_names()
    if inventories is None:
        inventories = load_inventories(cfg.inventory_path, nodes)
    if slurm is None:
        slurm = make_slurm_client(cfg.slurm.client, cfg.slurm.bin_dir,
                                  cfg.slurm.command_timeout_seconds)
    if files is None:
        files = RuntimeDirJobFiles(cfg.runtime_dir)
    if nvml is None and cfg.nvml:
        try:
            nvml = PynvmlSource()
        except (NvmlError, ImportError, OSError) as e:
            log.warning("vgpu: %s; the memory backstop and device metrics are off", e)
    observer = Observer(nodes, inventories, slurm, files, cfg.policy.share, nvml=nvml,
                        proc_root=proc_root, backoff_initial=cfg.slurm.backoff_initial_seconds,
                        backoff_max=cfg.slurm.backoff_max_seconds)
    return Daemon(cfg, observer, Applier(slurm, files, dry_run=dry_run))

