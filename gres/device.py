"""The vendor-neutral device model every discovery backend produces."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024

# CUDA hands out device memory in 2 MiB pages (cuMemGetAllocationGranularity reports 2 MiB on
# every current NVIDIA GPU), so a slice's byte cap is rounded down to it: a cap that is not a
# multiple of the page size could never be filled exactly and would waste the remainder.
DEFAULT_ALLOCATION_GRANULARITY = 2 * MIB


@dataclass(frozen=True)
class Device:
    """One physical accelerator as discovery (or a static inventory) describes it."""

    index: int
    """Physical index as the vendor runtime numbers it (CUDA_VISIBLE_DEVICES uses it)."""
    uuid: str | None
    """Stable identity (NVIDIA: GPU-xxxxxxxx-...); None only in static inventories."""
    model: str
    memory_bytes: int
    compute_units: int | None = None
    """Streaming multiprocessors (NVIDIA) or compute units (AMD); None when unknown."""
    pci_bus_id: str | None = None
    numa_node: int | None = None
    allocation_granularity: int = DEFAULT_ALLOCATION_GRANULARITY
    device_file: str | None = None
    """The character device Slurm's File= names when the GPU is kept whole."""
    vendor: str = "nvidia"
    """"nvidia" or "amd" (discovery); a static inventory may name others."""

    def describe(self) -> str:
        """Short human form for messages and generated comments."""
        who = self.uuid or (f"pci {self.pci_bus_id}" if self.pci_bus_id else "no uuid")
        return f"GPU {self.index} ({self.model}, {who})"


def nvidia_device_file(minor: int) -> str:
    return f"/dev/nvidia{minor}"


# The first DRM render node minor: /dev/dri/renderD128 is minor 128.
DRM_RENDER_MINOR_BASE = 128


def amd_device_file(render_minor: int) -> str:
    """An AMD GPU's device file for Slurm's File=: its DRM render node (what Slurm's own AMD
    autodetect, gpu/rsmi, names; jobs also need /dev/kfd, which is one file for all GPUs)."""
    return f"/dev/dri/renderD{render_minor}"
