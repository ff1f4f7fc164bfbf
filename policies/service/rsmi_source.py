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
so one read per control period cannot stand for the share a job achieved. An OccupancyPoller
thread therefore reads every process's cu_occupancy about every 200 ms (jittered, so that the
reads do not alias with the device's time slices) and keeps the last WINDOW_READS (100) of
them. The fraction of those reads in which a process held the device estimates its device
time; what the backstop gets is the estimate's lower confidence bound (Wilson, z = 3), so a
figure from few reads can never cancel a step that kept to its share, while a process that
shed the hook and holds the device all the time stands out after a few reads (10 of 10: 53 %;
25 of 25: 74 %, against a 1-slice share of 10 % + 15 % tolerance). The hook's own sampler reads
the same counter at 1 kHz for its token bucket (docs/hook.md); the agent cannot afford that:
one read lists every process of the node (on real hardware several sysfs files per process
and GPU). Below MIN_READS reads, and for a process on several GPUs (cu_occupancy is one figure
over all of them), utilization_permille is None and the compute check skips it.
`cu_occupancy_percent` keeps the last sample's read.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable

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
POLL_INTERVAL_SECONDS = 0.2
WINDOW_READS = 100
MIN_READS = 10
CONFIDENCE_Z = 3.0

log = logging.getLogger("slurm_vgpu.daemon")


def busy_lower_bound_permille(held: int, reads: int, z: float = CONFIDENCE_Z) -> int:
    """Lower Wilson bound (z standard errors) of the fraction held/reads, in permille: the
    most device time a process can be said to have used without overstating it."""
    if reads <= 0 or held <= 0:
        return 0
    p, zz = held / reads, z * z
    centre = p + zz / (2 * reads)
    spread = z * math.sqrt(p * (1 - p) / reads + zz / (4 * reads * reads))
    return max(0, int(1000 * (centre - spread) / (1 + zz / reads)))


class OccupancyPoller:
    """Keeps the last `window` reads of `read` (pid, cu_occupancy pairs), one every `interval`
    seconds (uniformly jittered by +-50 %) in a daemon thread. take(): pid -> lower bound of
    the permille of those reads in which it held the device (busy_lower_bound_permille), or
    None while fewer than `min_reads` were made."""

    def __init__(self, read: Callable[[], Iterable[tuple[int, int]]],
                 interval: float = POLL_INTERVAL_SECONDS, window: int = WINDOW_READS,
                 min_reads: int = MIN_READS) -> None:
        self._read = read
        self._interval = interval
        self._min_reads = min_reads
        self._lock = threading.Lock()
        self._reads: deque[frozenset[int]] = deque(maxlen=window)
        self._held: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vgpu-rsmi-occupancy",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def reads(self) -> int:
        with self._lock:
            return len(self._reads)

    def poll_once(self) -> None:
        held = frozenset(pid for pid, occupancy in self._read() if occupancy > 0)
        with self._lock:
            if len(self._reads) == self._reads.maxlen:
                self._held.subtract(self._reads[0])  # the oldest read leaves the window
            self._reads.append(held)
            self._held.update(held)
            self._held = +self._held  # drop pids that left the window

    def take(self) -> dict[int, int] | None:
        """pid -> lower bound (permille) of its device time over the window (absent: 0);
        None while the window has fewer than min_reads reads."""
        with self._lock:
            reads = len(self._reads)
            if reads < self._min_reads:
                return None
            held = dict(self._held)
        return {pid: busy_lower_bound_permille(n, reads) for pid, n in held.items()}

    def _run(self) -> None:
        rng = random.Random()
        while not self._stop.wait(self._interval * rng.uniform(0.5, 1.5)):
            try:
                self.poll_once()
                self._failed = False
            except NvmlError as e:
                if not self._failed:  # once per outage, not every 20 ms
                    log.warning("vgpu: ROCm SMI occupancy read failed: %s", e)
                self._failed = True


class RsmiSource:
    """NvmlSource over ROCm SMI. rsmi_init once; every failure -> NvmlError (the observer's
    "device source failed", whatever the vendor)."""

    def __init__(self, library: str | None = None, lib: RsmiLibrary | None = None,
                 poll_interval: float | None = POLL_INTERVAL_SECONDS,
                 window: int = WINDOW_READS, min_reads: int = MIN_READS) -> None:
        """poll_interval None: no occupancy poller (utilization_permille stays None)."""
        try:
            self.lib = lib or RsmiLibrary(library)
        except DiscoveryError as e:
            raise NvmlError(str(e)) from e
        self._lock = threading.Lock()
        # pid -> cu_occupancy (percent) of the last sample, for diagnostics only
        self.cu_occupancy_percent: dict[int, int] = {}
        self.poller: OccupancyPoller | None = None
        self._info_buf = (RsmiProcessInfo * 64)()
        # pid -> (its VRAM, its GPUs) at the last sample: a process's GPUs are asked again
        # only when its VRAM changed (using another GPU allocates there), which keeps the
        # sample at one ROCm SMI call per device, not one more per process
        self._gpus_of: dict[int, tuple[int, list[int]]] = {}
        if poll_interval is not None:
            self.poller = OccupancyPoller(self._occupancies, poll_interval, window, min_reads)
            self.poller.start()

    def close(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        with contextlib.suppress(Exception):
            self.lib.close()

    def _occupancies(self) -> list[tuple[int, int]]:
        """The poller's read: every process's pid and CU occupancy."""
        with self._lock:
            return [(int(i.process_id), int(i.cu_occupancy)) for i in self.process_infos()]

    def process_infos(self) -> list[RsmiProcessInfo]:
        """Every compute process ROCm SMI knows (all AMD GPUs), as copies: one call into a
        kept buffer, grown when too small (processes may start meanwhile). The caller holds
        self._lock (the buffer is shared by the poller and the sample)."""
        lib = self.lib.lib
        status = RSMI_STATUS_INSUFFICIENT_SIZE
        for _ in range(4):
            n = ctypes.c_uint32(len(self._info_buf))
            status = int(lib.rsmi_compute_process_info_get(self._info_buf, ctypes.byref(n)))
            if status == RSMI_STATUS_SUCCESS:
                return [RsmiProcessInfo.from_buffer_copy(i) for i in self._info_buf[: n.value]]
            if status != RSMI_STATUS_INSUFFICIENT_SIZE:
                break
            self._info_buf = (RsmiProcessInfo * (2 * len(self._info_buf)))()
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
            held = self.poller.take() if self.poller is not None else None
            gpus_of: dict[int, tuple[int, list[int]]] = {}
            for info in self.process_infos():
                pid = int(info.process_id)
                vram = int(info.vram_usage)
                known = self._gpus_of.get(pid)
                gpus = known[1] if known is not None and known[0] == vram else \
                    self.process_gpus(pid)
                gpus_of[pid] = (vram, gpus)
                on = sorted({i for i in gpus if i in uuids})
                if not pid or not on:
                    continue
                occupancy[pid] = int(info.cu_occupancy)
                share, rest = divmod(vram, len(on))
                busy = held.get(pid, 0) if held is not None and len(on) == 1 else None
                for k, index in enumerate(on):
                    used = share + (rest if k == 0 else 0)
                    processes.append(ProcessReading(uuids[index], pid, used, busy))
            self.cu_occupancy_percent = occupancy
            self._gpus_of = gpus_of
        return devices, processes
