"""The inventory this generator writes is read identically by the SPANK plugin's C reader
(driven through build/spank/test_spank_units), so the two sides of the contract agree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import REQUIRE_NATIVE, skip_or_fail

from slurm_vgpu.gres.config import parse_config
from slurm_vgpu.gres.generate import INVENTORY, generate_local
from slurm_vgpu.gres.inventory import parse_inventory

pytestmark = pytest.mark.native

ROOT = Path(__file__).resolve().parent.parent
DRIVER = Path(os.environ.get("VGPU_SPANK_BUILD", ROOT / "build" / "spank")) / "test_spank_units"


def c_reader(path: Path) -> list[str]:
    if not DRIVER.exists():
        skip_or_fail(f"{DRIVER} is not built (run: make spank)", REQUIRE_NATIVE)
    if os.geteuid() != 0:
        pytest.skip("the plugin only trusts root-owned inventories; run as root")
    result = subprocess.run(
        [str(DRIVER), "inventory", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("count", [1, 2, 4, 8, 16])
def test_c_reader_agrees_with_generated_inventory(tmp_path: Path, count: int) -> None:
    models = ["Tesla T4", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB", "NVIDIA L4"]
    memory = ["16GiB", "80GiB", "40GiB", "24GiB"]
    config = parse_config(
        {
            "models": {
                "NVIDIA H100 80GB HBM3": {"slices_per_gpu": 100},
                "NVIDIA L4": {"slices_per_gpu": 3},
            },
            "nodes": [
                {
                    "names": "n1",
                    "gpus": [
                        {
                            "index": i,
                            "uuid": f"GPU-{i:08x}-aaaa-bbbb-cccc-ddddeeeeffff",
                            "model": models[i % 4],
                            "memory": memory[i % 4],
                        }
                        for i in range(count)
                    ],
                }
            ],
        }
    )
    text = generate_local(config, "n1").files[INVENTORY]
    path = tmp_path / "inventory.conf"
    path.write_text(text)
    inventory = parse_inventory(text)
    expected = [f"node=n1 gpus={count}"] + [
        f"gpu index={g.index} uuid={g.uuid} slices={g.slices} slice_bytes={g.slice_bytes} "
        f"slice_permille={g.slice_permille}"
        for g in inventory.gpus
    ]
    assert c_reader(path) == expected


def test_c_reader_agrees_on_a_mixed_vendor_inventory(tmp_path: Path) -> None:
    """vendor= on every line (issue 17): the C reader takes NVIDIA and AMD lines (AMD UUIDs
    in ROCm SMI's form) as this package's reader does."""
    config = parse_config({"nodes": [{"names": "n1", "gpus": [
        {"index": 0, "uuid": "GPU-00000000-aaaa-bbbb-cccc-ddddeeeeffff", "model": "NVIDIA L4",
         "memory": "24GiB"},
        {"index": 1, "uuid": "GPU-a9201ef500000000", "model": "AMD Instinct MI210",
         "memory": "64GiB", "vendor": "amd"},
        {"index": 2, "uuid": "GPU-a9201ef500000001", "model": "AMD Instinct MI210",
         "memory": "64GiB", "vendor": "amd"},
    ]}]})
    text = generate_local(config, "n1").files[INVENTORY]
    assert text.count(" vendor=amd model=") == 2 and text.count(" vendor=nvidia model=") == 1
    path = tmp_path / "inventory.conf"
    path.write_text(text)
    inventory = parse_inventory(text)
    got = c_reader(path)
    # a plugin built before vendors existed ignores the token; one that knows it says amd
    knows_vendor = any(line.endswith(" vendor=amd") for line in got)
    expected = ["node=n1 gpus=3"] + [
        f"gpu index={g.index} uuid={g.uuid} slices={g.slices} slice_bytes={g.slice_bytes} "
        f"slice_permille={g.slice_permille}"
        + (" vendor=amd" if knows_vendor and g.vendor == "amd" else "")
        for g in inventory.gpus
    ]
    assert got == expected
