"""Test doubles for the GRES generator's unit tests (no tests here).

FakeNvml stands in for the pynvml module: the same function names, NVMLError and return
shapes, over a list of simulated GPUs. Only pure logic is tested with it; discovery against a
real libnvidia-ml (the simulated GPU) is in test_gres_fakegpu.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

GIB = 1024**3


class NVMLError(Exception):
    pass


@dataclass
class FakeGpu:
    model: str = "NVIDIA A100-SXM4-80GB"
    memory_bytes: int = 80 * GIB
    uuid: str = ""
    bus_id: bytes = b""
    sms: int | None = 108
    numa: int | None = 0
    minor: int | None = None


@dataclass
class FakeNvml:
    gpus: list[FakeGpu] = field(default_factory=list)
    init_error: str | None = None
    missing: set[str] = field(default_factory=set)
    """Function names that raise like a driver without them."""
    as_bytes: bool = False
    calls: list[str] = field(default_factory=list)

    NVMLError = NVMLError

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if name in self.missing:
            raise NVMLError(f"Function Not Found ({name})")

    def _out(self, text: str) -> str | bytes:
        return text.encode() if self.as_bytes else text

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.calls.append("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        self._check("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._check("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str | bytes:
        self._check("nvmlDeviceGetUUID")
        gpu = self.gpus[handle]
        return self._out(gpu.uuid or f"GPU-{handle:08x}-0000-0000-0000-000000000000")

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        self._check("nvmlDeviceGetName")
        return self._out(self.gpus[handle].model)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        self._check("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=self.gpus[handle].memory_bytes, used=0, free=0)

    def nvmlDeviceGetPciInfo(self, handle: int) -> SimpleNamespace:
        self._check("nvmlDeviceGetPciInfo")
        bus = self.gpus[handle].bus_id or f"00000000:{0x1A + handle:02X}:00.0".encode()
        return SimpleNamespace(busId=bus)

    def nvmlDeviceGetAttributes(self, handle: int) -> SimpleNamespace:
        self._check("nvmlDeviceGetAttributes")
        if self.gpus[handle].sms is None:
            raise NVMLError("Not Supported")
        return SimpleNamespace(multiprocessorCount=self.gpus[handle].sms)

    def nvmlDeviceGetNumaNodeId(self, handle: int) -> int:
        self._check("nvmlDeviceGetNumaNodeId")
        numa = self.gpus[handle].numa
        if numa is None:
            raise NVMLError("Not Supported")
        return numa

    def nvmlDeviceGetMinorNumber(self, handle: int) -> int:
        self._check("nvmlDeviceGetMinorNumber")
        minor = self.gpus[handle].minor
        return handle if minor is None else minor


def machine(*specs: tuple[str, int], count: int = 1) -> FakeNvml:
    """A fake NVML with the given (model, memory GiB) GPUs, repeated `count` times."""
    gpus = [FakeGpu(model=model, memory_bytes=gib * GIB) for model, gib in specs] * count
    return FakeNvml(gpus=[FakeGpu(**vars(g)) for g in gpus])
