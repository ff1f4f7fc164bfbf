"""Config schema of the GRES generator: every bad input is a ConfigError naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres import hostlist
from slurm_vgpu.gres.config import (
    DEFAULT_RESERVED_MEMORY,
    DEFAULT_SLICES_PER_GPU,
    load_config,
    parse_config,
)
from slurm_vgpu.gres.sizes import format_size, parse_size

GIB = 1024**3


def test_empty_config_is_all_defaults() -> None:
    config = parse_config(None)
    assert config.slices_per_gpu == DEFAULT_SLICES_PER_GPU == 10
    assert config.reserved_memory == DEFAULT_RESERVED_MEMORY
    assert config.discovery == "auto"
    assert config.nodes == ()


def test_full_config_parses() -> None:
    config = parse_config(
        {
            "slices_per_gpu": 20,
            "reserved_memory": "1GiB",
            "models": {"NVIDIA A100-SXM4-80GB": {"slices_per_gpu": 40, "whole": False}},
            "exclude": [3, "GPU-dead"],
            "whole": ["0000:3b:00.0"],
            "nodes": [
                {"names": "gpu[01-04]", "expect_gpus": 8, "slices_per_gpu": 5},
                {"names": ["login1", "login2"], "expect_gpus": 0},
                {
                    "names": "n9",
                    "gpus": [
                        {"model": "Tesla T4", "memory": "15GiB", "count": 2},
                        {"index": 2, "uuid": "GPU-x", "model": "L4", "memory": 24 * GIB},
                    ],
                },
            ],
        }
    )
    assert config.slices_per_gpu == 20
    assert config.reserved_memory == GIB
    assert config.models["NVIDIA A100-SXM4-80GB"].slices_per_gpu == 40
    assert config.exclude == (3, "GPU-dead")
    assert config.group_for("gpu03") is config.nodes[0]
    assert config.group_for("login2") is config.nodes[1]
    assert config.group_for("elsewhere") is None
    static = config.nodes[2].gpus
    assert static is not None
    assert [(d.index, d.model, d.uuid) for d in static] == [
        (0, "Tesla T4", None),
        (1, "Tesla T4", None),
        (2, "L4", "GPU-x"),
    ]
    assert static[0].device_file == "/dev/nvidia0"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"slices": 10}, "slices: unknown key; allowed keys here: slices_per_gpu"),
        ({"slices_per_gpu": 0}, "slices_per_gpu: 0 is out of range; allowed: an integer 1..100"),
        (
            {"slices_per_gpu": 101},
            "slices_per_gpu: 101 is out of range; allowed: an integer 1..100",
        ),
        ({"slices_per_gpu": "ten"}, "slices_per_gpu: 'ten' is not an integer"),
        ({"slices_per_gpu": True}, "slices_per_gpu: True is not an integer"),
        ({"reserved_memory": "1GB"}, "reserved_memory: unknown unit 'GB'"),
        ({"reserved_memory": -1}, "reserved_memory: -1 is negative"),
        ({"models": {"X": {"slices": 3}}}, "models['X'].slices: unknown key"),
        ({"models": {"X": {"slices_per_gpu": 200}}}, "models['X'].slices_per_gpu: 200"),
        ({"models": {"X": {"whole": True, "exclude": True}}}, "whole and exclude are both true"),
        ({"models": {"X": {"allocation_granularity": "3MiB"}}}, "not a power of two"),
        ({"exclude": 3}, "exclude: expected a list of GPU indices"),
        ({"exclude": [-1]}, "exclude[0]: -1 is out of range"),
        ({"exclude": [1], "whole": [1]}, "whole: GPU 1 is also in exclude"),
        ({"nodes": {"names": "n1"}}, "nodes: expected a list"),
        ({"nodes": [{"expect_gpus": 1}]}, "nodes[0].names: required"),
        ({"nodes": [{"names": "n1", "gpu": []}]}, "nodes[0].gpu: unknown key"),
        ({"nodes": [{"names": "n[1-"}]}, "nodes[0].names: unmatched '['"),
        ({"nodes": [{"names": "n[3-1]"}]}, "runs backwards"),
        (
            {"nodes": [{"names": "n[1-2]"}, {"names": "n2"}]},
            "nodes[1].names: node n2 is already in nodes[0]",
        ),
        (
            {"nodes": [{"names": "n1", "gpus": [], "expect_gpus": 0}]},
            "nodes[0]: give either gpus",
        ),
        ({"nodes": [{"names": "n1", "expect_gpus": 65}]}, "nodes[0].expect_gpus: 65 is out"),
        ({"nodes": [{"names": "n1", "gpus": [{"model": "T4"}]}]}, "nodes[0].gpus[0].memory: req"),
        (
            {"nodes": [{"names": "n1", "gpus": [{"model": "T4", "memory": 1, "colour": 1}]}]},
            "nodes[0].gpus[0].colour: unknown key",
        ),
        (
            {
                "nodes": [
                    {
                        "names": "n1",
                        "gpus": [{"model": "T4", "memory": 1, "count": 2, "uuid": "GPU-1"}],
                    }
                ]
            },
            "nodes[0].gpus[0].uuid: not allowed together with count > 1",
        ),
        (
            {
                "nodes": [
                    {
                        "names": "n1",
                        "gpus": [
                            {"model": "T4", "memory": 1, "index": 0},
                            {"model": "T4", "memory": 1, "index": 0},
                        ],
                    }
                ]
            },
            "two GPUs have the same index",
        ),
        ([1, 2], "config: expected a mapping"),
    ],
)
def test_bad_config_names_the_field(data: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert expected in str(info.value)


def test_load_config_reports_bad_yaml_with_path(tmp_path: Path) -> None:
    path = tmp_path / "vgpu-gres.yaml"
    path.write_text("slices_per_gpu: [1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "not valid YAML" in str(info.value)


def test_load_config_refuses_python_tags(tmp_path: Path) -> None:
    path = tmp_path / "vgpu-gres.yaml"
    path.write_text("slices_per_gpu: !!python/object/apply:os.getpid []\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_load_config_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "vgpu-gres.yaml"
    path.write_text("slices_per_gpu: 0\n")
    with pytest.raises(ConfigError, match=r"vgpu-gres.yaml: slices_per_gpu: 0 is out of range"):
        load_config(path)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(Path("/nonexistent/vgpu-gres.yaml"))


def test_shipped_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "contrib" / "config" / "vgpu-gres.yaml"
    config = load_config(example)
    assert config.slices_per_gpu >= 1


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        (0, 0),
        (512, 512),
        ("512", 512),
        ("2MiB", 2 * 1024**2),
        ("1.5GiB", 3 * GIB // 2),
        ("80 GiB", 80 * GIB),
        ("1TiB", 1024**4),
        ("7B", 7),
    ],
)
def test_parse_size(text: object, nbytes: int) -> None:
    assert parse_size(text, "f") == nbytes


@pytest.mark.parametrize("text", ["", "GiB", "1.2.3GiB", "5 XB", None, 1.5, [1]])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ConfigError, match=r"^f: "):
        parse_size(text, "f")


def test_format_size() -> None:
    assert format_size(1536 * 1024**2) == "1536MiB"
    assert format_size(80 * GIB) == "80GiB"
    assert format_size(1000) == "1000B"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("n1", ["n1"]),
        ("gpu[01-03]", ["gpu01", "gpu02", "gpu03"]),
        ("gpu[1,3-4],login1", ["gpu1", "gpu3", "gpu4", "login1"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("n1,n1", ["n1"]),
    ],
)
def test_hostlist_expand(expr: str, names: list[str]) -> None:
    assert hostlist.expand(expr) == names


@pytest.mark.parametrize(
    "expr", ["", "n[1-2", "n1]", "n[[1]]", "n[a-b]", "n 1", "n[1-99999999]", "-n1", "n1,,n2"]
)
def test_hostlist_rejects(expr: str) -> None:
    with pytest.raises(ConfigError):
        hostlist.expand(expr)
