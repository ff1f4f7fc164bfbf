"""The job summary through the REAL test cluster's accounting: written while the job runs
(scontrol) and after it ended (sacctmgr), read back with sacct and `vgpu report`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from click.testing import CliRunner

from slurm_vgpu.policies.accounting.job_summary import (
    GpuSlices,
    JobSummary,
    parse_summary,
    write_summary,
)
from slurm_vgpu.policies.accounting.report import parse_sacct_json
from slurm_vgpu.policies.accounting.report_cli import make_report_command

pytestmark = pytest.mark.slurm


def _runner(cluster: Any) -> Any:
    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        p = cluster.run(*argv, check=False, timeout=30)
        return p.returncode, p.stdout, p.stderr
    return run


def _admin_comment(cluster: Any, jobid: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        p = cluster.run("sacct", "-n", "-X", "-P", "-j", str(jobid), "-o", "AdminComment",
                        check=False, timeout=15)
        text = str(p.stdout).strip()
        if text:
            return text
        time.sleep(0.3)
    return text


def _summary(slices: int, avg: float) -> JobSummary:
    return JobSummary(slices=slices, slices_per_gpu=10,
                      gpus=(GpuSlices("GPU-00000000-1111-2222-3333-444444444444", slices),),
                      observed_s=42, avg_compute_pct=avg, peak_compute_pct=avg * 2,
                      peak_memory_mib=1024, borrowed_s=5, backfilled_s=0, backstop_events=1)


def test_summary_round_trip_running_and_ended(slurm_cluster: Any) -> None:
    cluster = slurm_cluster
    run = _runner(cluster)
    running = cluster.sbatch("--gres=vgpu:3", "-o", "/dev/null", "--wrap", "sleep 120")
    ended = cluster.sbatch("--gres=vgpu:2", "-o", "/dev/null", "--wrap", "true")
    try:
        cluster.wait_job(running, ("RUNNING",), timeout=60)
        written = write_summary(running, _summary(3, 12.5), run, running=True)
        info = cluster.job_info(running)
        assert parse_summary(info.get("AdminComment")) == _summary(3, 12.5)

        cluster.wait_job(ended, ("COMPLETED",), timeout=60)
        cluster.sacct_alloc_tres(ended, steps=("",))
        # job end, state unknown to the caller: scontrol refuses, sacctmgr stores it
        write_summary(ended, _summary(2, 4.0), run, running=None)
    finally:
        cluster.run("scancel", str(running), check=False)
    cluster.wait_job(running, ("CANCELLED",), timeout=60)

    assert parse_summary(_admin_comment(cluster, ended)) == _summary(2, 4.0)
    assert _admin_comment(cluster, running) == written

    # `vgpu report` over real `sacct --json`
    def sacct(argv: Sequence[str]) -> str:
        return str(cluster.run(*argv, timeout=60).stdout)

    # accounting is asynchronous: poll until the range query lists both jobs
    argv = ["sacct", "--json", "-X", "--allusers", "-S", "now-1hours", "-E", "now+1hours"]
    deadline = time.monotonic() + 30
    while True:
        records = {r.job_id: r for r in parse_sacct_json(sacct(argv))}
        if {str(ended), str(running)} <= records.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert records[str(ended)].summary == _summary(2, 4.0)
    assert records[str(ended)].slices == 2
    out = CliRunner().invoke(make_report_command(sacct), ["--job", str(ended)])
    assert out.exit_code == 0, out.output
    assert "average 4.0% of a GPU" in out.output
    out = CliRunner().invoke(make_report_command(sacct),
                             ["-S", "now-1hours", "-E", "now+1hours", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["jobs"] >= 2
