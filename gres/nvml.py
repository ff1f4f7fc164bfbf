"""NVIDIA discovery through NVML (the nvidia-ml-py binding, imported as pynvml)."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from slurm_vgpu.gres.backends import BackendOptions, BackendUnavailable, DiscoveryError
from slurm_vgpu.gres.device import DEFAULT_ALLOCATION_GRANULARITY, Device, nvidia_device_file

HINT = (
    "is the NVIDIA driver loaded on this host? On hosts without it, describe the GPUs "
    "statically under nodes[].gpus in the config, or give the node expect_gpus: 0"
)


def _text(value: object) -> str:
    # pynvml returned bytes before 11.x and str since; accept both.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def normalize_pci_bus_id(bus_id: str) -> str:
    """NVML writes "00000000:3B:00.0"; sysfs and lspci write "0000:3b:00.0"."""
    bus_id = bus_id.strip().lower()
    domain, sep, rest = bus_id.partition(":")
    if sep and len(domain) > 4 and domain.lstrip("0") == domain[-4:].lstrip("0"):
        domain = domain[-4:]
    return f"{domain}{sep}{rest}"


class NvmlBackend:
    name = "nvml"

    def __init__(self, options: BackendOptions, nvml: Any = None) -> None:
        """`nvml` is a pynvml-like module; tests inject a fake one."""
        self._options = options
        self._nvml = nvml

    def _load(self) -> Any:
        if self._nvml is not None:
            return self._nvml
        try:
            module: ModuleType = importlib.import_module("pynvml")
        except ImportError as e:
            raise BackendUnavailable(
                "NVML unavailable: the nvidia-ml-py package is not installed "
                "(pip install nvidia-ml-py)"
            ) from e
        if self._options.library is not None:
            # pynvml loads "libnvidia-ml.so.1" by name; handing it an already loaded library
            # is the one way to point it at a particular file without touching the environment.
            try:
                module.nvmlLib = ctypes.CDLL(self._options.library)  # type: ignore[attr-defined]
            except OSError as e:
                raise BackendUnavailable(
                    f"NVML unavailable: cannot load {self._options.library}: {e}"
                ) from e
        return module

    def discover(self) -> list[Device]:
        nvml = self._load()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise BackendUnavailable(f"NVML unavailable: {e}; {HINT}") from e
        try:
            try:
                count = int(nvml.nvmlDeviceGetCount())
            except nvml.NVMLError as e:
                raise DiscoveryError(f"NVML cannot count devices: {e}; {HINT}") from e
            return [self._device(nvml, index) for index in range(count)]
        finally:
            # Nothing useful to do about a failed shutdown.
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlShutdown()

    def _device(self, nvml: Any, index: int) -> Device:
        def required(what: str, call: Any, *args: Any) -> Any:
            try:
                return call(*args)
            except nvml.NVMLError as e:
                raise DiscoveryError(f"NVML: GPU {index}: {what} failed: {e}") from e

        def optional(call_name: str, *args: Any) -> Any:
            # Optional facts: old drivers, MIG-less parts and the simulated GPU lack some calls.
            call = getattr(nvml, call_name, None)
            if call is None:
                return None
            try:
                return call(*args)
            except nvml.NVMLError:
                return None

        handle = required("nvmlDeviceGetHandleByIndex", nvml.nvmlDeviceGetHandleByIndex, index)
        uuid = _text(required("nvmlDeviceGetUUID", nvml.nvmlDeviceGetUUID, handle))
        model = _text(required("nvmlDeviceGetName", nvml.nvmlDeviceGetName, handle)).strip()
        memory = required("nvmlDeviceGetMemoryInfo", nvml.nvmlDeviceGetMemoryInfo, handle)
        if not uuid or not uuid.isprintable() or any(ch.isspace() or ch in "#=" for ch in uuid):
            raise DiscoveryError(f"NVML: GPU {index}: unusable UUID {uuid!r}")
        if not model or not model.isprintable() or "#" in model:
            raise DiscoveryError(f"NVML: GPU {index}: unusable model name {model!r}")
        attributes = optional("nvmlDeviceGetAttributes", handle)
        compute_units = getattr(attributes, "multiprocessorCount", None) if attributes else None
        pci = optional("nvmlDeviceGetPciInfo", handle)
        pci_bus_id = normalize_pci_bus_id(_text(pci.busId)) if pci is not None else None
        numa = optional("nvmlDeviceGetNumaNodeId", handle)
        if numa is None and pci_bus_id is not None:
            numa = self._sysfs_numa_node(pci_bus_id)
        minor = optional("nvmlDeviceGetMinorNumber", handle)
        return Device(
            index=index,
            uuid=uuid,
            model=model,
            memory_bytes=int(memory.total),
            compute_units=int(compute_units) if compute_units else None,
            pci_bus_id=pci_bus_id,
            numa_node=int(numa) if numa is not None and int(numa) >= 0 else None,
            allocation_granularity=DEFAULT_ALLOCATION_GRANULARITY,
            device_file=nvidia_device_file(int(minor) if minor is not None else index),
            vendor="nvidia",
        )

    def _sysfs_numa_node(self, pci_bus_id: str) -> int | None:
        path = Path(self._options.sys_root, "sys/bus/pci/devices", pci_bus_id, "numa_node")
        try:
            value = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        return value if value >= 0 else None
