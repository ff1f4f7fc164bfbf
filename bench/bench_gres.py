"""GRES generator timings: NVML discovery on the simulated GPU, one node's generation, a
1000-node cluster, and the `vgpu gres check` command a health check would run.

    python3 bench/run.py gres      # -> bench/results/gres.json
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from slurm_vgpu.gres.backends import BackendOptions
from slurm_vgpu.gres.config import parse_config
from slurm_vgpu.gres.generate import generate_cluster, generate_local

ROOT = Path(__file__).resolve().parent.parent
FAKEGPU = ROOT / "build" / "fakegpu"


def _median_seconds(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _static_node(gpus: int) -> dict[str, object]:
    return {
        "names": "n1",
        "gpus": [
            {"uuid": f"GPU-{i:08x}-0000-0000-0000-000000000000", "model": "T4", "memory": "16GiB"}
            for i in range(gpus)
        ],
    }


def run() -> dict[str, object]:
    result: dict[str, object] = {}
    config = parse_config({"nodes": [_static_node(8)]})
    result["generate_local_8gpu_static_us"] = round(
        _median_seconds(lambda: generate_local(config, "n1"), 200) * 1e6, 1
    )
    cluster = parse_config(
        {
            "nodes": [
                {
                    "names": f"g{i}n[001-008]",
                    "gpus": [{"model": "T4", "memory": "16GiB", "count": 8}],
                }
                for i in range(125)
            ]
        }
    )
    result["generate_cluster_1000_nodes_ms"] = round(
        _median_seconds(lambda: generate_cluster(cluster), 5) * 1e3, 2
    )
    library = FAKEGPU / "libnvidia-ml.so.1"
    if not library.exists():
        result["nvml"] = "skipped: build/fakegpu not built (make native)"
        return result
    with tempfile.TemporaryDirectory(prefix="vgpu-bench-gres-") as tmp:
        state = Path(tmp) / "gpu.state"
        subprocess.run(
            [
                str(FAKEGPU / "fakegpu-ctl"),
                "create",
                "--state",
                str(state),
                "--count",
                "8",
                "--mem",
                "16G,16G,24G,24G,40G,40G,80G,80G",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        env = dict(os.environ, FAKEGPU_STATE=str(state))
        argv = [sys.executable, "-m", "slurm_vgpu.cli", "gres"]
        common = [
            "--node",
            "n1",
            "--config",
            "/dev/null",
            "--library",
            str(library),
            "--output-dir",
            str(Path(tmp) / "etc"),
        ]
        subprocess.run(
            [*argv, "generate", *common], env=env, check=True, capture_output=True, timeout=60
        )
        result["vgpu_gres_check_8gpu_process_ms"] = round(
            _median_seconds(
                lambda: subprocess.run(
                    [*argv, "check", *common],
                    env=env,
                    check=True,
                    capture_output=True,
                    timeout=60,
                ),
                5,
            )
            * 1e3,
            1,
        )
        # In-process discovery: pynvml over the simulated libnvidia-ml, 8 devices.
        os.environ["FAKEGPU_STATE"] = str(state)
        from slurm_vgpu.gres.nvml import NvmlBackend

        backend = NvmlBackend(BackendOptions(library=str(library)))
        result["nvml_discover_8gpu_ms"] = round(_median_seconds(backend.discover, 20) * 1e3, 3)
    result["notes"] = (
        "medians; generate_local: config already parsed, static inventory; cluster: 125 groups "
        "x 8 nodes x 8 GPUs; check: a whole `vgpu gres check` process incl. Python start-up, "
        "on the simulated GPU (build/fakegpu)"
    )
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
