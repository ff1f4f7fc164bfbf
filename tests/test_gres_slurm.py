"""The generated configuration on the real Slurm 22.05 test cluster: slurmctld and slurmd
accept it, sinfo shows the generated vgpu counts, jobs get them, and the count-only form can be
resized live (the reason the generator emits it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fakegpu import FakeMachineFactory
from slurm_cluster import ClusterFactory, SlurmCluster

from slurm_vgpu.gres import hostlist
from slurm_vgpu.gres.config import parse_config
from slurm_vgpu.gres.generate import (
    GRES_CONF,
    INVENTORY,
    SLURM_FRAGMENT,
    generate_cluster,
    generate_local,
)
from slurm_vgpu.gres.inventory import parse_inventory

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def fragment_settings(fragment: str) -> tuple[str, str, dict[str, str | None]]:
    """GresTypes, AccountingStorageTRES and node -> Gres= value of a generated fragment."""
    gres_types = tres = ""
    node_gres: dict[str, str | None] = {}
    for line in fragment.splitlines():
        if line.startswith("GresTypes="):
            gres_types = line.partition("=")[2]
        elif line.startswith("AccountingStorageTRES="):
            tres = line.partition("=")[2]
        elif line.startswith("NodeName="):
            names, gres = line.split()
            for node in hostlist.expand(names.partition("=")[2]):
                node_gres[node] = gres.removeprefix("Gres=")
        elif line.startswith("# NodeName="):
            for node in hostlist.expand(line.split()[1].partition("=")[2].rstrip(":")):
                node_gres[node] = None
    return gres_types, tres, node_gres


def sinfo_gres(cluster: SlurmCluster) -> dict[str, str]:
    result = cluster.run("sinfo", "-h", "-N", "-o", "%N %G")
    return dict(line.split(maxsplit=1) for line in result.stdout.splitlines())


def test_per_node_generation_is_accepted(
    slurm_cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    # Whole GPUs need a File= that exists on the host; stand-ins for /dev/nvidiaN.
    whole_file = tmp_path / "nvidia3"
    whole_file.write_text("")
    config = parse_config(
        {
            "reserved_memory": "1GiB",
            "models": {"NVIDIA H100 80GB HBM3": {"slices_per_gpu": 20}},
            "nodes": [
                {
                    "names": "n1",
                    "gpus": [
                        {"uuid": "GPU-n1-0", "model": "Tesla T4", "memory": "16GiB"},
                        {"uuid": "GPU-n1-1", "model": "NVIDIA H100 80GB HBM3", "memory": "80GiB"},
                    ],
                },
                {
                    "names": "n2",
                    "exclude": [1],
                    "whole": [3],
                    "gpus": [
                        {"uuid": f"GPU-n2-{i}", "model": "NVIDIA L4", "memory": "24GiB"}
                        for i in range(3)
                    ]
                    + [
                        {
                            "uuid": "GPU-n2-3",
                            "model": "NVIDIA L4",
                            "memory": "24GiB",
                            "device_file": str(whole_file),
                        }
                    ],
                },
            ],
        }
    )
    outputs = {node: generate_local(config, node).files for node in ("n1", "n2")}
    assert parse_inventory(outputs["n1"][INVENTORY]).total_slices == 30
    assert parse_inventory(outputs["n2"][INVENTORY]).total_slices == 20

    node_gres: dict[str, str | None] = {}
    types = tres = ""
    for files in outputs.values():
        types, tres, gres = fragment_settings(files[SLURM_FRAGMENT])
        node_gres.update(gres)
    assert node_gres == {"n1": "vgpu:30", "n2": "vgpu:20,gpu:1"}
    cluster = slurm_cluster_factory(
        gres_conf={node: files[GRES_CONF] for node, files in outputs.items()},
        node_gres=node_gres,
        gres_types="gpu,vgpu",
        extra_conf=f"AccountingStorageTRES={tres}\n",
    )
    assert types == "gpu,vgpu"
    shown = sinfo_gres(cluster)
    assert shown["n1"] == "vgpu:30"
    assert sorted(shown["n2"].split(",")) == ["gpu:1", "vgpu:20"]

    # The whole count is usable: one job takes all of n1's slices, one n2's whole GPU.
    jobid = cluster.sbatch("--gres=vgpu:30", "--wrap", "true")
    cluster.wait_job(jobid, timeout=60)
    assert cluster.job_info(jobid)["NodeList"] == "n1"
    jobid = cluster.sbatch("--gres=gpu:1", "--wrap", "true")
    cluster.wait_job(jobid, timeout=60)
    assert cluster.job_info(jobid)["NodeList"] == "n2"


def test_cluster_generation_is_accepted_and_resizable(
    slurm_cluster_factory: ClusterFactory,
) -> None:
    config = parse_config(
        {
            "slices_per_gpu": 4,
            "nodes": [
                {"names": "n1", "gpus": [{"model": "Tesla T4", "memory": "16GiB", "count": 8}]},
                {"names": "n2", "expect_gpus": 0},
            ],
        }
    )
    files = generate_cluster(config).files
    types, tres, node_gres = fragment_settings(files[SLURM_FRAGMENT])
    assert node_gres == {"n1": "vgpu:32", "n2": None}
    cluster = slurm_cluster_factory(
        gres_conf=files[GRES_CONF],
        node_gres=node_gres,
        gres_types=types,
        # slurmctld refuses AccountingStorageTRES=gres/vgpu without slurmdbd: keep accounting.
        extra_conf=f"AccountingStorageTRES={tres}\n",
    )
    gres = sinfo_gres(cluster)
    assert gres == {"n1": "vgpu:32", "n2": "(null)"}

    # Count-only GRES can be resized at run time (idle-slice backfill relies on it).
    cluster.run("scontrol", "update", "nodename=n1", "gres=vgpu:12")
    assert sinfo_gres(cluster)["n1"] == "vgpu:12"


@pytest.mark.native
def test_discovered_on_simulated_gpus_is_accepted(
    slurm_cluster_factory: ClusterFactory, fake_machine: FakeMachineFactory, tmp_path: Path
) -> None:
    """The whole path: NVML discovery on simulated machines (n1: 2 GPUs, n2: 8 with mixed
    memory), the CLI writing each node's files, the real cluster running on them."""
    machines = {
        "n1": fake_machine(count=2, mem="16G,80G"),
        "n2": fake_machine(count=8, mem="16G,16G,24G,24G,40G,40G,80G,80G"),
    }
    node_gres: dict[str, str | None] = {}
    gres_conf: dict[str, str] = {}
    tres = types = ""
    for node, machine in machines.items():
        out = tmp_path / node
        result = machine.run(
            [
                sys.executable,
                "-m",
                "slurm_vgpu.cli",
                "gres",
                "generate",
                "--node",
                node,
                "--config",
                "/dev/null",
                "--output-dir",
                str(out),
            ],
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        gres_conf[node] = (out / GRES_CONF).read_text()
        types, tres, gres = fragment_settings((out / SLURM_FRAGMENT).read_text())
        node_gres.update(gres)
        inventory = parse_inventory((out / INVENTORY).read_text())
        assert [g.uuid for g in inventory.gpus] == machine.uuids
    assert node_gres == {"n1": "vgpu:20", "n2": "vgpu:80"}
    cluster = slurm_cluster_factory(
        gres_conf=gres_conf,
        node_gres=node_gres,
        gres_types=types,
        extra_conf=f"AccountingStorageTRES={tres}\n",
    )
    assert sinfo_gres(cluster) == {"n1": "vgpu:20", "n2": "vgpu:80"}
    jobid = cluster.sbatch("--gres=vgpu:80", "--wrap", "true")
    cluster.wait_job(jobid, timeout=60)
    assert cluster.job_info(jobid)["NodeList"] == "n2"
