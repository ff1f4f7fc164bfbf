"""AMD discovery through ROCm SMI: librocm_smi64.so.1 (Debian 12's librocm-smi64-1; ROCm 5.x
ships the same soname family) loaded with ctypes, no compiled binding.

Per GPU: rsmi_dev_unique_id_get (the UUID, "GPU-" + 16 lowercase hex digits: the form
ROCR_VISIBLE_DEVICES accepts), rsmi_dev_name_get (model), rsmi_dev_memory_total_get(VRAM)
(required); rsmi_dev_pci_id_get, rsmi_topo_get_numa_node_number (else sysfs) and
rsmi_dev_drm_render_minor_get (the device file /dev/dri/renderD<minor>; without it the minor is
assumed to be 128 + index, as the render nodes of a GPU-only node are numbered) when the
library has them. ROCm SMI 5.2 reports no compute unit count (None).
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Any

from slurm_vgpu.gres.backends import BackendOptions, BackendUnavailable, DiscoveryError
from slurm_vgpu.gres.device import (
    DEFAULT_ALLOCATION_GRANULARITY,
    DRM_RENDER_MINOR_BASE,
    Device,
    amd_device_file,
)
from slurm_vgpu.gres.nvml import normalize_pci_bus_id

LIBRARY = "librocm_smi64.so.1"
RSMI_STATUS_SUCCESS = 0
RSMI_STATUS_NOT_SUPPORTED = 2
RSMI_STATUS_NOT_FOUND = 10
RSMI_STATUS_INSUFFICIENT_SIZE = 11
RSMI_MEM_TYPE_VRAM = 0
NAME_LEN = 256

HINT = (
    "is the amdgpu driver loaded on this host? On hosts without it, describe the GPUs "
    "statically under nodes[].gpus in the config, or give the node expect_gpus: 0"
)


class RsmiCallError(Exception):
    def __init__(self, call: str, status: int, text: str) -> None:
        super().__init__(f"{call}: {text} ({status})")
        self.call = call
        self.status = status


class RsmiLibrary:
    """A loaded librocm_smi64 with rsmi_init done: typed calls that raise RsmiCallError.
    Shared by discovery (gres) and the daemon's device source (policies/service)."""

    def __init__(self, library: str | None = None) -> None:
        path = library or LIBRARY
        try:
            self.lib: Any = ctypes.CDLL(path)
        except OSError as e:
            raise BackendUnavailable(f"ROCm SMI unavailable: cannot load {path}: {e}") from e
        self._lock = threading.Lock()
        status = int(self.lib.rsmi_init(ctypes.c_uint64(0)))
        if status != RSMI_STATUS_SUCCESS:
            raise BackendUnavailable(f"ROCm SMI unavailable: rsmi_init: {self.text(status)}; "
                                     f"{HINT}")
        self._open = True

    def text(self, status: int) -> str:
        fn = getattr(self.lib, "rsmi_status_string", None)
        if fn is not None:
            out = ctypes.c_char_p()
            if fn(ctypes.c_int(status), ctypes.byref(out)) == 0 and out.value:
                return out.value.decode("utf-8", "replace")
        return f"status {status}"

    def has(self, name: str) -> bool:
        try:
            getattr(self.lib, name)
        except AttributeError:
            return False
        return True

    def call(self, name: str, *args: Any) -> None:
        status = int(getattr(self.lib, name)(*args))
        if status != RSMI_STATUS_SUCCESS:
            raise RsmiCallError(name, status, self.text(status))

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                self.lib.rsmi_shut_down()

    # --- typed calls ------------------------------------------------------------------------

    def count(self) -> int:
        n = ctypes.c_uint32()
        self.call("rsmi_num_monitor_devices", ctypes.byref(n))
        return int(n.value)

    def unique_id(self, index: int) -> int:
        v = ctypes.c_uint64()
        self.call("rsmi_dev_unique_id_get", ctypes.c_uint32(index), ctypes.byref(v))
        return int(v.value)

    def uuid(self, index: int) -> str:
        return amd_uuid(self.unique_id(index))

    def name(self, index: int) -> str:
        buf = ctypes.create_string_buffer(NAME_LEN)
        self.call("rsmi_dev_name_get", ctypes.c_uint32(index), buf, ctypes.c_size_t(NAME_LEN))
        return buf.value.decode("utf-8", "replace").strip()

    def _u64(self, name: str, index: int, *mid: Any) -> int:
        v = ctypes.c_uint64()
        self.call(name, ctypes.c_uint32(index), *mid, ctypes.byref(v))
        return int(v.value)

    def _u32(self, name: str, index: int) -> int:
        v = ctypes.c_uint32()
        self.call(name, ctypes.c_uint32(index), ctypes.byref(v))
        return int(v.value)

    def memory_total(self, index: int) -> int:
        return self._u64("rsmi_dev_memory_total_get", index, ctypes.c_int(RSMI_MEM_TYPE_VRAM))

    def memory_used(self, index: int) -> int:
        return self._u64("rsmi_dev_memory_usage_get", index, ctypes.c_int(RSMI_MEM_TYPE_VRAM))

    def busy_percent(self, index: int) -> int:
        return self._u32("rsmi_dev_busy_percent_get", index)

    def pci_bus_id(self, index: int) -> str:
        bdf = self._u64("rsmi_dev_pci_id_get", index)
        # BDFID = domain << 32 | bus << 8 | device << 3 | function
        return normalize_pci_bus_id(
            f"{(bdf >> 32) & 0xFFFF:04x}:{(bdf >> 8) & 0xFF:02x}:{(bdf >> 3) & 0x1F:02x}."
            f"{bdf & 0x7:x}"
        )

    def numa_node(self, index: int) -> int:
        return self._u32("rsmi_topo_get_numa_node_number", index)

    def render_minor(self, index: int) -> int:
        return self._u32("rsmi_dev_drm_render_minor_get", index)


