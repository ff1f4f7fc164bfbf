"""Dynamic replay: determinism, the three regimes on a tiny synthetic trace."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from slurm_vgpu.policies.sim.sim_dynamic import DynamicConfig, build_jobs, run_dynamic
from slurm_vgpu.policies.sim.simulate_cli import simulate
from slurm_vgpu.policies.sim.traces import PhillyJob


def tiny() -> tuple[list[PhillyJob], list[int], list[list[float]]]:
    philly = [PhillyJob(submit=60.0 * i, duration=600.0 + 60 * (i % 7), num_gpus=1 + (i % 9 == 0))
              for i in range(120)]
    shares = [1000, 500, 300, 200, 810]
    utils = [[0.0] * 20 + [0.9] * 10, [0.3, 0.1, 0.0, 0.5], [0.0, 0.0, 0.0, 0.2]]
    return philly, shares, utils


def test_deterministic_and_sane() -> None:
    philly, shares, utils = tiny()
    cfg = DynamicConfig(jobs=120, first_job=0, load=1.5, gpus_per_node=4)
    jobs, gpus = build_jobs(philly, shares, utils, cfg, seed=3)
    again, _ = build_jobs(philly, shares, utils, cfg, seed=3)
    assert [(j.share_milli, j.series_offset) for j in jobs] == \
        [(j.share_milli, j.series_offset) for j in again]
    results = {m: run_dynamic(jobs, gpus, m, 3, cfg) for m in ("whole", "slices", "shared")}
    assert run_dynamic(jobs, gpus, "shared", 3, cfg) == results["shared"]
    for r in results.values():
        assert r.finished == 120
        assert 0 <= r.effective_util_pct <= r.allocation_pct + 100
    assert results["whole"].mean_slowdown == 1.0  # nothing shared, nothing slowed
    # fractional slices queue less than whole GPUs on an overloaded cluster
    assert results["slices"].mean_wait_s <= results["whole"].mean_wait_s


def test_cli_dynamic_on_files(tmp_path: Path) -> None:
    philly = tmp_path / "philly.csv"
    philly.write_text("timestamp,duration,num_gpus,gpu_time,cluster\n" + "".join(
        f"2017-10-01 00:{i:02d}:00,{300 + i * 10},1,0,x\n" for i in range(40)))
    shares = tmp_path / "pods.csv"
    shares.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
                      "a,1,1,1,300,\nb,1,1,1,1000,\n")
    util = tmp_path / "util.csv"
    util.write_text("value,timestamp_anon,container_ip\n" + "".join(
        f"{(i * 37) % 100},{i * 60},p{i % 3}\n" for i in range(60)))
    out = tmp_path / "d.json"
    args = ["dynamic", "--philly", str(philly), "--shares", str(shares), "--util", str(util),
            "--jobs", "40", "--first-job", "0", "--json", str(out)]
    res = CliRunner().invoke(simulate, args)
    assert res.exit_code == 0, res.output
    first = json.loads(out.read_text())
    assert [r["mode"] for r in first["summary"]] == ["whole", "slices", "shared"]
    CliRunner().invoke(simulate, args)
    assert json.loads(out.read_text()) == first
    res = CliRunner().invoke(simulate, [*args[:-2], "--first-job", "99"])
    assert res.exit_code == 1 and "window is empty" in res.output
