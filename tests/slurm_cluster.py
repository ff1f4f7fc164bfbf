"""Pytest fixtures for the real loopback Slurm test cluster (contrib/devcluster/devcluster.py).

- ``slurm_cluster`` (session scope): one default cluster (nodes n1, n2; 20 vgpu slices each;
  count-only gres.conf) shared by every test that does not change the configuration. Do not
  reconfigure or restart it; make your own with the factory.
- ``slurm_cluster_factory`` (function scope): ``make(**options) -> SlurmCluster`` with any
  SlurmCluster option (gres_conf, node_gres, extra_conf, plugstack_conf, slurmd_env, prolog,
  epilog, nodes, ...); ``make(start=False, ...)`` returns it unstarted (for ``with cluster:``).
  Every cluster it made is stopped at teardown, by PID, also when the test failed.

Both skip (or fail in CI, VGPU_REQUIRE_SLURM=1) without root or Debian's Slurm packages.
A safety net stops every live cluster at interpreter exit and on SIGTERM/SIGHUP.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from conftest import REQUIRE_SLURM, skip_or_fail

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contrib" / "devcluster"))
from devcluster import (
    DevClusterCommandError,
    DevClusterError,
    SlurmCluster,
    ensure_user,
    missing_binaries,
    parse_tres,
    pid_alive,
)

__all__ = [
    "DevClusterCommandError",
    "DevClusterError",
    "SlurmCluster",
    "ensure_user",
    "parse_tres",
    "pid_alive",
    "slurm_cluster",
    "slurm_cluster_factory",
]

ClusterFactory = Callable[..., SlurmCluster]

# Work directories are fresh /tmp/vgpu-cluster-* (world-searchable, as munged and unprivileged
# job users need), removed at teardown unless VGPU_KEEP_CLUSTER=1 (then their logs stay).
KEEP_WORKDIRS = os.environ.get("VGPU_KEEP_CLUSTER") == "1"

# Clusters started and not yet stopped by this process: the safety net's list.
_LIVE: dict[int, SlurmCluster] = {}


def _stop_quietly(cluster: SlurmCluster) -> None:
    _LIVE.pop(id(cluster), None)
    with contextlib.suppress(Exception):
        cluster.stop()


def _stop_all_live() -> None:
    for cluster in list(_LIVE.values()):
        _stop_quietly(cluster)


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all_live()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


atexit.register(_stop_all_live)
for _signum in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_signum) in (signal.SIG_DFL, None):
        signal.signal(_signum, _on_fatal_signal)


def require_slurm_cluster() -> None:
    """Skip (fail in CI) unless this process can run the real test cluster."""
    if os.geteuid() != 0:
        skip_or_fail("the Slurm test cluster needs root", REQUIRE_SLURM)
    if missing := missing_binaries():
        skip_or_fail(
            f"Slurm/munge/MariaDB not installed ({', '.join(missing)}); "
            "run: python3 contrib/devcluster/devcluster.py install",
            REQUIRE_SLURM,
        )


def _start_tracked(cluster: SlurmCluster) -> SlurmCluster:
    _LIVE[id(cluster)] = cluster
    try:
        cluster.start()
    except BaseException:
        _stop_quietly(cluster)
        raise
    return cluster


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """The shared default cluster (n1, n2 with vgpu:20 each). Read-only use, please."""
    require_slurm_cluster()
    cluster = SlurmCluster(keep_workdir=KEEP_WORKDIRS)
    _start_tracked(cluster)
    try:
        yield cluster
    finally:
        _stop_quietly(cluster)


@pytest.fixture
def slurm_cluster_factory() -> Iterator[ClusterFactory]:
    """``make(start=True, **SlurmCluster options) -> SlurmCluster``; all stopped at teardown."""
    require_slurm_cluster()
    made: list[SlurmCluster] = []

    def make(start: bool = True, **options: Any) -> SlurmCluster:
        options.setdefault("keep_workdir", KEEP_WORKDIRS)
        cluster = SlurmCluster(**options)
        made.append(cluster)
        _LIVE[id(cluster)] = cluster  # also covers clusters the test starts itself
        return _start_tracked(cluster) if start else cluster

    try:
        yield make
    finally:
        for cluster in made:
            _stop_quietly(cluster)