def amd_uuid(unique_id: int) -> str:
    """The inventory's UUID of an AMD GPU: "GPU-" + rsmi_dev_unique_id_get's value as 16
    lowercase hex digits (what ROCR_VISIBLE_DEVICES accepts)."""
    return f"GPU-{unique_id & 0xFFFFFFFFFFFFFFFF:016x}"


class RsmiBackend:
    name = "rsmi"

    def __init__(self, options: BackendOptions, library: RsmiLibrary | None = None) -> None:
        """`library`: an already opened RsmiLibrary (tests); else options.library or the
        system's librocm_smi64.so.1."""
        self._options = options
        self._library = library

    def discover(self) -> list[Device]:
        lib = self._library or RsmiLibrary(self._options.library)
        try:
            try:
                count = lib.count()
            except RsmiCallError as e:
                raise DiscoveryError(f"ROCm SMI cannot count devices: {e}; {HINT}") from e
            return [self._device(lib, index) for index in range(count)]
        finally:
            if self._library is None:
                lib.close()

    def _device(self, lib: RsmiLibrary, index: int) -> Device:
        def required(what: str, call: Any) -> Any:
            try:
                return call(index)
            except RsmiCallError as e:
                raise DiscoveryError(f"ROCm SMI: GPU {index}: {what} failed: {e}") from e

        def optional(call: Any) -> Any:
            # Optional facts: older libraries and the simulated GPU lack some calls.
            try:
                return call(index)
            except (RsmiCallError, AttributeError):
                return None

        uuid = required("rsmi_dev_unique_id_get", lib.uuid)
        model = required("rsmi_dev_name_get", lib.name)
        memory = required("rsmi_dev_memory_total_get", lib.memory_total)
        if not model or not model.isprintable() or "#" in model:
            raise DiscoveryError(f"ROCm SMI: GPU {index}: unusable model name {model!r}")
        pci_bus_id = optional(lib.pci_bus_id)
        numa = optional(lib.numa_node)
        if (numa is None or numa >= 2**31) and pci_bus_id is not None:
            numa = self._sysfs_numa_node(pci_bus_id)
        minor = optional(lib.render_minor)
        return Device(
            index=index,
            uuid=uuid,
            model=model,
            memory_bytes=int(memory),
            compute_units=None,
            pci_bus_id=pci_bus_id,
            numa_node=int(numa) if numa is not None and 0 <= numa < 2**31 else None,
            allocation_granularity=DEFAULT_ALLOCATION_GRANULARITY,
            device_file=amd_device_file(minor if minor else DRM_RENDER_MINOR_BASE + index),
            vendor="amd",
        )

    def _sysfs_numa_node(self, pci_bus_id: str) -> int | None:
        path = Path(self._options.sys_root, "sys/bus/pci/devices", pci_bus_id, "numa_node")
        try:
            value = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        return value if value >= 0 else None
