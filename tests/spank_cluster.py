"""A Slurm test cluster with the vgpu SPANK plugin loaded, for tests/test_spank_*.py and the
SPANK benchmark.

Two nodes (n1, n2), each with two simulated 10-slice GPUs in its own inventory
(``<base>/inv/<node>.conf``) and its own runtime directory (``<base>/rt/<node>``): the
plugstack arguments use ``%n``, which the plugin expands to the slurmd's node name.

A node's GPUs are NVIDIA ones unless ``vendors`` (``spank_cluster(site_vendors=...)``) says
``{"n2": "amd"}``: its inventory then has ``vendor=amd`` and AMD UUIDs ("GPU-" and 16 hex
digits), and ``SpankSite.create_fake_gpus`` makes its simulated machine an AMD one whose ROCm
SMI unique ids are those UUIDs. Jobs reach their node's machine through
``FAKEGPU_STATE=<base>/fake/%n.state`` (``SpankSite.fake_export``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slurm_cluster import SlurmCluster
from spank_helpers import (
    PLUGIN,
    ROOT,
    Limits,
    build_spank,
    decode_limits,
    fake_state_uuid,
    inventory_uuid,
    write_inventory,
)

SLICE_BYTES = 1 << 30  # 1 GiB slices: a 10-slice simulated GPU has 10 GiB
GPUS_PER_NODE = 2
SLICES_PER_GPU = 10
FAKEGPU = ROOT / "build" / "fakegpu"
VENDORS = ("nvidia", "amd")


class SpankSite:
    """Files the plugin reads and writes for one test cluster, and how to look at them."""

    def __init__(self, base: Path, hook: Path, nodes: tuple[str, ...] = ("n1", "n2"),
                 gpus: list[tuple[int, int]] | None = None,
                 vendors: dict[str, str] | None = None) -> None:
        self.base = base
        self.hook = hook
        self.nodes = nodes
        self.gpus = gpus or [(i, SLICES_PER_GPU) for i in range(GPUS_PER_NODE)]
        self.vendors = dict(vendors or {})
        for node, vendor in self.vendors.items():
            if node not in nodes or vendor not in VENDORS:
                raise ValueError(f"vendors: {node}={vendor} (nodes {nodes}, vendors {VENDORS})")
        for node in nodes:
            # NVIDIA nodes keep the inventory without vendor= (what the plugin read before
            # the token existed); a node named in vendors gets the token
            write_inventory(self.inventory(node), node, self.gpus, slice_bytes=SLICE_BYTES,
                            vendor=self.vendors.get(node))

    def vendor(self, node: str) -> str:
        return self.vendors.get(node, "nvidia")

    def uuid(self, node: str, index: int) -> str:
        """The inventory UUID of GPU `index` of `node` (its vendor's form)."""
        return inventory_uuid(node, index, self.vendor(node))

    def fake_state(self, node: str) -> Path:
        return self.base / "fake" / f"{node}.state"

    def fake_export(self) -> str:
        """sbatch's --export for jobs that use the simulated GPUs (%n: the job's node)."""
        return (f"--export=ALL,FAKEGPU_STATE={self.base}/fake/%n.state,"
                f"LD_LIBRARY_PATH={FAKEGPU}")

    def create_fake_gpus(self, mem: str = "10G", ctx_overhead: str = "0") -> None:
        """One simulated machine per node (build/fakegpu/fakegpu-ctl), of the node's vendor,
        with the inventory's GPUs and UUIDs; shared by every job user (mode 0666)."""
        for node in self.nodes:
            state = self.fake_state(node)
            state.parent.mkdir(mode=0o755, exist_ok=True)
            vendor = self.vendor(node)
            uuids = ",".join(fake_state_uuid(node, i, vendor) for i, _ in self.gpus)
            subprocess.run([str(FAKEGPU / "fakegpu-ctl"), "create", "--state", str(state),
                            "--vendor", vendor, "--count", str(len(self.gpus)),
                            "--mem", mem, "--uuid", uuids, "--ctx-overhead", ctx_overhead],
                           check=True, capture_output=True, timeout=30)
            state.chmod(0o666)

    def inventory(self, node: str) -> Path:
        return self.base / "inv" / f"{node}.conf"

    def runtime_dir(self, node: str) -> Path:
        return self.base / "rt" / node

    def job_dir(self, node: str, jobid: int) -> Path:
        return self.runtime_dir(node) / "jobs" / str(jobid)

    def limits(self, node: str, jobid: int) -> Limits:
        return decode_limits((self.job_dir(node, jobid) / "limits").read_bytes())

    def placements(self, node: str) -> list[tuple[int, int, int]]:
        """(job, gpu, slices) rows of the node's placement table."""
        path = self.runtime_dir(node) / "placements"
        rows = []
        if path.exists():
            for line in path.read_text().splitlines():
                if line.startswith("job="):
                    job, gpu, slices = (int(tok.split("=")[1]) for tok in line.split())
                    rows.append((job, gpu, slices))
        return rows

    def plugstack(self, **extra: str) -> str:
        args = {
            "runtime_dir": f"{self.base}/rt/%n",
            "inventory": f"{self.base}/inv/%n.conf",
            "hook": str(self.hook),
            "on_error": "deny",
        }
        args.update(extra)
        return f"required {PLUGIN} " + " ".join(f"{k}={v}" for k, v in args.items()) + "\n"


def make_base_dir() -> Path:
    """A root-owned 0755 directory: job users must traverse it to reach their files."""
    base = Path(tempfile.mkdtemp(prefix="vgpu-spank-"))
    base.chmod(0o755)
    return base


def standin_hook(base: Path) -> Path:
    """A do-nothing preload library. Tests of the plugin's plumbing (placement, files,
    environment) use it so that they do not depend on the hook's behaviour; the tests that
    check enforcement preload the real build/native/libvgpu.so."""
    src = base / "standin_hook.c"
    out = base / "standin_hook.so"
    src.write_text("void vgpu_standin_hook(void);\nvoid vgpu_standin_hook(void) {}\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True,
                   capture_output=True, timeout=60)
    out.chmod(0o755)
    return out


@contextmanager
def spank_cluster(hook: Path | None = None, plugstack_extra: dict[str, str] | None = None,
                  **options: Any) -> Iterator[tuple[SlurmCluster, SpankSite]]:
    """Start a cluster with the plugin; stop it (by PID) and remove its files at exit."""
    build_spank()
    base = make_base_dir()
    gpus = options.pop("site_gpus", None)
    vendors = options.pop("site_vendors", None)
    nodes = tuple(options.get("nodes", ("n1", "n2")))
    site = SpankSite(base, hook or standin_hook(base), nodes=nodes, gpus=gpus, vendors=vendors)
    options.setdefault("vgpu_per_node", sum(s for _, s in site.gpus))
    cluster = SlurmCluster(plugstack_conf=site.plugstack(**(plugstack_extra or {})),
                           keep_workdir=os.environ.get("VGPU_KEEP_CLUSTER") == "1", **options)
    try:
        cluster.start()
        yield cluster, site
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll until predicate() holds (a bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
