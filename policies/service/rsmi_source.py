"""Device readings from ROCm SMI (librocm_smi64.so.1 through ctypes, gres/rsmi.py's loader):
the AMD counterpart of nvml_source.PynvmlSource, with the same NvmlSource protocol.

Per GPU: rsmi_dev_busy_percent_get (utilization) and rsmi_dev_memory_usage_get/_total_get
(VRAM). Per process: rsmi_compute_process_info_get (every process that opened an AMD GPU, its
VRAM) and rsmi_compute_process_gpus_get (which GPUs). ROCm SMI 5.2 (HIP 5.2, Debian 12) reports
one VRAM figure per process, summed over its GPUs, so a process on several GPUs is charged an
equal share on each (exact for the usual process on one GPU; a job's processes see only its
placed GPUs).

Per-process utilization: ROCm SMI 5.2 has no per-process device-time samples like NVML's
process utilization. rsmi_process_info_t's cu_occupancy is the share of compute units the
process's waves hold at the instant of the read (KFD's stats_<gpu>/cu_occupancy; the simulated
GPU reports 100 while the process's kernel runs and 0 otherwise), not busy time over a period,
so one read per control period cannot stand for the share a job achieved. ProcessReading's
utilization_permille is therefore None for AMD processes: the backstop's compute check does
not run for them (memory is checked as on NVIDIA), and the share and idle logic uses the
hook's state files (a job without them counts as active, the safe side). The figure is kept
in `cu_occupancy_percent` of the source's last sample for diagnostics.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading

from slurm_vgpu.gres.backends import DiscoveryError
from slurm_vgpu.gres.rsmi import (
    RSMI_STATUS_INSUFFICIENT_SIZE,
    RSMI_STATUS_NOT_FOUND,
    RSMI_STATUS_SUCCESS,
    RsmiCallError,
    RsmiLibrary,
)
from slurm_vgpu.policies.service.nvml_source import DeviceReading, NvmlError, ProcessReading


class RsmiProcessInfo(ctypes.Structure):
    """rsmi_process_info_t of rocm_smi.h (5.2)."""

    _fields_ = [
        ("process_id", ctypes.c_uint32),
        ("pasid", ctypes.c_uint32),
        ("vram_usage", ctypes.c_uint64),
        ("sdma_usage", ctypes.c_uint64),
        ("cu_occupancy", ctypes.c_uint32),
    ]


MAX_DEVICES = 64


class RsmiSource:
    """NvmlSource over ROCm SMI. rsmi_init once; every failure -> NvmlError (the observer's
    "device source failed", whatever the vendor)."""

    def __init__(self, library: str | None = None, lib: RsmiLibrary | None = None) -> None:
        try:
            self.lib = lib or RsmiLibrary(library)
        except DiscoveryError as e:
            raise NvmlError(str(e)) from e
        self._lock = threading.Lock()
        # pid -> cu_occupancy (percent) of the last sample, for diagnostics only
        self.cu_occupancy_percent: dict[int, int] = {}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lib.close()

    def process_infos(self) -> list[RsmiProcessInfo]:
        """Every compute process ROCm SMI knows (all AMD GPUs)."""
        lib = self.lib.lib
        n = ctypes.c_uint32(0)
        status = int(lib.rsmi_compute_process_info_get(None, ctypes.byref(n)))
        if status != RSMI_STATUS_SUCCESS:
            raise NvmlError(f"rsmi_compute_process_info_get: {self.lib.text(status)}")
        for _ in range(4):  # processes may start between the two calls
            size = n.value + 8
            buf = (RsmiProcessInfo * size)()
            n = ctypes.c_uint32(size)
            status = int(lib.rsmi_compute_process_info_get(buf, ctypes.byref(n)))
            if status == RSMI_STATUS_SUCCESS:
                return list(buf[: n.value])
            if status != RSMI_STATUS_INSUFFICIENT_SIZE:
                break
            n = ctypes.c_uint32(size * 2)
        raise NvmlError(f"rsmi_compute_process_info_get: {self.lib.text(status)}")

    def process_info(self, pid: int) -> RsmiProcessInfo | None:
        """One process's info (rsmi_compute_process_info_by_pid_get); None when it holds no
        AMD GPU."""
        info = RsmiProcessInfo()
        status = int(self.lib.lib.rsmi_compute_process_info_by_pid_get(
            ctypes.c_uint32(pid), ctypes.byref(info)))
        if status == RSMI_STATUS_NOT_FOUND:
            return None
        if status != RSMI_STATUS_SUCCESS:
            raise NvmlError(f"rsmi_compute_process_info_by_pid_get: {self.lib.text(status)}")
        return info

    def process_gpus(self, pid: int) -> list[int]:
        """The GPU indices (ROCm SMI's) a process uses; [] when it is gone."""
        indices = (ctypes.c_uint32 * MAX_DEVICES)()
        n = ctypes.c_uint32(MAX_DEVICES)
        status = int(self.lib.lib.rsmi_compute_process_gpus_get(
            ctypes.c_uint32(pid), indices, ctypes.byref(n)))
        if status not in (RSMI_STATUS_SUCCESS, RSMI_STATUS_INSUFFICIENT_SIZE):
            return []
        return [int(indices[i]) for i in range(min(n.value, MAX_DEVICES))]

    def sample(self) -> tuple[list[DeviceReading], list[ProcessReading]]:
        devices: list[DeviceReading] = []
        processes: list[ProcessReading] = []
        with self._lock:
            try:
                count = self.lib.count()
            except RsmiCallError as e:
                raise NvmlError(str(e)) from e
            uuids: dict[int, str] = {}
            for index in range(count):
                try:
                    uuid = self.lib.uuid(index)
                except RsmiCallError:
                    continue
                uuids[index] = uuid
                util = mem_used = mem_total = None
                with contextlib.suppress(RsmiCallError):
                    util = min(100, self.lib.busy_percent(index)) * 10
                with contextlib.suppress(RsmiCallError):
                    mem_used = self.lib.memory_used(index)
                    mem_total = self.lib.memory_total(index)
                devices.append(DeviceReading(uuid, index, util, mem_used, mem_total))
            occupancy: dict[int, int] = {}
            for info in self.process_infos():
                pid = int(info.process_id)
                on = sorted({i for i in self.process_gpus(pid) if i in uuids})
                if not pid or not on:
                    continue
                occupancy[pid] = int(info.cu_occupancy)
                vram = int(info.vram_usage)
                share, rest = divmod(vram, len(on))
                for k, index in enumerate(on):
                    used = share + (rest if k == 0 else 0)
                    processes.append(ProcessReading(uuids[index], pid, used, None))
            self.cu_occupancy_percent = occupancy
        return devices, processes
