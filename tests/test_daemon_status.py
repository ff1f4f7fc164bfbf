"""`vgpu status`: table and JSON, also when Slurm cannot be reached."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from test_daemon_unit import GIB, UUID0, UUID1, write_job

from slurm_vgpu.cli import main as vgpu_main
from slurm_vgpu.gres.inventory import InventoryGpu, NodeInventory, format_inventory
from slurm_vgpu.native import SharePolicy as NativeShare

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="limits files must be root-owned")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "inv.conf").write_text(format_inventory(NodeInventory("n1", (
        InventoryGpu(0, UUID0, 10, 8 * GIB, 100, 80 * GIB, "A100"),
        InventoryGpu(1, UUID1, 10, 8 * GIB, 100, 80 * GIB, "A100")))))
    write_job(tmp_path / "run", 11, 3, NativeShare.BURST)
    write_job(tmp_path / "run", 12, 5, NativeShare.GUARANTEED, UUID1, 1)
    (tmp_path / "run" / "lent").write_text("version=1\nnode=n1\ngpu index=1 uuid=x slices=2\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"nodes: [n1]\nruntime_dir: {tmp_path / 'run'}\n"
                   f"inventory: {tmp_path / 'inv.conf'}\nnvml: false\n"
                   f"slurm: {{bin_dir: {tmp_path / 'no-slurm'}}}\n")
    return cfg


def test_status_json_without_slurm(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vgpu_main(["status", "--config", str(config), "--json", "--sample-seconds", "0"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["slurm_ok"] is False and "not found" in doc["slurm_error"]
    (node,) = doc["nodes"]
    assert [g["slices_allocated"] for g in node["gpus"]] == [3, 5]
    assert node["lent_slices"] == {"1": 2}
    jobs = {j["job_id"]: j for j in node["jobs"]}
    assert jobs[11]["share"] == "burst"
    (g,) = jobs[11]["gpus"]
    assert (g["index"], g["memory_limit_bytes"], g["compute_target_permille"]) == (
        0, 24 * GIB, 300)


def test_status_table(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vgpu_main(["status", "--config", str(config), "--sample-seconds", "0"]) == 0
    out = capsys.readouterr()
    assert "warning: Slurm unavailable" in out.out
    assert "lent: 2" in out.out
    rows = [line.split() for line in out.out.splitlines() if line.strip().startswith("1")]
    assert ["11", "1000", "burst", "0", "3", "0.0G/24.0G", "30%", "30%", "0%", "0s"] in rows
    assert out.err == ""


def test_status_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"inventory: {tmp_path / 'missing.conf'}\nnodes: [n1]\n")
    assert vgpu_main(["status", "--config", str(cfg)]) == 2
    assert "inventory" in capsys.readouterr().err


def test_daemon_once_dry_run_changes_nothing(config: Path, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from slurm_vgpu.native import read_limits_file

    limits = tmp_path / "run" / "jobs" / "11" / "limits"
    before = read_limits_file(limits)
    assert vgpu_main(["daemon", "--config", str(config), "--once", "--dry-run"]) == 0
    assert read_limits_file(limits) == before
    assert "would set_compute_limit" in caplog.text


def test_daemon_metrics_port_in_use_names_the_field(config: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = vgpu_main(["daemon", "--config", str(config), "--metrics-port", str(port)])
    assert code == 2
    assert "metrics.port" in capsys.readouterr().err


def test_daemon_sighup_reloads_policy_and_refuses_bad_config(config: Path, tmp_path: Path
                                                             ) -> None:
    import signal
    import socket
    import subprocess
    import sys
    import time

    from slurm_vgpu.native import read_limits_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = config.read_text() + "control_period_seconds: 0.2\n"
    config.write_text(base)
    limits = tmp_path / "run" / "jobs" / "11" / "limits"
    log = tmp_path / "daemon.log"

    def target() -> int:
        return read_limits_file(limits).gpus[0].compute_limit_permille

    def wait(pred: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not pred():
            assert time.monotonic() < deadline, f"{what}:\n{log.read_text()}"
            time.sleep(0.1)

    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "slurm_vgpu.cli", "daemon", "--config",
                                 str(config), "--metrics-port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait(lambda: target() == 1000, "burst share (jobs from the runtime dir)")
        config.write_text(base + "share: {max_burst_permille: 500}\n")
        proc.send_signal(signal.SIGHUP)
        wait(lambda: target() == 500, "the reloaded cap")
        config.write_text(base + "share: {max_burst_permille: lots}\n")
        proc.send_signal(signal.SIGHUP)
        wait(lambda: "reload refused" in log.read_text(), "the bad config refused")
        assert "share.max_burst_permille" in log.read_text()
        assert proc.poll() is None and target() == 500
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_status_says_why_backfill_is_withheld() -> None:
    from slurm_vgpu.policies.decide.snapshot import NodeState, Snapshot
    from slurm_vgpu.policies.service.status_cli import render_table, snapshot_to_dict

    snap = Snapshot(time=0.0, nodes=(NodeState("n1", (), 20, 20, 1, "mixed"),), jobs=())
    doc = snapshot_to_dict(snap, withheld={"n1": "waiting_job"})
    assert doc["nodes"][0]["backfill_withheld"] == "waiting_job"
    assert ("backfill withheld: a job that is not preemptible waits for vgpu on this node"
            in render_table(doc))
    assert "backfill withheld" not in render_table(snapshot_to_dict(snap))
