"""`vgpu report` on synthetic `sacct --json` (the 22.05 layout, as the real cluster prints it;
tests/test_summary_slurm.py runs it against the real accounting database)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slurm_vgpu.policies.accounting.job_summary import GpuSlices, JobSummary, format_summary
from slurm_vgpu.policies.accounting.report import build_report, parse_sacct_json
from slurm_vgpu.policies.accounting.report_cli import make_report_command


def sacct_job(job_id: int, user: str, account: str, slices: int, elapsed: int,
              avg_pct: float | None, partition: str = "gpu") -> dict[str, Any]:
    comment = None
    if avg_pct is not None:
        comment = format_summary(JobSummary(slices, 10, (GpuSlices("GPU-aa", slices),),
                                            elapsed, avg_pct, avg_pct, 100))
    return {"job_id": job_id, "user": user, "account": account, "partition": partition,
            "state": {"current": "COMPLETED", "reason": "None"},
            "time": {"elapsed": elapsed, "start": 1, "end": 1 + elapsed},
            "comment": {"administrator": comment, "job": None, "system": None},
            "tres": {"allocated": [{"type": "cpu", "name": None, "id": 1, "count": 1},
                                   {"type": "gres", "name": "vgpu", "id": 1001,
                                    "count": slices}]}}


def sacct_text(jobs: list[dict[str, Any]]) -> str:
    return json.dumps({"meta": {}, "errors": [], "jobs": jobs})


JOBS = [
    sacct_job(1, "alice", "physics", 5, 3600, 50.0),   # 5 slice-h alloc, 5 used: 100 %
    sacct_job(2, "alice", "physics", 4, 7200, 4.0),    # 8 alloc, 0.8 used: 10 %
    sacct_job(3, "bob", "chem", 2, 3600, None),         # no summary
    sacct_job(4, "bob", "chem", 0, 3600, None),         # CPU only: not a vgpu job
]


def test_aggregates_by_user_account_partition() -> None:
    records = parse_sacct_json(sacct_text(JOBS))
    assert [r.job_id for r in records] == ["1", "2", "3"]
    rep = build_report(records, "s", "e")
    assert rep.jobs == 3 and rep.jobs_without_summary == 1
    assert rep.total.alloc_slice_h == pytest.approx(15.0)
    assert rep.total.used_slice_h == pytest.approx(5.8)
    assert rep.total.efficiency_pct == pytest.approx(100 * 5.8 / 13.0)
    users = {g.key: g for g in rep.by_user}
    assert users["alice"].efficiency_pct == pytest.approx(100 * 5.8 / 13.0)
    assert users["bob"].efficiency_pct is None
    assert [j.job_id for j in rep.worst_jobs] == ["2", "1"]


def fake_sacct(jobs: list[dict[str, Any]], calls: list[list[str]]) -> Any:
    def run(argv: Sequence[str]) -> str:
        calls.append(list(argv))
        if "-j" in argv:
            wanted = argv[argv.index("-j") + 1]
            return sacct_text([j for j in jobs if str(j["job_id"]) == wanted])
        return sacct_text(jobs)
    return run


def test_cli_table_json_png(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    cmd = make_report_command(fake_sacct(JOBS, calls))
    out = CliRunner().invoke(cmd, ["--start", "2026-01-01", "--end", "2026-02-01"])
    assert out.exit_code == 0, out.output
    assert calls[0] == ["sacct", "--json", "-X", "--allusers", "-S", "2026-01-01",
                        "-E", "2026-02-01"]
    assert "1 of them have no vgpu summary" in out.output
    assert "alice" in out.output and "WORST JOBS" in out.output
    out = CliRunner().invoke(cmd, ["--json", "--png", str(tmp_path / "r.png")])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["jobs_without_summary"] == 1 and data["by_account"][0]["key"] == "physics"
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_one_job() -> None:
    cmd = make_report_command(fake_sacct(JOBS, []))
    out = CliRunner().invoke(cmd, ["--job", "2"])
    assert out.exit_code == 0, out.output
    assert "average 4.0% of a GPU" in out.output and "efficiency 10.0%" in out.output
    assert "ask for fewer" in out.output
    out = CliRunner().invoke(cmd, ["--job", "3"])
    assert "no vgpu summary" in out.output
    out = CliRunner().invoke(cmd, ["--job", "77"])
    assert out.exit_code == 1 and "knows no job" in out.output
    out = CliRunner().invoke(cmd, ["--job", "2; rm"])
    assert out.exit_code == 2 and "not a job id" in out.output


def test_sacct_garbage_is_a_clear_error() -> None:
    cmd = make_report_command(lambda argv: "sacct: error: Problem talking to the database")
    out = CliRunner().invoke(cmd, [])
    assert out.exit_code == 1 and "sacct --json printed something unexpected" in out.output


# ------------------------------------------------------------------ GPU vendor (issue 17)


def test_report_shows_each_jobs_gpu_vendor() -> None:
    amd = sacct_job(5, "carol", "bio", 4, 3600, 25.0)
    amd["comment"]["administrator"] = format_summary(JobSummary(
        4, 10, (GpuSlices("GPU-a9201ef500000000", 4, "amd"),), 3600, 25.0, 30.0, 100))
    records = parse_sacct_json(sacct_text([*JOBS, amd]))
    assert [r.vendor for r in records] == ["nvidia", "nvidia", "unknown", "amd"]
    rep = build_report(records, "s", "e")
    assert {g.key: g.jobs for g in rep.by_vendor} == {"nvidia": 2, "amd": 1, "unknown": 1}
    data = rep.to_json()
    assert {g["key"] for g in data["by_vendor"]} == {"nvidia", "amd", "unknown"}
    assert {j["job_id"]: j["vendor"] for j in data["worst_jobs"]}["5"] == "amd"
    from slurm_vgpu.policies.accounting.report import format_job, format_table

    table = format_table(rep)
    assert "VENDOR" in table and "\namd " in table
    one = format_job(records[3])
    assert "GPU-a9201ef500000000: 4 slices, amd" in one and "spanning 1 GPU(s) (amd)" in one
