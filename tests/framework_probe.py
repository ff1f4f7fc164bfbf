"""Run inside a framework's Python (PyTorch, CuPy, JAX) under the hook; prints one JSON line.

    python framework_probe.py torch|cupy|jax fill CHUNK_MIB HOLD_S
        allocate CHUNK_MIB pieces until the framework's own out-of-memory error, report what
        mem_get_info said before, how much was had, the error's type; then hold it HOLD_S s
    python framework_probe.py torch allocfree MIB HOLD_S
        allocate MIB in one tensor, free it (the caching allocator or pool keeps it), report
        mem_get_info, hold HOLD_S s
    python framework_probe.py torch|cupy spin SECONDS ELEMENTS
        keep the GPU busy with elementwise kernels on ELEMENTS floats for SECONDS, a batch
        queued at a time (as training loops do), and report the iterations done

Used by tests/test_frameworks.py (simulated GPU) and bench/gpu/run.py (a real GPU): the
same code on both, so what the tests check is what the real-GPU check measures.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

MIB = 1 << 20


def _torch_fill(chunk: int, hold: float) -> dict[str, Any]:
    import torch

    free, total = torch.cuda.mem_get_info()
    held: list[Any] = []
    error = ""
    try:
        while True:
            held.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
    except torch.OutOfMemoryError as e:
        error = type(e).__name__
    got = len(held) * chunk
    after = torch.cuda.mem_get_info()
    print(json.dumps({"free": free, "total": total, "got": got, "error": error,
                      "reserved": torch.cuda.memory_reserved(), "free_full": after[0]}),
          flush=True)
    time.sleep(hold)
    return {}


def _cupy_fill(chunk: int, hold: float) -> dict[str, Any]:
    import cupy

    free, total = cupy.cuda.runtime.memGetInfo()
    held: list[Any] = []
    error = ""
    try:
        while True:
            held.append(cupy.empty(chunk, dtype=cupy.uint8))
    except cupy.cuda.memory.OutOfMemoryError as e:
        error = type(e).__name__
    got = len(held) * chunk
    print(json.dumps({"free": free, "total": total, "got": got, "error": error,
                      "reserved": cupy.get_default_memory_pool().total_bytes(),
                      "free_full": cupy.cuda.runtime.memGetInfo()[0]}), flush=True)
    time.sleep(hold)
    return {}


def _jax_fill(chunk: int, hold: float) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    dev = jax.devices()[0]
    stats = dev.memory_stats() or {}
    held: list[Any] = []
    error = ""
    try:
        while True:
            held.append(jnp.empty((chunk,), dtype=jnp.uint8).block_until_ready())
    except Exception as e:  # XlaRuntimeError RESOURCE_EXHAUSTED
        error = type(e).__name__ if "RESOURCE_EXHAUSTED" in str(e) else f"other: {e}"
    print(json.dumps({"free": None, "total": stats.get("bytes_limit"),
                      "got": len(held) * chunk, "error": error}), flush=True)
    time.sleep(hold)
    return {}


def _spin(fw: str, seconds: float, elements: int) -> None:
    if fw == "torch":
        import torch

        x = torch.zeros(elements, device="cuda")
        sync = torch.cuda.synchronize
        step = x.add_
    else:
        import cupy

        x = cupy.zeros(elements, dtype=cupy.float32)
        sync = cupy.cuda.Device().synchronize

        def step(v: float) -> Any:
            return x.__iadd__(v)
    sync()
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        for _ in range(8):
            step(1.0)
        n += 8
        sync()
    print(json.dumps({"iterations": n, "seconds": time.monotonic() - t0,
                      "t0_ns": int(t0 * 1e9)}), flush=True)


def _torch_allocfree(mib: int, hold: float) -> None:
    import torch

    x = torch.empty(mib * MIB, dtype=torch.uint8, device="cuda")
    del x
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    print(json.dumps({"free": free, "total": total,
                      "reserved": torch.cuda.memory_reserved()}), flush=True)
    time.sleep(hold)


def main(argv: list[str]) -> int:
    fw, mode = argv[1], argv[2]
    if mode == "allocfree":
        _torch_allocfree(int(argv[3]), float(argv[4]))
        return 0
    if mode == "fill":
        chunk, hold = int(argv[3]) * MIB, float(argv[4])
        {"torch": _torch_fill, "cupy": _cupy_fill, "jax": _jax_fill}[fw](chunk, hold)
        return 0
    if mode == "spin":
        _spin(fw, float(argv[3]), int(argv[4]))
        return 0
    print(f"framework_probe: unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
