"""The seam between the generator and vendor tools: a discovery backend turns a vendor's
management library into vendor-neutral Devices. The generator only ever sees this protocol.

Adding a vendor (AMD through rocm-smi, Huawei Ascend through npu-smi) means writing one module
with a class that takes BackendOptions and has `name` and `discover()`, and one line in
BUILTIN_BACKENDS (or a register_backend() call from outside); nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres.device import Device


class DiscoveryError(ConfigError):
    """Discovery could not run or found something unusable (exit code 2, nothing written)."""


@dataclass(frozen=True)
class BackendOptions:
    library: str | None = None
    """Path of the vendor management library to load instead of the system one (tests point it
    at the simulated GPU's libnvidia-ml.so.1)."""
    sys_root: Path = field(default_factory=lambda: Path("/"))
    """Root of /sys for facts the library may lack (NUMA node of a PCI device)."""


class DiscoveryBackend(Protocol):
    name: str

    def discover(self) -> list[Device]:
        """Every device on this host, sorted by index; raise DiscoveryError when impossible."""
        ...


BackendFactory = Callable[[BackendOptions], DiscoveryBackend]

# name -> "module:attribute"; imported only when chosen so a missing vendor library cannot
# break the other backends.
BUILTIN_BACKENDS: dict[str, str] = {
    "nvml": "slurm_vgpu.gres.nvml:NvmlBackend",
}
_registered: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    _registered[name] = factory


def backend_names() -> list[str]:
    return sorted(set(BUILTIN_BACKENDS) | set(_registered))


def create_backend(name: str, options: BackendOptions) -> DiscoveryBackend:
    factory = _registered.get(name)
    if factory is None:
        target = BUILTIN_BACKENDS.get(name)
        if target is None:
            raise ConfigError(
                f"discovery: unknown backend {name!r}; allowed: {', '.join(backend_names())}"
            )
        module_name, attr = target.split(":")
        factory = getattr(importlib.import_module(module_name), attr)
    return factory(options)
