"""Parsing Slurm 22.05's JSON (real output captured from Debian's 22.05.8, tests/data/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slurm_vgpu.policies.slurm_client import (
    CliSlurmClient,
    SlurmUnavailable,
    expand_hostlist,
    gres_count,
    parse_sinfo_json,
    parse_squeue_json,
)

DATA = Path(__file__).parent / "data" / "slurm-22.05"


def load(name: str) -> dict[str, Any]:
    doc = json.loads((DATA / name).read_text())
    assert isinstance(doc, dict)
    return doc


def test_squeue_running_vgpu_jobs() -> None:
    jobs = parse_squeue_json(load("squeue.json"))
    assert [(j.job_id, j.partition, dict(j.vgpu_per_node)) for j in jobs] == [
        (1, "normal", {"n1": 3}), (3, "normal", {"n1": 15}), (4, "normal", {"n1": 2})]
    assert all(j.start_time > 1.7e9 for j in jobs)
    assert all(j.admin_comment == "" for j in jobs)


def test_squeue_admin_comment_carries_the_daemons_summary() -> None:
    doc = load("squeue.json")
    text = "vgpu1;sl:3;spg:10;obs:60;avg:12.5;pk:30;mem:512;bor:0;bf:0;bs:0"
    for raw in doc["jobs"]:
        if raw["job_id"] == 1:
            raw["admin_comment"] = text
    jobs = {j.job_id: j for j in parse_squeue_json(doc)}
    assert jobs[1].admin_comment == text and jobs[3].admin_comment == ""


def test_sinfo_nodes() -> None:
    (node,) = parse_sinfo_json(load("sinfo.json"), ["n1"])
    assert (node.name, node.vgpu_count, node.vgpu_used, node.weight) == ("n1", 20, 20, 5)
    assert node.state == "mixed"
    assert parse_sinfo_json(load("sinfo.json"), ["other"]) == []


@pytest.mark.parametrize(("spec", "count"), [
    ("vgpu:20", 20), ("vgpu(CNT:3)", 3), ("vgpu:3(IDX:0-2)", 3), ("gres:vgpu:3", 3),
    ("gpu:1(IDX:0),vgpu(CNT:4)", 4), ("vgpu:g0:10,vgpu:g1:10", 20), ("vgpu:4(IDX:0-2,5)", 4),
    ("gpu:2", None), ("", None), ("vgpu:0(IDX:N/A)", 0),
])
def test_gres_count(spec: str, count: int | None) -> None:
    assert gres_count(spec) == count


@pytest.mark.parametrize(("expr", "names"), [
    ("n1", ["n1"]), ("n[1-3]", ["n1", "n2", "n3"]), ("gpu[01-02,10],cpu5",
                                                       ["gpu01", "gpu02", "gpu10", "cpu5"]),
    ("", []),
])
def test_expand_hostlist(expr: str, names: list[str]) -> None:
    assert expand_hostlist(expr) == names


def test_multi_node_job_gres_detail_per_node() -> None:
    doc = {"jobs": [{"job_id": 7, "job_state": "RUNNING", "nodes": "n[1-2]",
                     "gres_detail": ["vgpu(CNT:2)", "vgpu(CNT:5)"], "partition": "p",
                     "qos": "normal", "user_id": 1000, "start_time": 5}]}
    (job,) = parse_squeue_json(doc)
    assert dict(job.vgpu_per_node) == {"n1": 2, "n2": 5}
    (job,) = parse_squeue_json(doc, ["n2"])  # a node's daemon sees only its share
    assert dict(job.vgpu_per_node) == {"n2": 5}
    assert parse_squeue_json(doc, ["n3"]) == []
    assert [j.job_id for j in parse_squeue_json(load("squeue.json"), ["n1"])] == [1, 3, 4]
    assert parse_squeue_json(load("squeue.json"), ["n9"]) == []


def test_cli_client_reports_missing_and_failing_tools(tmp_path: Path) -> None:
    client = CliSlurmClient(bin_dir=str(tmp_path))
    with pytest.raises(SlurmUnavailable, match="not found"):
        client.running_jobs()
    tool = tmp_path / "squeue"
    tool.write_text("#!/bin/sh\necho 'squeue: error: Unable to contact slurm controller' >&2\n"
                    "exit 1\n")
    tool.chmod(0o755)
    with pytest.raises(SlurmUnavailable, match="Unable to contact"):
        client.running_jobs()
    tool.write_text("#!/bin/sh\necho '{\"jobs\": [], \"errors\": []}'\n")
    assert client.running_jobs() == []
    scancel = tmp_path / "scancel"
    scancel.write_text("#!/bin/sh\necho \"$@\" > " + str(tmp_path / "args") + "\n")
    scancel.chmod(0o755)
    client.cancel_step(12, "0")
    assert (tmp_path / "args").read_text().strip() == "12.0"
    with pytest.raises(ValueError):
        client.cancel_step(12, "0; rm -rf /")


def test_client_selection_pyslurm_only_when_it_matches(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    import sys
    import types

    from slurm_vgpu.policies import slurm_pyslurm
    from slurm_vgpu.policies.slurm_client import make_slurm_client

    monkeypatch.setitem(sys.modules, "pyslurm", None)  # not installed
    assert isinstance(make_slurm_client("auto"), CliSlurmClient)
    with pytest.raises(SlurmUnavailable, match="pyslurm is not installed"):
        make_slurm_client("pyslurm")
    fake = types.ModuleType("pyslurm")
    fake.__version__ = "25.11.2"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyslurm", fake)
    monkeypatch.setattr(slurm_pyslurm, "installed_slurm_version", lambda bin_dir=None: "22.05")
    assert isinstance(make_slurm_client("auto"), CliSlurmClient)
    with pytest.raises(SlurmUnavailable, match=r"25\.11\.2 does not match the installed Slurm"):
        make_slurm_client("pyslurm")
    monkeypatch.setattr(slurm_pyslurm, "installed_slurm_version", lambda bin_dir=None: "25.11")
    assert isinstance(make_slurm_client("auto"), slurm_pyslurm.PyslurmClient)


def test_pending_vgpu_jobs_and_node_partitions_from_real_22_05_json() -> None:
    from slurm_vgpu.policies.slurm_client import parse_pending_json

    doc = json.loads((DATA / "squeue.json").read_text())
    assert [(p.job_id, p.partitions, p.vgpu_per_node) for p in parse_pending_json(doc)] == [
        (2, ("scavenger",), 5)]  # requeued (BeginTime): it waits for capacity
    nodes = parse_sinfo_json(json.loads((DATA / "sinfo.json").read_text()))
    assert nodes[0].partitions == ("normal", "scavenger")


def test_held_and_dependent_jobs_are_no_demand() -> None:
    from slurm_vgpu.policies.slurm_client import parse_pending_json

    def job(job_id: int, reason: str, tres: str = "gres:vgpu:2",
            partition: str = "normal,debug") -> dict[str, object]:
        return {"job_id": job_id, "job_state": "PENDING", "state_reason": reason,
                "partition": partition, "qos": "normal", "tres_per_node": tres}

    doc = {"jobs": [job(1, "Resources"), job(2, "Priority"), job(3, "JobHeldUser"),
                    job(4, "Dependency"), job(5, "Resources", tres="gres:gpu:1"),
                    job(6, "None", tres="")]}
    got = parse_pending_json(doc)
    assert [(p.job_id, p.partitions) for p in got] == [(1, ("normal", "debug")),
                                                        (2, ("normal", "debug"))]
