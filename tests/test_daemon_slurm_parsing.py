"""Parsing Slurm's JSON: real output captured from Debian's 22.05.8 (bookworm), 24.11.5
(trixie) and 26.05.5 (sid) in the same cluster state (contrib/devcluster/capture_json.py; the
state is described there), under tests/data/slurm-<release>/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slurm_vgpu.policies.slurm.slurm_client import (
    CliSlurmClient,
    SlurmUnavailable,
    expand_hostlist,
    gres_count,
    parse_pending_json,
    parse_sinfo_json,
    parse_squeue_json,
    slurm_release,
)

DATA = Path(__file__).parent / "data"
RELEASES = ["22.05", "24.11", "26.05"]
ADMIN_COMMENT = "vgpu1;sl:3;spg:10;obs:60;avg:12.5;pk:30;mem:512;bor:0;bf:0;bs:0"


def load(release: str, name: str) -> dict[str, Any]:
    doc = json.loads((DATA / f"slurm-{release}" / name).read_text())
    assert isinstance(doc, dict)
    return doc


def node_listing(release: str) -> dict[str, Any]:
    """What the CLI client reads for nodes on that release."""
    return load(release, "sinfo.json" if release == "22.05" else "scontrol-nodes.json")


@pytest.mark.parametrize("release", RELEASES)
def test_captures_are_of_their_release(release: str) -> None:
    parser = load(release, "squeue.json")["meta"]["plugin"].get("data_parser", "")
    assert (release == "22.05") == (parser == "")  # 22.05 names no data_parser
    if release != "22.05":
        assert parser.startswith("data_parser/v0.0.")


@pytest.mark.parametrize("release", RELEASES)
def test_squeue_running_vgpu_jobs(release: str) -> None:
    ids = load(release, "jobs.json")
    jobs = parse_squeue_json(load(release, "squeue.json"))
    assert [(j.job_id, j.partition, dict(j.vgpu_per_node)) for j in jobs] == [
        (ids["small"], "normal", {"n1": 3}), (ids["big"], "normal", {"n1": 10}),
        (ids["wide"], "normal", {"n1": 4, "n2": 4})]
    assert all(j.start_time > 1.7e9 and j.qos == "normal" for j in jobs)
    assert [j.admin_comment for j in jobs] == [ADMIN_COMMENT, "", ""]


@pytest.mark.parametrize("release", RELEASES)
def test_a_nodes_daemon_sees_only_its_share(release: str) -> None:
    ids = load(release, "jobs.json")
    doc = load(release, "squeue.json")
    on_n2 = parse_squeue_json(doc, ["n2"])
    assert [(j.job_id, dict(j.vgpu_per_node)) for j in on_n2] == [(ids["wide"], {"n2": 4})]
    assert parse_squeue_json(doc, ["n9"]) == []


@pytest.mark.parametrize("release", RELEASES)
def test_pending_vgpu_jobs_are_demand_unless_held(release: str) -> None:
    ids = load(release, "jobs.json")
    pending = parse_pending_json(load(release, "squeue.json"))
    assert [(p.job_id, p.partitions, p.vgpu_per_node) for p in pending] == [
        (ids["waiting"], ("scavenger",), 5)]  # the held one and the GRES-less one are not


@pytest.mark.parametrize("release", RELEASES)
def test_nodes(release: str) -> None:
    n1, n2 = parse_sinfo_json(node_listing(release))
    assert (n1.name, n1.vgpu_count, n1.vgpu_used, n1.weight, n1.state) == (
        "n1", 20, 17, 5, "mixed")
    assert (n2.name, n2.vgpu_count, n2.vgpu_used, n2.weight) == ("n2", 20, 4, 1)
    assert n1.partitions == ("debug", "normal", "scavenger")
    assert parse_sinfo_json(node_listing(release), ["other"]) == []


@pytest.mark.parametrize("release", ["24.11", "26.05"])
def test_grouped_sinfo_of_later_releases_reads_the_same_nodes(release: str) -> None:
    assert parse_sinfo_json(load(release, "sinfo.json")) == parse_sinfo_json(
        node_listing(release))


@pytest.mark.parametrize(("line", "release"), [
    ("slurm-wlm 22.05.8\n", (22, 5)), ("slurm 24.11.5\n", (24, 11)), ("slurm 26.05.5", (26, 5)),
    ("", None)])
def test_slurm_release(line: str, release: tuple[int, int] | None) -> None:
    assert slurm_release(line) == release


@pytest.mark.parametrize(("spec", "count"), [
    ("vgpu:20", 20), ("vgpu(CNT:3)", 3), ("vgpu:3(IDX:0-2)", 3), ("gres:vgpu:3", 3),
    ("gres/vgpu:3", 3), ("gpu:1(IDX:0),vgpu(CNT:4)", 4), ("vgpu:g0:10,vgpu:g1:10", 20),
    ("vgpu:4(IDX:0-2,5)", 4),
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

    from slurm_vgpu.policies.slurm import slurm_pyslurm
    from slurm_vgpu.policies.slurm.slurm_client import make_slurm_client

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


def test_held_and_dependent_jobs_are_no_demand() -> None:
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
