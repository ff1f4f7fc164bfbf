"""The Grafana dashboard and the alert rules only use metrics the daemon exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from slurm_vgpu.policies.decide.actions import RecordViolation
from slurm_vgpu.policies.decide.config import BackfillConfig, PolicyConfig
from slurm_vgpu.policies.decide.planner import plan_cycle
from slurm_vgpu.policies.service.controller import ControllerState
from slurm_vgpu.policies.service.metrics import ControllerCollector, DaemonCollector, DaemonState
from slurm_vgpu.policies.sim.synthetic import synthetic_cluster

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
METRIC = re.compile(r"\bvgpu_[a-z0-9_]+")


def exported_names() -> set[str]:
    snapshot = synthetic_cluster(nodes=2, gpus_per_node=2, jobs=10)
    state = DaemonState(snapshot=snapshot, plan=plan_cycle(snapshot, PolicyConfig(
        backfill=BackfillConfig(enabled=True, preemptible_partitions=("scavenger",)))))
    state.actions["set_compute_limit"] += 1
    state.action_errors["cycle"] += 1
    state.backstop_events[("node0000", "GPU-x", "over_cap")] += 1
    state.violations = [RecordViolation("node0000", "GPU-x", 1, 10, 5, (1,), "test")]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(state))
    ctl = ControllerState()  # the cluster controller's endpoint (vgpu controller)
    ctl.actions["set_node_vgpu_count"] += 1
    ctl.action_errors["job_summary"] += 1
    registry.register(ControllerCollector(ctl))
    text = generate_latest(registry).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    # Families without samples here (NVML readings) still declare themselves.
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name + "_total" if kind == "counter" else name)
    assert all(n.startswith("vgpu_") for n in names)
    return names


def test_every_family_has_help_and_follows_conventions() -> None:
    names = exported_names()
    for name in names:
        assert re.fullmatch(r"vgpu_[a-z0-9_]+", name), name
    assert "vgpu_daemon_last_slurm_success_timestamp_seconds" in names
    assert {"vgpu_gpu_slices", "vgpu_job_memory_used_bytes", "vgpu_job_compute_achieved_ratio",
            "vgpu_job_throttled_seconds_total", "vgpu_policy_actions_total",
            "vgpu_backstop_events_total", "vgpu_node_slices_backfilled"} <= names


def test_alert_rules_use_exported_metrics() -> None:
    names = exported_names()
    doc = yaml.safe_load((CONTRIB / "prometheus" / "vgpu-alerts.yml").read_text())
    exprs = [rule["expr"] for group in doc["groups"] for rule in group["rules"]]
    assert exprs
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used and used <= names, used - names


def test_grafana_dashboard_uses_exported_metrics() -> None:
    names = exported_names()
    dash = json.loads((CONTRIB / "grafana" / "slurm-vgpu-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert len(used) >= 15
    assert used <= names, used - names


def test_gpu_vendor_is_exported_as_an_info_metric() -> None:
    snapshot = synthetic_cluster(nodes=1, gpus_per_node=2, jobs=2)
    gpus = [g for n in snapshot.nodes for g in n.gpus]
    state = DaemonState(snapshot=snapshot, plan=None, gpu_vendors={gpus[1].uuid: "amd"})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(state))
    text = generate_latest(registry).decode()
    node = snapshot.nodes[0].name
    for gpu, vendor in ((gpus[0], "nvidia"), (gpus[1], "amd")):
        assert (f'vgpu_gpu_info{{gpu="{gpu.index}",node="{node}",uuid="{gpu.uuid}",'
                f'vendor="{vendor}"}} 1.0') in text
    # the other per-GPU families keep their label sets
    assert f'vgpu_gpu_slices{{gpu="{gpus[0].index}",node="{node}",uuid="{gpus[0].uuid}"}}' in text
