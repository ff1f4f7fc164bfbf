"""Workload variants (gpu_spec shares, multi-GPU shares) and the committed ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from slurm_vgpu.policies.sim.simulate_cli import simulate
from slurm_vgpu.policies.sim.traces import (
    TraceError,
    TraceJob,
    TraceNode,
    load_jobs,
    load_nodes,
    trace_data_dir,
)
from slurm_vgpu.policies.sim.variants import to_csv, with_gpu_spec, with_multi_gpu

REPO = Path(__file__).resolve().parents[1]
OPENB = trace_data_dir(REPO) / "openb"
VARIANTS = REPO / "tests" / "data" / "openb-variants"

NODES = [TraceNode("a", 64000, 10**6, 8, "G2"), TraceNode("b", 64000, 10**6, 2, "T4"),
         TraceNode("c", 64000, 10**6, 4, "V100M16"), TraceNode("d", 9, 9, 0, "")]
JOBS = [TraceJob(f"j{i}", 1000, 100, n, {0: 0, 1: 300}.get(n, 1000), ())
        for i, n in enumerate([0, 1, 1, 1, 1, 1, 1, 1, 2, 4] * 150)]


def test_gpu_spec_share_models_and_determinism() -> None:
    out = with_gpu_spec(JOBS, NODES, 0.33, seed=3)
    assert out == with_gpu_spec(JOBS, NODES, 0.33, seed=3)
    assert [j.name for j in out] == [j.name for j in JOBS]
    named = [j for j in out if j.gpu_spec]
    gpu_jobs = sum(1 for j in JOBS if j.num_gpu)
    assert 0.28 < len(named) / gpu_jobs < 0.38
    assert not any(j.gpu_spec for j in out if not j.num_gpu)
    most = {"G2": 8, "T4": 2, "V100M16": 4, "V100M32": 4}
    for j in named:
        # only models with nodes big enough; V100 jobs accept both memory sizes
        assert all(most[m] >= j.num_gpu for m in j.gpu_spec)
        assert j.gpu_spec in (("G2",), ("T4",), ("V100M16", "V100M32"))
    assert all(j.gpu_spec != ("T4",) for j in named if j.num_gpu == 4)


def test_multi_gpu_share_reached() -> None:
    out = with_multi_gpu(JOBS, 0.8, seed=3)
    assert out == with_multi_gpu(JOBS, 0.8, seed=3)
    assert out[: len(JOBS)] == JOBS and len({j.name for j in out}) == len(out)
    total = sum(j.gpu_request_milli for j in out)
    multi = sum(j.gpu_request_milli for j in out if j.num_gpu > 1)
    assert 0.8 <= multi / total < 0.802


@pytest.mark.parametrize(("call", "message"), [
    (lambda: with_gpu_spec(JOBS, NODES, 1.5, 1), "between 0 and 1"),
    (lambda: with_multi_gpu(JOBS, 1.0, 1), "below 1"),
    (lambda: with_multi_gpu([j for j in JOBS if j.num_gpu < 2], 0.5, 1), "no multi-GPU job"),
])
def test_bad_variant_requests(call: object, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        call()  # type: ignore[operator]


def test_cli_writes_a_readable_job_list(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\n" + "".join(
        f"{n.name},{n.cpu_milli},{n.memory_mib},{n.gpus},{n.model}\n" for n in NODES))
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(to_csv(JOBS))
    out = tmp_path / "v.csv"
    res = CliRunner().invoke(simulate, ["variant", "--nodes", str(nodes), "--jobs", str(jobs),
                                        "--gpu-spec-share", "0.5", "--multi-gpu-share", "0.9",
                                        "--out", str(out)])
    assert res.exit_code == 0, res.output
    back = load_jobs(out)
    assert any(j.gpu_spec for j in back) and len(back) > len(JOBS)
    res = CliRunner().invoke(simulate, ["variant", "--nodes", str(nodes), "--jobs", str(jobs),
                                        "--out", str(out)])
    assert res.exit_code == 2 and "give --gpu-spec-share or --multi-gpu-share" in res.output


@pytest.mark.parametrize(("name", "args"), [
    ("openb_pod_list_gpuspec33.csv", ["--gpu-spec-share", "0.33"]),
    ("openb_pod_list_multigpu50.csv", ["--multi-gpu-share", "0.5"]),
])
def test_committed_variants_are_what_the_generator_writes(tmp_path: Path, name: str,
                                                           args: list[str]) -> None:
    if not OPENB.is_dir():
        pytest.skip(f"trace data not found at {OPENB} (set VGPU_TRACE_DATA to the folder "
                    "holding openb/)")
    out = tmp_path / name
    res = CliRunner().invoke(simulate, [
        "variant", "--nodes", str(OPENB / "openb_node_list_gpu_node.csv"),
        "--jobs", str(OPENB / "openb_pod_list_default.csv"), *args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text() == (VARIANTS / name).read_text()
    assert load_nodes(OPENB / "openb_node_list_gpu_node.csv")
