"""Generation for one node and for many: plans, file texts, CLI, check, errors (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from test_gres_fakes import GIB, FakeNvml, machine

from slurm_vgpu.cli import main
from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres.backends import (
    BackendOptions,
    BackendUnavailable,
    DiscoveryBackend,
    register_backend,
)
from slurm_vgpu.gres.config import load_config, parse_config
from slurm_vgpu.gres.device import Device
from slurm_vgpu.gres.generate import (
    GRES_CONF,
    INVENTORY,
    SLURM_FRAGMENT,
    BackendMaker,
    generate_cluster,
    generate_local,
)
from slurm_vgpu.gres.inventory import parse_inventory
from slurm_vgpu.gres.nvml import NvmlBackend
from slurm_vgpu.gres.plan import slice_geometry

MIB = 1024**2

# The machine the "fake-nvml" backend shows; tests set it before running the CLI.
CURRENT: dict[str, FakeNvml] = {"machine": FakeNvml()}


def _fake_backend(options: BackendOptions) -> DiscoveryBackend:
    return NvmlBackend(options, nvml=CURRENT["machine"])


register_backend("fake-nvml", _fake_backend)


class NoRsmi:
    """The rsmi backend of a host without AMD GPUs (its library does not answer)."""

    name = "rsmi"

    def discover(self) -> list[Device]:
        raise BackendUnavailable("ROCm SMI unavailable: rsmi_init: RSMI_STATUS_INIT_ERROR")


def maker(fake: FakeNvml) -> BackendMaker:
    def make(name: str, options: BackendOptions) -> DiscoveryBackend:
        if name == "rsmi":  # `auto` (the default) asks both vendors
            return NoRsmi()
        assert name == "nvml"
        return NvmlBackend(options, nvml=fake)

    return make


def local(config: object, fake: FakeNvml, node: str = "n1") -> dict[str, str]:
    return generate_local(parse_config(config), node, make_backend=maker(fake)).files


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


# ------------------------------------------------------------------ geometry


def test_slice_geometry_aligns_down() -> None:
    # The contract's example: 16 GiB, 1 GiB reserved, 10 slices -> 1.5 GiB each.
    assert slice_geometry(16 * GIB, GIB, 10, 2 * MIB) == 1610612736
    # 80 GiB - 512 MiB over 3 slices = 27136 MiB - 170.67 -> 27136 MiB... aligned to 2 MiB.
    nbytes = slice_geometry(80 * GIB, 512 * MIB, 3, 2 * MIB)
    assert nbytes % (2 * MIB) == 0
    assert nbytes * 3 <= 80 * GIB - 512 * MIB < (nbytes + 2 * MIB) * 3
    assert slice_geometry(GIB, 0, 100, 64 * MIB) == 0


# ------------------------------------------------------------------ one node


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_nodes_with_1_2_4_8_gpus(count: int) -> None:
    files = local({"reserved_memory": "1GiB"}, machine(("Tesla T4", 16), count=count))
    assert lines(files[GRES_CONF]) == [f"Name=vgpu Count={10 * count}"]
    assert lines(files[SLURM_FRAGMENT]) == [
        "GresTypes=vgpu",
        "AccountingStorageTRES=gres/vgpu",
        f"NodeName=n1 Gres=vgpu:{10 * count}",
    ]
    inventory = parse_inventory(files[INVENTORY])
    assert inventory.node == "n1"
    assert inventory.total_slices == 10 * count
    assert [g.index for g in inventory.gpus] == list(range(count))
    for gpu in inventory.gpus:
        assert (gpu.slices, gpu.slice_bytes, gpu.slice_permille) == (10, 1610612736, 100)
        assert gpu.memory_bytes == 16 * GIB
        assert gpu.model == "Tesla T4"


def test_mixed_models_and_memory_with_overrides() -> None:
    fake = machine(("NVIDIA H100 80GB HBM3", 80), ("Tesla T4", 16), ("NVIDIA L4", 24))
    config = {
        "slices_per_gpu": 4,
        "reserved_memory": 0,
        "models": {
            "NVIDIA H100 80GB HBM3": {"slices_per_gpu": 20, "reserved_memory": "2GiB"},
            "NVIDIA L4": {"allocation_granularity": "1GiB", "slices_per_gpu": 5},
        },
    }
    inventory = parse_inventory(local(config, fake)[INVENTORY])
    h100, t4, l4 = inventory.gpus
    assert (h100.slices, h100.slice_permille) == (20, 50)
    assert h100.slice_bytes == (78 * GIB // 20) // (2 * MIB) * (2 * MIB)
    assert (t4.slices, t4.slice_bytes, t4.slice_permille) == (4, 4 * GIB, 250)
    assert (l4.slices, l4.slice_bytes) == (5, 4 * GIB)  # 4.8 GiB rounded down to whole GiB
    assert inventory.total_slices == 29


def test_permille_rounds_down() -> None:
    inventory = parse_inventory(local({"slices_per_gpu": 3}, machine(("T4", 16)))[INVENTORY])
    assert inventory.gpus[0].slice_permille == 333


def test_excluded_and_whole_gpus() -> None:
    fake = machine(("Tesla T4", 16), count=4)
    fake.gpus[2].uuid = "GPU-keepwhole"
    config = {"exclude": [1], "whole": ["GPU-keepwhole"], "reserved_memory": 0}
    files = local(config, fake)
    assert lines(files[GRES_CONF]) == ["Name=vgpu Count=20", "Name=gpu File=/dev/nvidia2"]
    assert lines(files[SLURM_FRAGMENT]) == [
        "GresTypes=gpu,vgpu",
        "AccountingStorageTRES=gres/gpu,gres/vgpu",
        "NodeName=n1 Gres=vgpu:20,gpu:1",
    ]
    assert [g.index for g in parse_inventory(files[INVENTORY]).gpus] == [0, 3]
    assert "GPU 1 Tesla T4 16GiB" in files[GRES_CONF] and "excluded" in files[GRES_CONF]


def test_select_by_pci_bus_id_and_model_flags() -> None:
    fake = machine(("A", 16), ("B", 16), ("C", 16))
    config = {"exclude": ["0000:1A:00.0"], "models": {"B": {"whole": True}, "C": {"exclude": True}}}
    files = local(config, fake)
    assert lines(files[GRES_CONF]) == ["Name=gpu File=/dev/nvidia1"]
    assert parse_inventory(files[INVENTORY]).gpus == ()
    assert "# NodeName=n1: no GPUs" not in files[SLURM_FRAGMENT]


def test_node_group_settings_win_and_strict_selectors() -> None:
    fake = machine(("T4", 16), count=2)
    config = {
        "slices_per_gpu": 10,
        "models": {"T4": {"slices_per_gpu": 8}},
        "exclude": [7],  # global: a GPU of some other node, ignored here
        "nodes": [{"names": "n[1-2]", "slices_per_gpu": 5, "expect_gpus": 2}],
    }
    assert lines(local(config, fake)[GRES_CONF]) == ["Name=vgpu Count=10"]
    config["nodes"] = [{"names": "n1", "exclude": [7]}]
    with pytest.raises(ConfigError, match=r"nodes\[0\].exclude: 7 matches no GPU on n1"):
        local(config, fake)


def test_static_inventory_needs_no_discovery() -> None:
    config = {
        "nodes": [
            {
                "names": "n1",
                "gpus": [
                    {"uuid": "GPU-a", "model": "T4", "memory": "16GiB"},
                    {"uuid": "GPU-b", "model": "L4", "memory": "24GiB", "index": 3},
                ],
            }
        ]
    }
    fake = FakeNvml(init_error="must not be called")
    inventory = parse_inventory(local(config, fake)[INVENTORY])
    assert [(g.index, g.uuid) for g in inventory.gpus] == [(0, "GPU-a"), (3, "GPU-b")]
    assert fake.calls == []


def test_static_inventory_without_uuids_is_checked_against_discovery() -> None:
    config = {
        "nodes": [{"names": "n[1-4]", "gpus": [{"model": "T4", "memory": "16GiB", "count": 2}]}]
    }
    inventory = parse_inventory(local(config, machine(("T4", 16), count=2), "n3")[INVENTORY])
    assert inventory.node == "n3" and len(inventory.gpus) == 2
    with pytest.raises(ConfigError, match=r"nodes\[0\].gpus: nvml discovery on n3 found GPUs"):
        local(config, machine(("T4", 16)), "n3")


def test_gpu_less_node_is_not_an_error() -> None:
    fake = FakeNvml(init_error="NVML Shared Library Not Found")
    for group in ({"names": "login1", "expect_gpus": 0}, {"names": "login1", "gpus": []}):
        files = local({"nodes": [group]}, fake, "login1")
        assert lines(files[GRES_CONF]) == []
        assert "# NodeName=login1: no GPUs for Slurm, no Gres=" in files[SLURM_FRAGMENT]
        assert parse_inventory(files[INVENTORY]).gpus == ()
    assert fake.calls == []


def test_zero_devices_found_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no devices found: nvml discovery found no GPUs on n1"):
        local({}, FakeNvml())
    config = {"nodes": [{"names": "n1", "expect_gpus": 4}]}
    with pytest.raises(ConfigError, match=r"nodes\[0\].expect_gpus: nvml discovery found 0"):
        local(config, FakeNvml())
    with pytest.raises(ConfigError, match="found 3 GPUs on n1, the config expects 4"):
        local(config, machine(("T4", 16), count=3))


def test_nvml_unavailable_is_an_error() -> None:
    with pytest.raises(ConfigError, match="NVML unavailable"):
        local({}, FakeNvml(init_error="Driver Not Loaded"))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"reserved_memory": "16GiB"}, "reserved_memory: 16GiB leaves no memory on n1 GPU 0"),
        (
            {"models": {"T4": {"allocation_granularity": "1GiB", "slices_per_gpu": 20}}},
            r"models\['T4'\].slices_per_gpu: 20 slices of n1 GPU 0 .* allowed: 1..15",
        ),
    ],
)
def test_impossible_geometry_names_the_field(config: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        local(config, machine(("T4", 16)))


def test_output_is_deterministic() -> None:
    config = {"whole": [1]}
    first = local(config, machine(("T4", 16), ("L4", 24), count=2))
    second = local(config, machine(("T4", 16), ("L4", 24), count=2))
    assert first == second


# ------------------------------------------------------------------ many nodes


CLUSTER = {
    "reserved_memory": 0,
    "nodes": [
        {"names": "gpu[01-04]", "gpus": [{"model": "T4", "memory": "16GiB", "count": 8}]},
        {
            "names": "big1",
            "gpus": [{"model": "H100", "memory": "80GiB", "count": 2}],
            "whole": [1],
            "slices_per_gpu": 20,
        },
        {"names": "login[1-2]", "expect_gpus": 0},
    ],
}


def test_cluster_mode() -> None:
    generated = generate_cluster(parse_config(CLUSTER))
    assert set(generated.files) == {GRES_CONF, SLURM_FRAGMENT}
    assert lines(generated.files[GRES_CONF]) == [
        "NodeName=gpu[01-04] Name=vgpu Count=80",
        "NodeName=big1 Name=vgpu Count=20",
        "NodeName=big1 Name=gpu File=/dev/nvidia1",
    ]
    assert lines(generated.files[SLURM_FRAGMENT]) == [
        "GresTypes=gpu,vgpu",
        "AccountingStorageTRES=gres/gpu,gres/vgpu",
        "NodeName=gpu[01-04] Gres=vgpu:80",
        "NodeName=big1 Gres=vgpu:20,gpu:1",
    ]
    assert "# NodeName=login[1-2]: no GPUs" in generated.files[SLURM_FRAGMENT]


def test_cluster_mode_needs_static_inventories() -> None:
    with pytest.raises(ConfigError, match=r"nodes\[0\].gpus: required for --all-nodes"):
        generate_cluster(parse_config({"nodes": [{"names": "n1", "expect_gpus": 2}]}))
    with pytest.raises(ConfigError, match="nodes: required for --all-nodes"):
        generate_cluster(parse_config({}))


# ------------------------------------------------------------------ CLI


def write_config(tmp_path: Path, config: object) -> str:
    path = tmp_path / "vgpu-gres.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _vgpu_main(args: tuple[str, ...]) -> None:
    # The real entry point (slurm_vgpu.cli.main, which maps errors to exit codes) under
    # CliRunner, so stdout and stderr are captured apart.
    raise SystemExit(main(list(args)))


def vgpu(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_vgpu_main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_prints_all_three_files(tmp_path: Path) -> None:
    CURRENT["machine"] = machine(("T4", 16), count=2)
    cfg = write_config(tmp_path, {"discovery": "fake-nvml"})
    rc, out, _ = vgpu("gres", "generate", "--config", cfg, "--node", "n7")
    assert rc == 0
    assert "# ==> gres.conf <==" in out and "Name=vgpu Count=20" in out
    assert "# ==> slurm.conf.fragment <==" in out and "NodeName=n7 Gres=vgpu:20" in out
    assert "# ==> inventory.conf <==" in out and "node=n7" in out
    rc, out, _ = vgpu("gres", "generate", "--config", cfg, "--node", "n7", "--only", "gres.conf")
    assert rc == 0 and out.startswith("# slurm-vgpu gres.conf") and "inventory" not in out


def test_cli_writes_output_dir_and_check(tmp_path: Path) -> None:
    CURRENT["machine"] = machine(("T4", 16), count=4)
    cfg = write_config(tmp_path, {})
    out_dir = tmp_path / "etc"
    common = [
        "--config",
        cfg,
        "--node",
        "n1",
        "--discovery",
        "fake-nvml",
        "--output-dir",
        str(out_dir),
    ]
    rc, _, err = vgpu("gres", "generate", *common)
    assert rc == 0, err
    assert sorted(os.listdir(out_dir)) == ["gres.conf", "inventory.conf", "slurm.conf.fragment"]
    assert parse_inventory((out_dir / "inventory.conf").read_text()).total_slices == 40

    rc, out, err = vgpu("gres", "check", *common)
    assert (rc, out) == (0, ""), err
    assert "3 files up to date" in err

    CURRENT["machine"] = machine(("T4", 16), count=3)  # a GPU fell off the bus
    rc, out, err = vgpu("gres", "check", *common)
    assert rc == 1
    assert f"--- {out_dir / 'gres.conf'}" in out
    assert "-Name=vgpu Count=40" in out and "+Name=vgpu Count=30" in out
    assert "vgpu: error: 3 of 3 files differ" in err

    (out_dir / "slurm.conf.fragment").unlink()
    rc, out, _ = vgpu("gres", "check", *common, "--inventory", str(tmp_path / "elsewhere.conf"))
    assert rc == 1
    assert "(missing)" in out and str(tmp_path / "elsewhere.conf") in out


def test_cli_single_paths(tmp_path: Path) -> None:
    CURRENT["machine"] = machine(("T4", 16))
    cfg = write_config(tmp_path, {"discovery": "fake-nvml"})
    target = tmp_path / "inv.conf"
    rc, _, err = vgpu(
        "gres", "generate", "--config", cfg, "--node", "n1", "--inventory", str(target)
    )
    assert rc == 0, err
    assert set(os.listdir(tmp_path)) == {"vgpu-gres.yaml", "inv.conf"}
    assert parse_inventory(target.read_text()).node == "n1"


def test_cli_errors_exit_2_and_write_nothing(tmp_path: Path) -> None:
    out_dir = tmp_path / "etc"
    out_dir.mkdir()
    (out_dir / "gres.conf").write_text("old\n")
    CURRENT["machine"] = FakeNvml()
    cases = [
        ({"slices_per_gpu": 0}, "slices_per_gpu: 0 is out of range; allowed: an integer 1..100"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"discovery": "fake-nvml"}, "no devices found"),
        ({"discovery": "rocm"}, "discovery: unknown backend 'rocm'"),
    ]
    for config, expected in cases:
        cfg = write_config(tmp_path, config)
        rc, _, err = vgpu(
            "gres", "generate", "--config", cfg, "--node", "n1", "--output-dir", str(out_dir)
        )
        assert rc == 2, (config, err)
        assert expected in err
        assert err.startswith("vgpu: error: ")
        assert sorted(os.listdir(out_dir)) == ["gres.conf"]
        assert (out_dir / "gres.conf").read_text() == "old\n"
    (tmp_path / "bad.yaml").write_text("nodes: [\n")
    rc, _, err = vgpu("gres", "generate", "--config", str(tmp_path / "bad.yaml"))
    assert rc == 2 and "not valid YAML" in err


def test_cli_check_needs_targets_and_all_nodes_rules(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, CLUSTER)
    rc, _, err = vgpu("gres", "check", "--config", cfg, "--all-nodes")
    assert rc == 2 and "nothing to compare" in err
    rc, _, err = vgpu("gres", "generate", "--config", cfg, "--all-nodes", "--inventory", "x")
    assert rc == 2 and "writes no inventory.conf" in err
    rc, _, err = vgpu("gres", "generate", "--config", cfg, "--all-nodes", "--node", "n1")
    assert rc == 2 and "exclude each other" in err
    rc, _, err = vgpu(
        "gres", "generate", "--config", cfg, "--all-nodes", "--output-dir", str(tmp_path / "out")
    )
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == ["gres.conf", "slurm.conf.fragment"]
    rc, _, err = vgpu(
        "gres", "check", "--config", cfg, "--all-nodes", "--output-dir", str(tmp_path / "out")
    )
    assert rc == 0, err


def test_more_sliced_gpus_than_the_plugin_handles() -> None:
    fake = machine(("T4", 16), count=17)
    with pytest.raises(ConfigError, match="n1 has 17 sliced GPUs; the SPANK plugin handles at"):
        local({}, fake)
    assert parse_inventory(local({"whole": [16]}, fake)[INVENTORY]).total_slices == 160


def test_cli_unwritable_target_names_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"nodes": [{"names": "n1", "expect_gpus": 0}]})
    target = tmp_path / "missing-dir" / "inventory.conf"
    rc, _, err = vgpu(
        "gres", "generate", "--config", cfg, "--node", "n1", "--inventory", str(target)
    )
    assert rc == 2
    assert f"vgpu: error: cannot write {target}: No such file or directory" in err


def test_whole_gpu_without_device_file() -> None:
    config = {
        "nodes": [
            {
                "names": "n1",
                "whole": [0],
                "gpus": [
                    {"uuid": "NPU-1", "model": "Ascend 910B", "memory": "64GiB", "vendor": "huawei"}
                ],
            }
        ]
    }
    with pytest.raises(ConfigError, match="kept whole but has no device file"):
        local(config, FakeNvml())
    with pytest.raises(ConfigError, match="kept whole but has no device file"):
        generate_cluster(parse_config(config))


@pytest.mark.parametrize("model", ["T4\nName=gpu File=/dev/sda", "T4 # x", "T4\x00"])
def test_model_names_cannot_inject_lines(model: str) -> None:
    config = {"nodes": [{"names": "n1", "gpus": [{"model": model, "memory": "16GiB"}]}]}
    with pytest.raises(ConfigError, match="control characters or '#'"):
        parse_config(config)
    fake = machine((model, 16))
    with pytest.raises(ConfigError, match="unusable model name"):
        local({}, fake)


def test_shipped_cluster_example_generates() -> None:
    example = Path(__file__).resolve().parent.parent / "contrib" / "config"
    generated = generate_cluster(load_config(example / "vgpu-gres-cluster.yaml"))
    assert lines(generated.files[GRES_CONF]) == [
        "NodeName=t4n[01-16] Name=vgpu Count=40",
        "NodeName=h100n[1-4] Name=vgpu Count=140",
        "NodeName=h100n[1-4] Name=gpu File=/dev/nvidia7",
        "NodeName=mix1 Name=vgpu Count=12",
    ]
