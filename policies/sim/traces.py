"""Loaders for the trace formats in the shared data folder (openb, Philly, GenAI util).

Every malformed row raises TraceError naming the file and the 1-based line number, so a bad
trace file says exactly what to fix.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from slurm_vgpu.errors import VgpuError

GPU_MILLI = 1000


def trace_data_dir(beside: Path | None = None) -> Path:
    """Where the public traces lie: $VGPU_TRACE_DATA, else `shared/data` next to `beside` (a
    checkout), else `../shared/data` from the current directory."""
    env = os.environ.get("VGPU_TRACE_DATA")
    if env:
        return Path(env)
    return (beside.parent if beside else Path("..")) / "shared" / "data"


class TraceError(VgpuError):
    """A trace file is missing, has the wrong columns or a bad value."""


@dataclass(frozen=True)
class TraceNode:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str


@dataclass(frozen=True)
class TraceJob:
    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int  # per GPU, thousandths of a GPU
    gpu_spec: tuple[str, ...]  # allowed models; empty = any

    @property
    def gpu_request_milli(self) -> int:
        return self.num_gpu * self.gpu_milli


@dataclass(frozen=True)
class PhillyJob:
    submit: float
    duration: float
    num_gpus: int


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise TraceError(f"{path}: cannot read trace file: {e.strerror}") from e
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceError(f"{path}:1: missing column(s) {', '.join(missing)}; "
                             f"expected at least {', '.join(required)}")
        for row in reader:
            if None in row or any(row.get(c) is None for c in required):
                raise TraceError(f"{path}:{reader.line_num}: wrong number of fields")
            yield reader.line_num, row


def _int(path: Path, line: int, row: dict[str, str], col: str, minimum: int = 0) -> int:
    raw = row[col].strip()
    try:
        value = int(float(raw)) if raw else 0
    except ValueError as e:
        raise TraceError(f"{path}:{line}: column {col}: {raw!r} is not a number") from e
    if value < minimum:
        raise TraceError(f"{path}:{line}: column {col}: {value} is below {minimum}")
    return value


def _float(path: Path, line: int, row: dict[str, str], col: str) -> float:
    raw = row[col].strip()
    try:
        value = float(raw)
    except ValueError as e:
        raise TraceError(f"{path}:{line}: column {col}: {raw!r} is not a number") from e
    if value != value or value < 0:
        raise TraceError(f"{path}:{line}: column {col}: {raw!r} must be a number >= 0")
    return value


def load_nodes(path: Path) -> list[TraceNode]:
    """openb node list: sn, cpu_milli, memory_mib, gpu, model."""
    nodes = []
    for line, row in _rows(path, ("sn", "cpu_milli", "memory_mib", "gpu", "model")):
        gpus = _int(path, line, row, "gpu")
        if gpus > 64:
            raise TraceError(f"{path}:{line}: column gpu: {gpus} GPUs on one node (max 64)")
        nodes.append(TraceNode(row["sn"], _int(path, line, row, "cpu_milli"),
                               _int(path, line, row, "memory_mib"), gpus, row["model"].strip()))
    if not nodes:
        raise TraceError(f"{path}: no nodes")
    return nodes


def load_jobs(path: Path) -> list[TraceJob]:
    """openb pod list: name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec, ..."""
    jobs = []
    cols = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
    for line, row in _rows(path, cols):
        num_gpu = _int(path, line, row, "num_gpu")
        milli = _int(path, line, row, "gpu_milli")
        if num_gpu == 0:
            milli = 0
        elif not 0 < milli <= GPU_MILLI:
            raise TraceError(f"{path}:{line}: column gpu_milli: {milli} must be 1..1000 "
                             "for a GPU job")
        elif num_gpu > 1 and milli != GPU_MILLI:
            raise TraceError(f"{path}:{line}: a job with {num_gpu} GPUs must ask for whole "
                             f"GPUs (gpu_milli 1000, got {milli})")
        spec = tuple(s for s in (row.get("gpu_spec") or "").split("|") if s.strip())
        jobs.append(TraceJob(row["name"], _int(path, line, row, "cpu_milli"),
                             _int(path, line, row, "memory_mib"), num_gpu, milli, spec))
    if not any(j.num_gpu for j in jobs):
        raise TraceError(f"{path}: no GPU jobs")
    return jobs


def _time(path: Path, line: int, row: dict[str, str], col: str) -> float:
    raw = row[col].strip()
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return _float(path, line, row, col)


def load_philly(path: Path) -> list[PhillyJob]:
    """Philly (Pollux tabulation): timestamp (ISO date or seconds), duration, num_gpus, ...;
    sorted by submit time."""
    jobs = []
    for line, row in _rows(path, ("timestamp", "duration", "num_gpus")):
        jobs.append(PhillyJob(_time(path, line, row, "timestamp"),
                              _float(path, line, row, "duration"),
                              _int(path, line, row, "num_gpus", minimum=1)))
    if not jobs:
        raise TraceError(f"{path}: no jobs")
    jobs.sort(key=lambda j: j.submit)
    return jobs


def load_util_series(path: Path) -> dict[str, list[float]]:
    """GenAI util trace: value, timestamp_anon, container_ip -> per-pod series (0..1),
    samples in time order."""
    samples: dict[str, list[tuple[float, float]]] = {}
    for line, row in _rows(path, ("value", "timestamp_anon", "container_ip")):
        value = _float(path, line, row, "value")
        ts = _float(path, line, row, "timestamp_anon")
        samples.setdefault(row["container_ip"], []).append((ts, min(value, 100.0) / 100.0))
    if not samples:
        raise TraceError(f"{path}: no samples")
    return {k: [v for _, v in sorted(s)] for k, s in sorted(samples.items())}
