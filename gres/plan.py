"""What each GPU of a node becomes (sliced, kept whole, excluded) and how big its slices are.
Pure logic: devices and config in, a NodePlan out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres.config import GresConfig, NodeGroup, Selector
from slurm_vgpu.gres.device import Device
from slurm_vgpu.gres.sizes import format_size

PERMILLE = 1000


class Role(StrEnum):
    SLICED = "sliced"
    WHOLE = "whole"
    EXCLUDED = "excluded"


@dataclass(frozen=True)
class GpuPlan:
    device: Device
    role: Role
    slices: int = 0
    slice_bytes: int = 0
    slice_permille: int = 0
    reserved_bytes: int = 0


@dataclass(frozen=True)
class NodePlan:
    names: str
    """One node name, or the hostlist expression of a group (cluster mode)."""
    gpus: tuple[GpuPlan, ...]

    @property
    def sliced(self) -> tuple[GpuPlan, ...]:
        return tuple(g for g in self.gpus if g.role is Role.SLICED)

    @property
    def whole(self) -> tuple[GpuPlan, ...]:
        return tuple(g for g in self.gpus if g.role is Role.WHOLE)

    @property
    def vgpu_count(self) -> int:
        return sum(g.slices for g in self.sliced)


def slice_geometry(memory_bytes: int, reserved: int, slices: int, granularity: int) -> int:
    """Bytes per slice: the memory left after the reserve, split evenly, rounded DOWN to the
    allocation granularity (0 when not even one granule per slice is left)."""
    usable = max(memory_bytes - reserved, 0)
    return (usable // slices) // granularity * granularity


def _matches(selector: Selector, device: Device) -> bool:
    if isinstance(selector, int):
        return selector == device.index
    wanted = selector.lower()
    return wanted == (device.uuid or "").lower() or wanted == (device.pci_bus_id or "").lower()


def _pick(
    group: NodeGroup | None, config: GresConfig, key: str
) -> tuple[tuple[Selector, ...], str, bool]:
    """The selector list in force, its field name, and whether unmatched entries are errors
    (a node group names its own GPUs; a global list may name GPUs of other nodes)."""
    if group is not None and getattr(group, key) is not None:
        return getattr(group, key), f"{group.field}.{key}", True
    return getattr(config, key), key, False


def plan_node(
    names: str,
    devices: list[Device] | tuple[Device, ...],
    config: GresConfig,
    group: NodeGroup | None,
) -> NodePlan:
    ordered = sorted(devices, key=lambda d: d.index)
    exclude, exclude_field, exclude_strict = _pick(group, config, "exclude")
    whole, whole_field, whole_strict = _pick(group, config, "whole")
    for selectors, fld, strict in (
        (exclude, exclude_field, exclude_strict),
        (whole, whole_field, whole_strict),
    ):
        if not strict:
            continue
        for selector in selectors:
            if not any(_matches(selector, d) for d in ordered):
                have = ", ".join(str(d.index) for d in ordered) or "none"
                raise ConfigError(
                    f"{fld}: {selector!r} matches no GPU on {names} (GPU indices: {have}); "
                    "allowed: an index, UUID or PCI bus id of one of them"
                )
    plans: list[GpuPlan] = []
    for device in ordered:
        override = config.models.get(device.model)
        model_field = f"models[{device.model!r}]"
        if any(_matches(s, device) for s in exclude):
            plans.append(GpuPlan(device, Role.EXCLUDED))
            continue
        if any(_matches(s, device) for s in whole):
            plans.append(GpuPlan(device, Role.WHOLE))
            continue
        if override is not None and override.exclude:
            plans.append(GpuPlan(device, Role.EXCLUDED))
            continue
        if override is not None and override.whole:
            plans.append(GpuPlan(device, Role.WHOLE))
            continue
        slices, slices_field = config.slices_per_gpu, "slices_per_gpu"
        reserved, reserved_field = config.reserved_memory, "reserved_memory"
        granularity = device.allocation_granularity
        if override is not None:
            if override.slices_per_gpu is not None:
                slices, slices_field = override.slices_per_gpu, f"{model_field}.slices_per_gpu"
            if override.reserved_memory is not None:
                reserved = override.reserved_memory
                reserved_field = f"{model_field}.reserved_memory"
            if override.allocation_granularity is not None:
                granularity = override.allocation_granularity
        if group is not None:
            if group.slices_per_gpu is not None:
                slices, slices_field = group.slices_per_gpu, f"{group.field}.slices_per_gpu"
            if group.reserved_memory is not None:
                reserved, reserved_field = group.reserved_memory, f"{group.field}.reserved_memory"
        if reserved >= device.memory_bytes:
            raise ConfigError(
                f"{reserved_field}: {format_size(reserved)} leaves no memory on {names} "
                f"{device.describe()} with {format_size(device.memory_bytes)}; "
                f"allowed: less than {format_size(device.memory_bytes)}"
            )
        slice_bytes = slice_geometry(device.memory_bytes, reserved, slices, granularity)
        if slice_bytes == 0:
            most = max((device.memory_bytes - reserved) // granularity, 1)
            raise ConfigError(
                f"{slices_field}: {slices} slices of {names} {device.describe()} would be "
                f"smaller than its {format_size(granularity)} allocation granularity; "
                f"allowed: 1..{min(most, 100)} for this GPU (or lower {reserved_field})"
            )
        plans.append(
            GpuPlan(
                device,
                Role.SLICED,
                slices=slices,
                slice_bytes=slice_bytes,
                slice_permille=PERMILLE // slices,
                reserved_bytes=reserved,
            )
        )
    return NodePlan(names=names, gpus=tuple(plans))
