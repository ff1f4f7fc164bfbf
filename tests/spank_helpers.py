"""Helpers shared by the SPANK plugin tests: building it, its unit-test driver, limits files."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import REQUIRE_NATIVE, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
SPANK_BUILD = ROOT / "build" / "spank"
PLUGIN = SPANK_BUILD / "vgpu.so"
DRIVER = SPANK_BUILD / "test_spank_units"

# struct vgpu_limits of native/include/vgpu_abi.h (little-endian, naturally aligned).
LIMITS_HEADER = struct.Struct("<QIIQQIIII")
GPU_LIMIT = struct.Struct("<48sIIQII")
MAX_GPUS = 16
LIMITS_SIZE = LIMITS_HEADER.size + MAX_GPUS * GPU_LIMIT.size
LIMITS_MAGIC = 0x314D494C55504756
SHARE_GUARANTEED = 0
SHARE_BURST = 1


@dataclass(frozen=True)
class GpuLimit:
    uuid: str
    physical_index: int
    slices: int
    memory_limit_bytes: int
    compute_guaranteed_permille: int
    compute_limit_permille: int


@dataclass(frozen=True)
class Limits:
    magic: int
    version: int
    size: int
    generation: int
    job_id: int
    uid: int
    share_policy: int
    flags: int
    gpus: list[GpuLimit]


def decode_limits(data: bytes) -> Limits:
    """Decode a limits file; fails the test on a wrong size."""
    assert len(data) == LIMITS_SIZE, f"limits file is {len(data)} bytes, want {LIMITS_SIZE}"
    magic, version, size, generation, job_id, uid, share, ngpus, flags = (
        LIMITS_HEADER.unpack_from(data, 0)
    )
    gpus = []
    for i in range(min(ngpus, MAX_GPUS)):
        uuid, index, slices, mem, guaranteed, limit = GPU_LIMIT.unpack_from(
            data, LIMITS_HEADER.size + i * GPU_LIMIT.size
        )
        gpus.append(GpuLimit(uuid.rstrip(b"\0").decode(), index, slices, mem, guaranteed, limit))
    return Limits(magic, version, size, generation, job_id, uid, share, flags, gpus)


def build_spank() -> None:
    """Build the plugin and its unit-test driver (skip, or fail in CI, if that cannot work)."""
    if shutil.which("make") is None or shutil.which("cc") is None:
        skip_or_fail("no C toolchain (make, cc) to build spank/", REQUIRE_NATIVE)
    if not Path("/usr/include/slurm/spank.h").exists():
        skip_or_fail("libslurm-dev (spank.h) is not installed", REQUIRE_NATIVE)
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "spank"), f"BUILD={SPANK_BUILD}"],
        capture_output=True, text=True, check=False, timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(f"building spank/ failed:\n{result.stdout}\n{result.stderr}")


def run_driver(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(DRIVER), *args], capture_output=True, text=True, check=False, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"test_spank_units {args} failed: {result.stdout}{result.stderr}")
    return result


def gpu_uuid(node: str, index: int) -> str:
    """A well-formed, deterministic UUID for simulated GPU `index` of `node` (the same one the
    simulated machine is created with, so inventory and device agree)."""
    return f"GPU-{node.encode().hex()[-8:]:0>8}-{index:04x}-0000-0000-000000000000"


def amd_gpu_uuid(node: str, index: int) -> str:
    """The inventory UUID of simulated AMD GPU `index` of `node`: "GPU-" and 16 lowercase hex
    digits, ROCm SMI's unique id (docs/contracts.md), which the fake's rsmi_dev_unique_id_get
    reads from the state's UUID bytes 8..15 as a big-endian u64 (see fake_state_uuid)."""
    return f"GPU-{node.encode().hex()[-8:]:0>8}{0xa3d0_0000 + index:08x}"


def fake_state_uuid(node: str, index: int, vendor: str = "nvidia") -> str:
    """The UUID to create simulated GPU `index` of `node` with (fakegpu-ctl create --uuid),
    so that what the device reports matches the inventory: the NVIDIA UUID itself, or for AMD
    one whose bytes 8..15 are amd_gpu_uuid's 16 hex digits."""
    if vendor != "amd":
        return gpu_uuid(node, index)
    unique = amd_gpu_uuid(node, index)[4:]
    return f"GPU-{node.encode().hex()[-8:]:0>8}-{index:04x}-0000-{unique[:4]}-{unique[4:]}"


def inventory_uuid(node: str, index: int, vendor: str = "nvidia") -> str:
    """The inventory UUID of GPU `index` of `node` for its vendor."""
    return amd_gpu_uuid(node, index) if vendor == "amd" else gpu_uuid(node, index)


def write_inventory(path: Path, node: str, gpus: list[tuple[int, int]],
                    slice_bytes: int = 1 << 30, mode: int = 0o644,
                    vendor: str | None = None) -> Path:
    """Inventory with one `gpu` line per (index, slices); slice_permille = 1000 // slices.
    vendor: None writes no vendor= token (an NVIDIA GPU, as before the token existed);
    "nvidia" or "amd" writes it, with the vendor's UUID form (inventory_uuid)."""
    lines = ["# slurm-vgpu node inventory (test)", "version=1", f"node={node}"]
    for index, slices in gpus:
        vendor_token = f"vendor={vendor} " if vendor else ""
        lines.append(
            f"gpu index={index} uuid={inventory_uuid(node, index, vendor or 'nvidia')} "
            f"slices={slices} slice_bytes={slice_bytes} slice_permille={1000 // slices} "
            f"memory_bytes={slices * slice_bytes} {vendor_token}model=Simulated GPU {index}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(mode)
    return path
