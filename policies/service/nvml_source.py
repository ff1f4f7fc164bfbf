"""Device readings from NVML (pynvml): per-GPU utilization and memory, and every process
holding device memory. Independent of the hook: this is how the backstop sees processes that
bypass it. On test machines pynvml loads the simulated libnvidia-ml.so.1.

`NvmlSource` is the vendor-neutral protocol (the name is historical): AMD GPUs are read through
ROCm SMI by rsmi_source.RsmiSource, and a node with both vendors gets a `VendorSources` that
asks each vendor's source for the GPUs the node inventory gives that vendor."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("slurm_vgpu.daemon")


@dataclass(frozen=True, slots=True)
class DeviceReading:
    uuid: str
    index: int
    utilization_permille: int | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None


@dataclass(frozen=True, slots=True)
class ProcessReading:
    uuid: str
    pid: int
    used_memory_bytes: int
    # Share of the device's SMs the process kept busy since the previous sample (NVML's
    # per-process accounting), 0..1000; None where NVML cannot tell.
    utilization_permille: int | None = None


class NvmlSource(Protocol):
    def sample(self) -> tuple[list[DeviceReading], list[ProcessReading]]: ...


class NvmlError(Exception):
    pass


class PynvmlSource:
    """NvmlSource over pynvml. nvmlInit once; every call guarded (NVML errors -> NvmlError)."""

    def __init__(self) -> None:
        import pynvml

        self.nvml: Any = pynvml
        self._lock = threading.Lock()
        self._last_seen_us: dict[str, int] = {}
        try:
            pynvml.nvmlInit()
        except Exception as e:
            raise NvmlError(f"NVML unavailable: {e}") from e

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.nvml.nvmlShutdown()

    def _processes(self, handle: Any) -> list[Any]:
        procs: list[Any] = []
        for name in ("nvmlDeviceGetComputeRunningProcesses",
                     "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(self.nvml, name, None)
            if fn is None:
                continue
            try:
                procs.extend(fn(handle))
            except Exception:
                continue
        return procs

    def _process_utilization(self, handle: Any, uuid: str) -> dict[int, int] | None:
        """pid -> mean SM utilization (permille) of its samples since the last call.

        The newer call (nvmlDeviceGetProcessesUtilizationInfo, drivers 550+) reports the share
        of each sample in which a process's kernels ran: its device time. The older one reports
        the share in which it had work queued or running, which reads 99 for each of two
        time-sliced busy processes on a real GPU (shared/hardware/h200.md), so a job that waits
        for its co-tenant's time slices would look over its share; it is used only without the
        newer call."""
        fn = getattr(self.nvml, "nvmlDeviceGetProcessesUtilizationInfo", None)
        if fn is None:
            fn = getattr(self.nvml, "nvmlDeviceGetProcessUtilization", None)
        if fn is None:
            return None
        since = self._last_seen_us.get(uuid, 0)
        try:
            samples = fn(handle, since)
        except Exception as e:
            # NOT_FOUND: no sample since `since` (nothing ran); anything else: unsupported
            not_found = getattr(self.nvml, "NVML_ERROR_NOT_FOUND", None)
            return {} if getattr(e, "value", None) == not_found else None
        sums: dict[int, list[int]] = {}
        newest = since
        for smp in samples:
            newest = max(newest, int(smp.timeStamp))
            util = int(smp.smUtil)
            if 0 <= util <= 100:
                acc = sums.setdefault(int(smp.pid), [0, 0])
                acc[0] += util
                acc[1] += 1
        self._last_seen_us[uuid] = newest
        return {pid: total * 10 // n for pid, (total, n) in sums.items() if n}

    def sample(self) -> tuple[list[DeviceReading], list[ProcessReading]]:
        nv = self.nvml
        devices: list[DeviceReading] = []
        processes: list[ProcessReading] = []
        with self._lock:
            try:
                count = nv.nvmlDeviceGetCount()
            except Exception as e:
                raise NvmlError(f"nvmlDeviceGetCount failed: {e}") from e
            for index in range(count):
                try:
                    handle = nv.nvmlDeviceGetHandleByIndex(index)
                    uuid = nv.nvmlDeviceGetUUID(handle)
                    uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
                except Exception:
                    continue
                util = mem_used = mem_total = None
                with contextlib.suppress(Exception):
                    util = int(nv.nvmlDeviceGetUtilizationRates(handle).gpu) * 10
                try:
                    mem = nv.nvmlDeviceGetMemoryInfo(handle)
                    mem_used, mem_total = int(mem.used), int(mem.total)
                except Exception:
                    pass
                devices.append(DeviceReading(uuid, index, util, mem_used, mem_total))
                per_pid = self._process_utilization(handle, uuid)
                seen: set[int] = set()
                for p in self._processes(handle):
                    pid = int(p.pid)
                    used = getattr(p, "usedGpuMemory", None)
                    if pid in seen or not isinstance(used, int) or used < 0 or used >= 2**63:
                        continue
                    seen.add(pid)
                    share = None if per_pid is None else min(1000, per_pid.get(pid, 0))
                    processes.append(ProcessReading(uuid, pid, used, share))
        return devices, processes


class VendorSources:
    """One NvmlSource per vendor, each answering for its vendor's GPUs (by UUID, from the node
    inventory's vendor= tokens; None: every GPU it reports). One vendor failing leaves the
    others' readings in the sample (logged once per distinct error); NvmlError only when every
    source failed."""

    def __init__(self, sources: Mapping[str, NvmlSource],
                 uuids: Mapping[str, Collection[str] | None] | None = None) -> None:
        self.sources = dict(sources)
        self.uuids = {k: (set(v) if v is not None else None) for k, v in (uuids or {}).items()}
        self.errors: dict[str, str] = {}

    def sample(self) -> tuple[list[DeviceReading], list[ProcessReading]]:
        devices: list[DeviceReading] = []
        processes: list[ProcessReading] = []
        failed: list[str] = []
        for vendor, source in self.sources.items():
            try:
                d, p = source.sample()
            except NvmlError as e:
                if self.errors.get(vendor) != str(e):
                    log.warning("vgpu: %s device readings failed: %s", vendor, e)
                self.errors[vendor] = str(e)
                failed.append(f"{vendor}: {e}")
                continue
            self.errors.pop(vendor, None)
            mine = self.uuids.get(vendor)
            devices.extend(r for r in d if mine is None or r.uuid in mine)
            processes.extend(r for r in p if mine is None or r.uuid in mine)
        if failed and len(failed) == len(self.sources):
            raise NvmlError("; ".join(failed))
        return devices, processes

    def close(self) -> None:
        for source in self.sources.values():
            close = getattr(source, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
