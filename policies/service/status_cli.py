"""`vgpu status`: GPUs, slices and jobs (caps, usage, shares) on this node; table or --json."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import click

from slurm_vgpu.policies.decide.config import DaemonConfig
from slurm_vgpu.policies.decide.lent_file import parse_lent
from slurm_vgpu.policies.decide.snapshot import Snapshot
from slurm_vgpu.policies.service.daemon_cli import apply_overrides, resolve_config


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / (1 << 30):.1f}G"


def _opt(value: object) -> str:
    return "?" if value is None else str(value)


def _pct(permille: int | None) -> str:
    return "-" if permille is None else f"{permille / 10:.0f}%"


_WITHHELD = {
    "holdoff": "a job that is not preemptible was requeued from lent slices "
               "(backfill.holdoff_seconds)",
    "waiting_job": "a job that is not preemptible waits for vgpu on this node",
}


def snapshot_to_dict(snapshot: Snapshot, slurm_error: str = "",
                     lent: dict[int, int] | None = None,
                     withheld: dict[str, str] | None = None) -> dict[str, Any]:
    gpu_index = {(g.node, g.uuid): g.index for n in snapshot.nodes for g in n.gpus}
    nodes = []
    for node in snapshot.nodes:
        allocated: dict[str, int] = {}
        jobs = []
        for job in snapshot.jobs:
            if job.node != node.name:
                continue
            for jg in job.gpus:
                allocated[jg.gpu_uuid] = allocated.get(jg.gpu_uuid, 0) + jg.slices
            jobs.append({
                "job_id": job.job_id, "uid": job.uid, "partition": job.partition,
                "qos": job.qos, "share": job.share.name.lower(), "slices": job.vgpu_slices,
                "placed": bool(job.gpus),
                "gpus": [{
                    "index": gpu_index.get((node.name, jg.gpu_uuid)), "uuid": jg.gpu_uuid,
                    "slices": jg.slices, "memory_limit_bytes": jg.memory_limit_bytes,
                    "memory_used_bytes": jg.memory_used_bytes,
                    "compute_guaranteed_permille": jg.compute_guaranteed_permille,
                    "compute_target_permille": jg.compute_limit_permille,
                    "compute_achieved_permille": jg.compute_used_permille,
                    "idle_seconds": round(jg.idle_seconds, 1),
                    "throttled_seconds": round(jg.throttled_seconds, 3),
                } for jg in job.gpus],
            })
        nodes.append({
            "name": node.name, "slurm_state": node.state,
            "vgpu_configured": node.vgpu_configured, "vgpu_slurm": node.vgpu_current,
            "weight": node.weight,
            "lent_slices": {str(k): v for k, v in (lent or {}).items()},
            # why idle slices are not lent now (None: nothing withheld)
            "backfill_withheld": (withheld or {}).get(node.name),
            "gpus": [{
                "index": g.index, "uuid": g.uuid, "slices": g.slices,
                "slices_allocated": allocated.get(g.uuid, 0), "slice_bytes": g.slice_bytes,
                "memory_bytes": g.memory_bytes, "memory_used_bytes": g.memory_used_bytes,
                "utilization_permille": g.utilization_permille,
            } for g in node.gpus],
            "jobs": jobs,
        })
    return {"time": snapshot.time, "slurm_ok": snapshot.slurm_ok, "slurm_error": slurm_error,
            "nodes": nodes}


def render_table(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    if not doc["slurm_ok"]:
        lines.append(f"warning: Slurm unavailable ({doc['slurm_error']}); jobs from "
                     "the runtime directory")
    for node in doc["nodes"]:
        lines.append(
            f"node {node['name']}  state={node['slurm_state'] or '?'}  "
            f"vgpu={node['vgpu_configured']} (slurm: {_opt(node['vgpu_slurm'])}, "
            f"lent: {sum(node['lent_slices'].values())})  weight={_opt(node['weight'])}")
        if node.get("backfill_withheld"):
            reason = node["backfill_withheld"]
            lines.append(f"  backfill withheld: {_WITHHELD.get(reason, reason)}")
        lines.append(f"  {'GPU':<4}{'UUID':<42}{'SLICES':>8}{'ALLOC':>7}{'MEMORY':>16}{'UTIL':>6}")
        for g in node["gpus"]:
            mem = f"{_gib(g['memory_used_bytes'])}/{_gib(g['memory_bytes'])}"
            lines.append(f"  {g['index']:<4}{g['uuid']:<42}{g['slices']:>8}"
                         f"{g['slices_allocated']:>7}{mem:>16}{_pct(g['utilization_permille']):>6}")
        if not node["jobs"]:
            lines.append("  (no vgpu jobs)")
            continue
        lines.append(f"  {'JOB':<10}{'UID':>6} {'SHARE':<11}{'GPU':>4}{'SLICES':>7}"
                     f"{'MEM USED/CAP':>16}{'GUAR':>6}{'TARGET':>7}{'ACHVD':>6}{'IDLE':>7}")
        for job in node["jobs"]:
            head = f"  {job['job_id']:<10}{job['uid']:>6} {job['share']:<11}"
            if not job["gpus"]:
                lines.append(f"{head}{'?':>4}{job['slices']:>7}  (not placed yet)")
            for jg in job["gpus"]:
                mem = f"{_gib(jg['memory_used_bytes'])}/{_gib(jg['memory_limit_bytes'])}"
                lines.append(
                    f"{head}{jg['index'] if jg['index'] is not None else '?':>4}"
                    f"{jg['slices']:>7}{mem:>16}{_pct(jg['compute_guaranteed_permille']):>6}"
                    f"{_pct(jg['compute_target_permille']):>7}"
                    f"{_pct(jg['compute_achieved_permille']):>6}{jg['idle_seconds']:>6.0f}s")
    return "\n".join(lines)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Daemon YAML config to take paths and nodes from.")
@click.option("--node", "nodes", multiple=True, help="Slurm node (default: this host).")
@click.option("--runtime-dir", default=None, help="Override runtime_dir.")
@click.option("--inventory", default=None, help="Override the inventory path.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--sample-seconds", type=click.FloatRange(0, 60), default=1.0, show_default=True,
              help="Measure achieved shares over this interval (0: skip).")
def status(config_path: Path | None, nodes: tuple[str, ...], runtime_dir: str | None,
           inventory: str | None, as_json: bool, sample_seconds: float) -> None:
    """Show GPUs, slices and jobs with their caps, usage and compute shares on this node."""
    cfg: DaemonConfig = apply_overrides(resolve_config(config_path), nodes, runtime_dir,
                                        inventory, None)
    from slurm_vgpu.policies.service.daemon import Daemon, build_daemon

    # The observer's warnings are daemon talk ("keeping the last limits"); status reports
    # Slurm problems in its own output instead.
    logging.getLogger("slurm_vgpu.daemon").setLevel(logging.ERROR)
    d: Daemon
    if cfg.exchange.dir is not None:
        # a node agent's node: Slurm's view comes from the controller's directive (no RPC)
        from slurm_vgpu.policies.service.agent import build_agent

        d = build_agent(cfg, dry_run=True)
    else:
        d = build_daemon(cfg, dry_run=True)
    snapshot = d.observer.observe()
    if sample_seconds > 0 and snapshot.jobs:
        time.sleep(sample_seconds)
        d.observer.health.next_attempt = 0.0  # poll again now, no backoff for a one-shot
        snapshot = d.observer.observe()
    lent: dict[int, int] = {}
    if d.runtime_dir is not None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            lent = parse_lent((d.runtime_dir / "lent").read_text())
    from slurm_vgpu.policies.decide.planner import plan_cycle

    withheld = plan_cycle(snapshot, cfg.policy).withheld  # pure: nothing is applied
    doc = snapshot_to_dict(snapshot, d.observer.health.last_error, lent, withheld)
    doc["slurm_ok"] = d.observer.health.ok  # fresh or within slurm.poll_interval_seconds
    click.echo(json.dumps(doc, indent=2) if as_json else render_table(doc))

