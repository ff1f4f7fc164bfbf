"""The seam between the generator and vendor tools: a discovery backend turns a vendor's
management library into vendor-neutral Devices. The generator only ever sees this protocol.

Built in: `nvml` (NVIDIA), `rsmi` (AMD, ROCm SMI) and `auto` (every vendor whose library
answers). Adding a vendor (Huawei Ascend through npu-smi) means writing one module with a class
that takes BackendOptions and has `name` and `discover()`, and one line in BUILTIN_BACKENDS
(and AUTO_ORDER) or a register_backend() call from outside; nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres.device import Device


class DiscoveryError(ConfigError):
    """Discovery could not run or found something unusable (exit code 2, nothing written)."""


class BackendUnavailable(DiscoveryError):
    """The backend's vendor library is missing or does not initialize (no driver, no device
    of that vendor): `auto` discovery moves on to the next vendor."""


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
    "rsmi": "slurm_vgpu.gres.rsmi:RsmiBackend",
}
AUTO = "auto"
"""Every vendor backend of AUTO_ORDER whose library answers, their GPUs together."""
AUTO_ORDER = ("nvml", "rsmi")
# Which backend a --library file belongs to under `auto` (by its file name).
_LIBRARY_HINTS = {"rsmi": ("rocm_smi",), "nvml": ("nvidia-ml",)}
_registered: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    _registered[name] = factory


def backend_names() -> list[str]:
    return sorted(set(BUILTIN_BACKENDS) | set(_registered) | {AUTO})


def create_backend(name: str, options: BackendOptions) -> DiscoveryBackend:
    factory = _registered.get(name)
    if factory is None and name == AUTO:
        return AutoBackend(options)
    if factory is None:
        target = BUILTIN_BACKENDS.get(name)
        if target is None:
            raise ConfigError(
                f"discovery: unknown backend {name!r}; allowed: {', '.join(backend_names())}"
            )
        module_name, attr = target.split(":")
        factory = getattr(importlib.import_module(module_name), attr)
    return factory(options)


def _library_for(name: str, library: str | None) -> str | None:
    """Under `auto`, --library goes to the backend whose library it names (librocm_smi64*:
    rsmi; anything else: nvml, as before auto existed)."""
    if library is None:
        return None
    base = Path(library).name
    owner = next((n for n, hints in _LIBRARY_HINTS.items() if any(h in base for h in hints)),
                 "nvml")
    return library if owner == name else None


def discover_auto(
    options: BackendOptions,
    make_backend: Callable[[str, BackendOptions], DiscoveryBackend] | None = None,
) -> tuple[list[Device], str]:
    """The GPUs of every vendor whose library answers, and the names of those backends
    ("nvml", "rsmi" or "nvml+rsmi").

    A library that is missing or fails to initialize (BackendUnavailable) is skipped; any
    other discovery error is raised (a GPU that answers badly must not silently vanish).
    Indices must be unique per node (inventory, selectors, File= lines), so on a node with
    both vendors the later vendor's GPUs are numbered after the earlier one's: NVIDIA GPUs
    keep their CUDA index, AMD GPUs get (highest NVIDIA index + 1) + their ROCm SMI index.
    Their UUIDs name them unambiguously either way."""
    make = make_backend or create_backend
    found: list[Device] = []
    answered: list[str] = []
    reasons: list[str] = []
    for name in AUTO_ORDER:
        sub = BackendOptions(library=_library_for(name, options.library),
                             sys_root=options.sys_root)
        try:
            devices = sorted(make(name, sub).discover(), key=lambda d: d.index)
        except BackendUnavailable as e:
            reasons.append(str(e))
            continue
        answered.append(name)
        offset = max((d.index for d in found), default=-1) + 1
        found.extend(replace(d, index=d.index + offset) for d in devices)
    if not answered:
        raise BackendUnavailable(
            "auto discovery: no vendor library answered (" + "; ".join(reasons) + ")"
        )
    return found, "+".join(answered)


class AutoBackend:
    """`auto` as a backend object (create_backend("auto", ...))."""

    name = AUTO

    def __init__(self, options: BackendOptions) -> None:
        self._options = options

    def discover(self) -> list[Device]:
        return discover_auto(self._options)[0]
