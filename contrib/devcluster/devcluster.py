#!/usr/bin/env python3
"""A real, isolated Slurm 22.05 cluster on loopback for tests, the demo and CI.

One cluster = one work directory. Everything the cluster needs lives below it: its own munged
(own key and socket), its own MariaDB (own datadir, socket and TCP port), slurmdbd, slurmctld and
one slurmd per node (default two, ``n1`` and ``n2``), all on this host, all on free loopback
ports chosen at start. Several clusters can run side by side; none touches /etc/slurm or any
process it did not start. Daemons are stopped by the PIDs recorded at start (pid + process start
time, so a recycled PID is never signalled).

Python use (stdlib only, Python >= 3.11)::

    from devcluster import SlurmCluster
    with SlurmCluster(workdir="/tmp/mycluster") as cluster:
        jobid = cluster.sbatch("--gres=vgpu:3", "--wrap", "true")
        cluster.wait_job(jobid)
        print(cluster.sacct_alloc_tres(jobid))

Command line::

    python3 contrib/devcluster/devcluster.py up --workdir DIR      # start, print exports
    eval "$(python3 contrib/devcluster/devcluster.py env --workdir DIR)"
    sinfo; sbatch --gres=vgpu:3 --wrap 'sleep 1'
    python3 contrib/devcluster/devcluster.py status --workdir DIR
    python3 contrib/devcluster/devcluster.py down --workdir DIR

Layout of a work directory::

    etc/      slurm.conf slurmdbd.conf gres.conf plugstack.conf cluster.json (options, ports)
    run/      <daemon>.pid (ours: "pid starttime"), munge.sock, mysql.sock, Slurm's own pid files
    log/      <daemon>.log (the daemon's log), <daemon>.out (its stdout/stderr)
    state/    slurmctld StateSaveLocation        spool/<node>/  SlurmdSpoolDir per node
    db/       MariaDB datadir (removed by stop() unless keep_db=True)
    munge/    munge.key, seed                    jobs/  world-writable scratch for job output
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "DAEMON_ORDER",
    "DevClusterCommandError",
    "DevClusterError",
    "SlurmCluster",
    "ensure_installed",
    "ensure_user",
    "missing_binaries",
    "parse_tres",
    "pid_alive",
]

APT_PACKAGES = (
    "slurmctld", "slurmd", "slurm-client", "slurmdbd", "munge", "mariadb-server",
    "mariadb-client", "libslurm-dev",
)
# Binaries a cluster needs; absent ones mean the Debian packages are not installed.
REQUIRED_BINARIES = (
    "/usr/sbin/munged",
    "/usr/sbin/mariadbd",
    "/usr/bin/mariadb-install-db",
    "/usr/sbin/slurmdbd",
    "/usr/sbin/slurmctld",
    "/usr/sbin/slurmd",
    "/usr/bin/sbatch",
    "/usr/bin/sacct",
)
# Start order; stop runs in reverse (slurmd first, so no node outlives its controller's log).
DAEMON_ORDER = ("munged", "mariadb", "slurmdbd", "slurmctld")
# Environment variable placed in every daemon's environment (and so in slurmstepd's) with this
# cluster's random token: stop() finds leftover slurmstepd of THIS cluster by it.
MARKER_VAR = "VGPU_DEVCLUSTER_TOKEN"
# Unix socket paths are limited to 108 bytes; keep a margin for the file name.
_MAX_SOCKET_DIR = 80
# How often start() picks new ports after a daemon found its port taken.
_START_ATTEMPTS = 3
_PORT_RANGE = (20000, 32768)
# Options that update_config may change and cluster.json keeps as they are (JSON values).
_PLAIN_OPTIONS = (
    "vgpu_per_node", "gres_types", "cpus_per_node", "real_memory_mb", "extra_conf",
    "plugstack_conf", "slurmd_env", "prolog", "epilog", "debug", "cred_expire",
    "job_submit_lua",
)
_TERMINAL_JOB_STATES = frozenset((
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "REVOKED", "TIMEOUT",
))


class DevClusterError(RuntimeError):
    """The test cluster could not do what was asked (the message says what and shows logs)."""


class DevClusterCommandError(subprocess.CalledProcessError):
    """A client command failed; str() includes its stdout and stderr."""

    def __str__(self) -> str:
        return (
            f"command {shlex.join(str(a) for a in self.cmd)} exited with {self.returncode}\n"
            f"--- stdout\n{self.stdout or ''}--- stderr\n{self.stderr or ''}"
        )


# --------------------------------------------------------------------------- process helpers


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 = state), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None  # field 22 of stat: starttime in clock ticks


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """True if PID runs (zombies count as gone) and, when given, started at ``start_time``."""
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time


def _ppid(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if fields else None


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _ancestors(pid: int) -> set[int]:
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        parent = _ppid(pid)
        if parent is None:
            break
        pid = parent
    return seen


def _pids_with_env(var: str, value: str) -> list[int]:
    """PIDs whose environment holds ``var=value`` exactly (needs root for others' processes)."""
    needle = f"{var}={value}".encode()
    found = []
    for pid in _all_pids():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(pid)
    return found


def _pids_using(directory: Path) -> list[int]:
    """PIDs whose working directory or an open file is under ``directory``."""
    prefix = str(directory.resolve()) + "/"
    found = []
    for pid in _all_pids():
        base = Path(f"/proc/{pid}")
        try:
            links = [os.readlink(base / "cwd")]
            links += [os.readlink(fd) for fd in (base / "fd").iterdir()]
        except OSError:
            continue
        if any((link + "/").startswith(prefix) for link in links):
            found.append(pid)
    return found


def _descendants(roots: Iterable[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        parent = _ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    out: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _wait_gone(pids: Mapping[int, int | None], timeout: float) -> set[int]:
    """Wait until none of ``pids`` (pid -> start time) runs; return those still running."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {p for p, st in pids.items() if pid_alive(p, st)}
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _free_ports(count: int) -> list[int]:
    """Distinct TCP ports that the daemons (wildcard bind, SO_REUSEADDR) can bind now.

    Drawn at random from 20000-32767: below Linux's ephemeral range (so outgoing connections
    rarely hold them) and away from Slurm's default 6817-6819 (a system Slurm keeps them).
    """
    rng = random.SystemRandom()
    ports: list[int] = []
    for _ in range(2000):
        port = rng.randrange(*_PORT_RANGE)
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise DevClusterError(f"found only {len(ports)} of {count} free TCP ports in {_PORT_RANGE}")


def _pid_listens(pid: int, port: int) -> bool:
    """True if process ``pid`` itself has a TCP socket listening on ``port``.

    Stricter than connecting to the port: a stranger holding the port does not count.
    """
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    if not inodes:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local_address is HEXIP:HEXPORT, st 0A = LISTEN, field 9 = inode
                if (fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port
                        and fields[9] in inodes):
                    return True
    return False


def _unix_listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def parse_tres(tres: str) -> dict[str, str]:
    """``"billing=1,cpu=1,gres/vgpu=3"`` -> ``{"billing": "1", "cpu": "1", "gres/vgpu": "3"}``."""
    out: dict[str, str] = {}
    for item in tres.split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------- installation


def missing_binaries() -> list[str]:
    """Required Slurm/munge/MariaDB programs that are not installed."""
    return [b for b in REQUIRED_BINARIES if not os.access(b, os.X_OK)]


def ensure_installed() -> None:
    """Install Debian's Slurm 22.05, munge and MariaDB packages if any binary is missing (root)."""
    missing = missing_binaries()
    if not missing:
        return
    if os.geteuid() != 0:
        raise DevClusterError(
            f"missing {', '.join(missing)}; run as root to install them with apt-get, or "
            f"install: apt-get install -y --no-install-recommends {' '.join(APT_PACKAGES)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
    ):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevClusterError(f"{shlex.join(argv)} failed:\n{result.stdout}{result.stderr}")


def ensure_user(name: str = "vgpu-test") -> tuple[int, int]:
    """Create an unprivileged system user ``name`` (no home) if missing; return (uid, gid).

    Users are machine-wide, so this is idempotent and safe when several clusters race for it.
    Submit as that user with ``cluster.run(..., user=name)`` / ``cluster.sbatch(..., user=name)``.
    """
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    if os.geteuid() != 0:
        raise DevClusterError(f"user {name!r} does not exist and only root can create it")
    stderr = ""
    for _ in range(20):
        result = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/bin/sh",
             name],
            capture_output=True, text=True, check=False, timeout=30,
        )
        stderr = result.stderr.strip()
        # 9: the name is taken (a concurrent caller won the race); 1/10: /etc/passwd or
        # /etc/group locked by a concurrent useradd, try again.
        if result.returncode in (0, 9):
            break
        if result.returncode not in (1, 10):
            raise DevClusterError(f"useradd {name} failed ({result.returncode}): {stderr}")
        time.sleep(0.1)
    try:
        entry = pwd.getpwnam(name)
    except KeyError as e:
        raise DevClusterError(f"useradd {name} did not create the user: {stderr}") from e
    return entry.pw_uid, entry.pw_gid


# --------------------------------------------------------------------------- the cluster

GresConf = str | Mapping[str, str] | Callable[[str], str]


class SlurmCluster:
    """A loopback Slurm cluster living in one work directory.

    Options (all keyword-only; every one is saved in ``etc/cluster.json``):

    - ``workdir``: directory for everything; created if missing. None: a fresh
      ``mkdtemp(prefix="vgpu-cluster-")``, removed by stop() unless ``keep_workdir``.
    - ``nodes``: node names (default ``["n1", "n2"]``). Each runs its own slurmd (``-N name``).
    - ``vgpu_per_node``: vgpu slices per node in the default gres.conf / Gres= (default 20).
    - ``gres_conf``: the gres.conf content. A string is used verbatim for the whole file; a
      mapping node -> text or a callable(node) -> text gives each node's lines, and a line
      without ``NodeName=`` gets ``NodeName=<node>`` prefixed. Default per node:
      ``NodeName=<node> Name=vgpu Count=<vgpu_per_node>``.
    - ``node_gres``: the ``Gres=`` value of the NodeName lines: a string for all nodes or a
      mapping node -> string ("" or None omits Gres=). Default ``vgpu:<vgpu_per_node>``.
    - ``gres_types``: ``GresTypes=`` (default ``"vgpu"``).
    - ``cpus_per_node`` (default 8; slurmd advertises it thanks to config_overrides),
      ``real_memory_mb`` (default 4000).
    - ``extra_conf``: text appended to slurm.conf (later lines override earlier keys).
    - ``job_submit_lua``: text of a job_submit.lua beside slurm.conf (JobSubmitPlugins=lua).
    - ``plugstack_conf``: content of the cluster's own plugstack.conf (``PlugStackConfig=``
      points to it; default: empty, so /etc/slurm's SPANK plugins are never loaded).
    - ``slurmd_env``: extra environment for the slurmd processes, e.g.
      ``{"FAKEGPU_STATE": "/tmp/x/%n.state"}``. Whether slurmstepd (and so a SPANK plugin in
      it) sees it depends on the release: do not rely on it there. Each slurmd runs in a UTS
      namespace whose host name is its node name (``NodeHostname=<node>``), as on a real
      cluster.
    - ``prolog`` / ``epilog``: paths for ``Prolog=`` / ``Epilog=`` (run as root by slurmd).
    - ``debug``: SlurmctldDebug/SlurmdDebug/slurmdbd DebugLevel (default ``"info"``).
    - ``cred_expire``: ``AuthInfo=cred_expire=`` seconds (Slurm's default, 120, when None). A
      requeued job may start again only that long after its requeue, so tests of requeues set
      it low.
    - ``accounting``: run MariaDB + slurmdbd (default True; sacct needs it).
    - ``keep_db``: keep the MariaDB datadir (~80 MB) at stop (default False).
    - ``keep_workdir``: with ``workdir=None``, keep the temporary directory at stop.
    - ``start_timeout``: seconds each readiness wait may take (default 60).

    Attributes: ``workdir``, ``node_names``, ``conf_path`` (slurm.conf), ``ports``
    (daemon -> TCP port), ``cluster_name``, ``env`` (client environment), ``jobs_dir``.
    Daemon names for ``restart``/``log_tail``/``pids``: ``munged``, ``mariadb``,
    ``slurmdbd``, ``slurmctld``, ``slurmd-<node>`` (and ``slurmd`` = every node for restart).
    """

    def __init__(
        self,
        *,
        workdir: str | os.PathLike[str] | None = None,
        nodes: Sequence[str] = ("n1", "n2"),
        vgpu_per_node: int = 20,
        gres_conf: GresConf | None = None,
        node_gres: str | Mapping[str, str | None] | None = None,
        gres_types: str = "vgpu",
        cpus_per_node: int = 8,
        real_memory_mb: int = 4000,
        extra_conf: str = "",
        plugstack_conf: str = "",
        slurmd_env: Mapping[str, str] | None = None,
        prolog: str | None = None,
        epilog: str | None = None,
        debug: str = "info",
        cred_expire: int | None = None,
        job_submit_lua: str = "",
        accounting: bool = True,
        keep_db: bool = False,
        keep_workdir: bool = False,
        start_timeout: float = 60.0,
    ) -> None:
        if not nodes:
            raise DevClusterError("nodes: give at least one node name")
        for node in nodes:
            if not re.fullmatch(r"[a-z][a-z0-9]*", node):
                raise DevClusterError(
                    f"node name {node!r}: use lowercase letters and digits, starting with a letter"
                )
        if len(set(nodes)) != len(nodes):
            raise DevClusterError(f"nodes: names must be distinct, got {list(nodes)}")
        self._own_workdir = workdir is None
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="vgpu-cluster-")
        self.workdir = Path(workdir).absolute()
        self.node_names: list[str] = list(nodes)
        self.vgpu_per_node = vgpu_per_node
        self.gres_conf = gres_conf
        self.node_gres = node_gres
        self.gres_types = gres_types
        self.cpus_per_node = cpus_per_node
        self.real_memory_mb = real_memory_mb
        self.extra_conf = extra_conf
        self.job_submit_lua = job_submit_lua
        self.plugstack_conf = plugstack_conf
        self.slurmd_env: dict[str, str] = dict(slurmd_env or {})
        self.prolog = prolog
        self.epilog = epilog
        self.debug = debug
        if cred_expire is not None and not 5 <= cred_expire <= 86400:
            raise DevClusterError(f"cred_expire: {cred_expire} is out of range 5..86400")
        self.cred_expire = cred_expire
        self.accounting = accounting
        self.keep_db = keep_db
        self.keep_workdir = keep_workdir
        self.start_timeout = start_timeout
        self.cluster_name = "vgpu" + secrets.token_hex(4)
        self.token = secrets.token_hex(16)
        self.db_password = secrets.token_hex(12)
        self.ports: dict[str, int] = {}
        self.socket_dir = self.workdir / "run"  # start() may move it (see _choose_socket_dir)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started_pids: dict[str, int] = {}  # every daemon PID this object ever started
        self.cold_start_seconds: float | None = None

    # ----------------------------------------------------------------- paths

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "etc"

    @property
    def conf_path(self) -> Path:
        return self.conf_dir / "slurm.conf"

    @property
    def jobs_dir(self) -> Path:
        """World-writable scratch directory for job scripts and output."""
        return self.workdir / "jobs"

    @property
    def munge_socket(self) -> Path:
        return self.socket_dir / "munge.sock"

    @property
    def mysql_socket(self) -> Path:
        return self.socket_dir / "mysql.sock"

    def _choose_socket_dir(self) -> Path:
        run = self.workdir / "run"
        if len(str(run)) <= _MAX_SOCKET_DIR and _searchable_by_all(self.workdir.parent):
            return run
        # Unix socket paths are short (108 bytes) and munged wants every directory above its
        # socket searchable by all (pytest's tmp dirs are 0700): use a short one in /tmp.
        return Path(tempfile.mkdtemp(prefix="vgpu-sock-"))

    def daemon_names(self) -> list[str]:
        names = ["munged"]
        if self.accounting:
            names += ["mariadb", "slurmdbd"]
        names.append("slurmctld")
        names += [f"slurmd-{n}" for n in self.node_names]
        return names

    def log_path(self, daemon: str) -> Path:
        """The daemon's own log file (``log/<daemon>.log``)."""
        self._check_daemon(daemon)
        return self.workdir / "log" / f"{daemon}.log"

    def _out_path(self, daemon: str) -> Path:
        return self.workdir / "log" / f"{daemon}.out"

    def _pid_path(self, daemon: str) -> Path:
        return self.workdir / "run" / f"{daemon}.pid"

    def _check_daemon(self, daemon: str) -> None:
        if daemon not in self.daemon_names():
            raise DevClusterError(
                f"unknown daemon {daemon!r}; this cluster has {', '.join(self.daemon_names())}"
            )

    # ----------------------------------------------------------------- environment

    @property
    def env(self) -> dict[str, str]:
        """Environment for client commands (sbatch, srun, sacct, ...) against this cluster.

        The caller's environment minus inherited SLURM_*/SBATCH_*/SALLOC_*/SRUN_*/SQUEUE_*
        variables (a test running inside a job must not leak its job into this cluster), plus
        ``SLURM_CONF``.
        """
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SACCT_"))
            and k != MARKER_VAR
        }
        env.update(self.env_exports())
        return env

    def env_exports(self) -> dict[str, str]:
        """Only the variables that select this cluster (what ``devcluster.py env`` prints)."""
        return {"SLURM_CONF": str(self.conf_path)}

    def _daemon_env(self, daemon: str) -> dict[str, str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "SLURM_CONF": str(self.conf_path),
            MARKER_VAR: self.token,
        }
        if daemon.startswith("slurmd-"):
            env.update(self.slurmd_env)
        return env

    # ----------------------------------------------------------------- configuration

    def _node_gres_value(self, node: str) -> str | None:
        if self.node_gres is None:
            return f"vgpu:{self.vgpu_per_node}"
        if isinstance(self.node_gres, str):
            return self.node_gres or None
        return self.node_gres.get(node) or None

    def render_gres_conf(self) -> str:
        """The gres.conf text for the current options."""
        if isinstance(self.gres_conf, str):
            return self.gres_conf if self.gres_conf.endswith("\n") else self.gres_conf + "\n"
        lines = ["# gres.conf of a devcluster test cluster (generated)"]
        for node in self.node_names:
            if self.gres_conf is None:
                text = f"Name=vgpu Count={self.vgpu_per_node}"
            elif callable(self.gres_conf):
                text = self.gres_conf(node)
            else:
                text = self.gres_conf.get(node, "")
            for raw in text.splitlines():
                line = raw.strip()
                if not line or line.startswith("#") or line.lower().startswith("nodename="):
                    lines.append(line)
                else:
                    lines.append(f"NodeName={node} {line}")
        return "\n".join(lines) + "\n"

    def render_slurm_conf(self) -> str:
        """The slurm.conf text for the current options and ports."""
        w = self.workdir
        host = socket.gethostname().split(".")[0]
        lines = [
            "# slurm.conf of a devcluster test cluster (generated; see contrib/devcluster)",
            f"ClusterName={self.cluster_name}",
            f"SlurmctldHost={host}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}"
            + (f",cred_expire={self.cred_expire}" if self.cred_expire else ""),
            f"SlurmctldPort={self.ports['slurmctld']}",
            f"StateSaveLocation={w}/state",
            f"SlurmdSpoolDir={w}/spool/%n",
            f"SlurmctldPidFile={w}/run/slurmctld.slurm-pid",
            f"SlurmdPidFile={w}/run/slurmd-%n.slurm-pid",
            f"SlurmctldLogFile={w}/log/slurmctld.log",
            f"SlurmdLogFile={w}/log/slurmd-%n.log",
            f"SlurmctldDebug={self.debug}",
            f"SlurmdDebug={self.debug}",
            f"PlugStackConfig={self.conf_dir}/plugstack.conf",
            f"TmpFS={w}/tmp",
            # No cgroup privileges needed; several slurmd on one host.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=30",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill",
            # Schedule batch jobs at once (the default batches them for up to 3 s): tests wait
            # on every job.
            "SchedulerParameters=batch_sched_delay=0",
            "MpiDefault=none",
            "ReturnToService=2",
            # Lets a 2-core host advertise cpus_per_node CPUs (many concurrent test jobs).
            "SlurmdParameters=config_overrides",
            "MailProg=/bin/true",
            "SlurmdTimeout=60",
            "InactiveLimit=0",
            "MinJobAge=300",
            "KillWait=5",
            "Waittime=0",
            f"GresTypes={self.gres_types}",
        ]
        if self.accounting:
            lines += [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={self.ports['slurmdbd']}",
                # The dbd connection authenticates with AccountingStoragePass as munge socket.
                f"AccountingStoragePass={self.munge_socket}",
                "AccountingStorageTRES="
                + ",".join(f"gres/{t.strip()}" for t in self.gres_types.split(",") if t.strip()),
                "AccountingStoreFlags=job_comment",
            ]
        if self.job_submit_lua:
            lines.append("JobSubmitPlugins=lua")
        if self.prolog:
            lines.append(f"Prolog={self.prolog}")
        if self.epilog:
            lines.append(f"Epilog={self.epilog}")
        for node in self.node_names:
            gres = self._node_gres_value(node)
            lines.append(
                f"NodeName={node} NodeHostname={node} NodeAddr=127.0.0.1 "
                f"Port={self.ports['slurmd-' + node]} CPUs={self.cpus_per_node} Boards=1 "
                f"SocketsPerBoard=1 CoresPerSocket={self.cpus_per_node} ThreadsPerCore=1 "
                f"RealMemory={self.real_memory_mb}"
                + (f" Gres={gres}" if gres else "")
                + " State=UNKNOWN"
            )
        lines.append("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        if self.extra_conf:
            lines += ["# --- extra_conf", self.extra_conf.rstrip("\n")]
        return "\n".join(lines) + "\n"

    def render_slurmdbd_conf(self) -> str:
        w = self.workdir
        return "\n".join([
            "# slurmdbd.conf of a devcluster test cluster (generated)",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "DbdHost=localhost",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.ports['slurmdbd']}",
            "SlurmUser=root",
            f"LogFile={w}/log/slurmdbd.log",
            f"PidFile={w}/run/slurmdbd.slurm-pid",
            f"DebugLevel={self.debug}",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mariadb']}",
            "StorageLoc=slurm_acct_db",
            "StorageUser=slurm",
            f"StoragePass={self.db_password}",
        ]) + "\n"

    def write_config(self) -> None:
        """(Re)write slurm.conf, gres.conf, plugstack.conf and slurmdbd.conf from the options.

        Running daemons do not notice: follow with reconfigure() or restart(...).
        """
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        _write(self.conf_dir / "slurm.conf", self.render_slurm_conf(), 0o644)
        _write(self.conf_dir / "gres.conf", self.render_gres_conf(), 0o644)
        if self.job_submit_lua:
            _write(self.conf_dir / "job_submit.lua", self.job_submit_lua, 0o644)
        plug = self.plugstack_conf
        _write(self.conf_dir / "plugstack.conf", plug + ("\n" if plug and plug[-1] != "\n" else ""),
               0o644)
        if self.accounting:
            _write(self.conf_dir / "slurmdbd.conf", self.render_slurmdbd_conf(), 0o600)

    def update_config(self, **changes: Any) -> None:
        """Change options (same names as the constructor's) and rewrite the config files.

        Example: ``cluster.update_config(gres_conf={"n1": "Name=vgpu Count=10"},
        node_gres={"n1": "vgpu:10", "n2": "vgpu:20"}); cluster.reconfigure()``. Node definition
        changes (CPUs, memory) need ``cluster.restart("slurm")`` instead.
        """
        allowed = {"gres_conf", "node_gres", *_PLAIN_OPTIONS}
        for key, value in changes.items():
            if key not in allowed:
                raise DevClusterError(
                    f"update_config: {key!r} cannot change on a running cluster; "
                    f"changeable: {', '.join(sorted(allowed))}"
                )
            setattr(self, key, dict(value) if key == "slurmd_env" else value)
        self.write_config()
        self._save_state()

    # ----------------------------------------------------------------- state file

    def _save_state(self) -> None:
        state = {
            "cluster_name": self.cluster_name,
            "token": self.token,
            "nodes": self.node_names,
            "accounting": self.accounting,
            "ports": self.ports,
            "socket_dir": str(self.socket_dir),
            "own_workdir": self._own_workdir,
            "keep_db": self.keep_db,
            "keep_workdir": self.keep_workdir,
            "started_pids": self.started_pids,
            "db_password": self.db_password,
            "options": {
                # A per-node mapping or callable is stored as the text it rendered.
                "gres_conf": (self.gres_conf if self.gres_conf is None
                              or isinstance(self.gres_conf, str) else self.render_gres_conf()),
                "node_gres": (self.node_gres if self.node_gres is None
                              or isinstance(self.node_gres, str) else dict(self.node_gres)),
                **{key: getattr(self, key) for key in _PLAIN_OPTIONS},
            },
        }
        _write(self.conf_dir / "cluster.json", json.dumps(state, indent=2) + "\n", 0o600)

    @classmethod
    def attach(cls, workdir: str | os.PathLike[str]) -> SlurmCluster:
        """A handle on a cluster started earlier (e.g. by ``devcluster.py up``) in ``workdir``.

        Every method works on it, with the options the cluster was started with (a per-node
        ``gres_conf`` mapping or callable comes back as the text it rendered).
        """
        workdir = Path(workdir).absolute()
        state_file = workdir / "etc" / "cluster.json"
        try:
            state = json.loads(state_file.read_text())
        except FileNotFoundError as e:
            raise DevClusterError(
                f"{state_file} not found: no cluster was started in {workdir}"
            ) from e
        except json.JSONDecodeError as e:
            raise DevClusterError(f"{state_file} is not valid JSON ({e}); stop it by hand") from e
        try:
            cluster = cls(workdir=workdir, nodes=state["nodes"], accounting=state["accounting"],
                          **state.get("options", {}))
        except (KeyError, TypeError) as e:
            raise DevClusterError(f"{state_file} lacks or has a bad entry ({e})") from e
        cluster.db_password = state.get("db_password", cluster.db_password)
        cluster.cluster_name = state["cluster_name"]
        cluster.token = state["token"]
        cluster.ports = {k: int(v) for k, v in state["ports"].items()}
        cluster.socket_dir = Path(state["socket_dir"])
        cluster._own_workdir = bool(state.get("own_workdir", False))
        cluster.keep_db = bool(state.get("keep_db", False))
        cluster.keep_workdir = bool(state.get("keep_workdir", False))
        cluster.started_pids = {k: int(v) for k, v in state.get("started_pids", {}).items()}
        return cluster

    # ----------------------------------------------------------------- start

    def start(self) -> SlurmCluster:
        """Create the work directory, start every daemon and wait until all nodes are idle.

        On failure everything started so far is stopped and DevClusterError is raised with
        the tail of the failing daemon's log. Returns self.
        """
        t0 = time.monotonic()
        if missing := missing_binaries():
            raise DevClusterError(
                f"Slurm test cluster needs {', '.join(missing)}: "
                f"apt-get install -y --no-install-recommends {' '.join(APT_PACKAGES)}"
            )
        if os.geteuid() != 0:
            raise DevClusterError("the Slurm test cluster must be started as root")
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once()
                break
            except DevClusterError as e:
                self._stop_processes()
                # Ports are free when chosen but another process may take one before the
                # daemon binds it: start over with new ports.
                if "Address already in use" in str(e) and attempt < _START_ATTEMPTS:
                    continue
                self._remove_files()
                raise
            except BaseException:
                self.stop()
                raise
        self.cold_start_seconds = time.monotonic() - t0
        return self

    def _start_once(self) -> None:
        if self.socket_dir == self.workdir / "run":
            self.socket_dir = self._choose_socket_dir()
        self._prepare_workdir()
        names = ["slurmctld"] + [f"slurmd-{n}" for n in self.node_names]
        if self.accounting:
            names += ["slurmdbd", "mariadb"]
        self.ports = dict(zip(names, _free_ports(len(names)), strict=True))
        self.write_config()
        self._save_state()
        self._start_munged()
        if self.accounting:
            self._start_mariadb()
            self._start_slurmdbd()
        self._start_slurmctld()
        for node in self.node_names:
            self._start_slurmd(node)
        self.wait_nodes_ready()
        if self.accounting:
            self._wait_registered()

    def _prepare_workdir(self) -> None:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        # munged requires execute permission for all on every directory above its socket.
        w.chmod(0o755)
        # A start is always a fresh cluster: drop what an earlier one in this directory left
        # (slurmctld refuses state saved under another ClusterName).
        for sub in ("run", "log", "state", "spool", "db", "tmp"):
            shutil.rmtree(w / sub, ignore_errors=True)
        for sub in ("etc", "run", "log", "state", "spool", "munge", "tmp"):
            (w / sub).mkdir(exist_ok=True)
        for node in self.node_names:
            (w / "spool" / node).mkdir(exist_ok=True)
        (w / "munge").chmod(0o700)
        self.jobs_dir.mkdir(exist_ok=True)
        self.jobs_dir.chmod(0o1777)
        (w / "tmp").chmod(0o1777)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.chmod(0o755)

    def _spawn(self, daemon: str, argv: list[str]) -> None:
        out = self._out_path(daemon)
        with out.open("ab") as sink:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                env=self._daemon_env(daemon), cwd=self.workdir, start_new_session=True,
                close_fds=True,
            )
        self._procs[daemon] = proc
        self.started_pids[daemon] = proc.pid
        start_time = _start_time(proc.pid)
        _write(self._pid_path(daemon), f"{proc.pid} {start_time or 0}\n", 0o644)
        self._save_state()

    def _wait_for(self, daemon: str, ready: Callable[[], bool], what: str,
                  timeout: float | None = None) -> None:
        """Poll ``ready`` until true; fail fast if ``daemon`` died, or after ``timeout``."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        delay = 0.02
        while True:
            if ready():
                return
            if not self._alive(daemon):
                raise DevClusterError(
                    f"{daemon} exited before {what}\n{self.log_tail(daemon)}"
                )
            if time.monotonic() >= deadline:
                raise DevClusterError(
                    f"timed out after {timeout or self.start_timeout:.0f}s waiting for {what}\n"
                    f"{self.log_tail(daemon)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _listening(self, daemon: str) -> Callable[[], bool]:
        """Readiness check: the daemon's own process listens on its port."""
        port = self.ports[daemon]
        return lambda: (rec := self._recorded(daemon)) is not None and _pid_listens(rec[0], port)

    def _start_munged(self) -> None:
        key = self.workdir / "munge" / "munge.key"
        if not key.exists():
            _write(key, secrets.token_bytes(1024), 0o600)
        self._spawn("munged", [
            "/usr/sbin/munged", "--foreground", f"--socket={self.munge_socket}",
            f"--key-file={key}", f"--log-file={self.log_path('munged')}",
            f"--pid-file={self.workdir}/run/munged.munge-pid",
            f"--seed-file={self.workdir}/munge/seed", "--num-threads=2",
        ])
        self._wait_for("munged", lambda: _unix_listening(self.munge_socket), "the munge socket")

    def _start_mariadb(self) -> None:
        datadir = self.workdir / "db"
        # A throwaway database: small, and no fsync (table creation dominates the start).
        innodb = ["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=4M",
                  "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                  "--innodb-flush-method=nosync"]
        if not (datadir / "mysql").exists():
            datadir.mkdir(exist_ok=True)
            result = subprocess.run(
                ["/usr/bin/mariadb-install-db", "--no-defaults", f"--datadir={datadir}",
                 "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db",
                 "--skip-name-resolve", *innodb],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
                timeout=self.start_timeout,
            )
            if result.returncode != 0:
                raise DevClusterError(
                    f"mariadb-install-db failed ({result.returncode}):\n"
                    + "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                )
        init = self.conf_dir / "mariadb-init.sql"
        _write(init, (
            f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{self.db_password}';\n"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';\n"
        ), 0o600)
        self._spawn("mariadb", [
            "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={datadir}", "--user=root",
            f"--socket={self.mysql_socket}", f"--port={self.ports['mariadb']}",
            "--bind-address=127.0.0.1", "--skip-name-resolve",
            # Loopback only, so no TLS: MariaDB 11.4+ turns TLS on by default, and slurmdbd
            # 24.11/26.05 over TLS to Debian's MariaDB 11.8 fails at start ("5027 Number of
            # columns in result (=1) set execeeds maxmimum allowed number of columns (=0)").
            "--skip-ssl",
            f"--pid-file={self.workdir}/run/mariadb.mariadb-pid",
            f"--log-error={self.log_path('mariadb')}", f"--init-file={init}",
            f"--tmpdir={self.workdir}/tmp", "--max-connections=50", *innodb,
        ])
        self._wait_for("mariadb", self._listening("mariadb"), "MariaDB")

    def _start_slurmdbd(self) -> None:
        self._spawn("slurmdbd", ["/usr/sbin/slurmdbd", "-D"])
        self._wait_for("slurmdbd", self._listening("slurmdbd"), "slurmdbd")

    def _start_slurmctld(self) -> None:
        self._spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-f", str(self.conf_path)])
        self._wait_for("slurmctld", self._listening("slurmctld"),
                       "slurmctld")

    def _start_slurmd(self, node: str) -> None:
        daemon = f"slurmd-{node}"
        # Each slurmd in a UTS namespace of its own whose host name is the node's, as on a real
        # cluster: from 23.02 on slurmstepd starts with an empty environment (no
        # SLURMD_NODENAME), and the host name is how a plugin in it knows its node.
        self._spawn(daemon, [
            "/usr/bin/unshare", "--uts", "--", "/bin/sh", "-c",
            'echo "$0" > /proc/sys/kernel/hostname && exec "$@"', node,
            "/usr/sbin/slurmd", "-D", "-N", node, "-f", str(self.conf_path)])

    def node_states(self) -> dict[str, str]:
        """Node name -> state as sinfo prints it (``idle``, ``mixed``, ``down*``, ...)."""
        states: dict[str, str] = {}
        try:
            result = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False, timeout=10)
        except DevClusterError:  # slurmctld not answering (yet): no state known
            return states
        if result.returncode == 0:
            for line in result.stdout.splitlines():
                parts = line.split()
                if len(parts) == 2:
                    states[parts[0]] = parts[1]
        return states

    def wait_nodes_ready(self, nodes: Sequence[str] | None = None,
                         timeout: float | None = None) -> None:
        """Wait until every node (or ``nodes``) responds: idle, mixed, allocated or completing."""
        wanted = list(nodes or self.node_names)
        ready = {"idle", "mixed", "allocated", "completing"}
        deadline = time.monotonic() + (timeout or self.start_timeout)
        delay = 0.05
        while True:
            states = self.node_states()
            pending = [n for n in wanted if states.get(n) not in ready]
            if not pending:
                return
            for node in pending:
                if not self._alive(f"slurmd-{node}"):
                    raise DevClusterError(
                        f"slurmd-{node} exited before the node came up\n"
                        f"{self.log_tail(f'slurmd-{node}')}"
                    )
            if not self._alive("slurmctld"):
                raise DevClusterError(f"slurmctld exited\n{self.log_tail('slurmctld')}")
            if time.monotonic() >= deadline:
                node = pending[0]
                raise DevClusterError(
                    f"timed out waiting for nodes {pending} (states: {states})\n"
                    f"{self.log_tail(f'slurmd-{node}')}\n{self.log_tail('slurmctld')}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _wait_registered(self) -> None:
        def registered() -> bool:
            try:
                result = self.run("sacctmgr", "-n", "-P", "show", "cluster", "format=cluster",
                                  check=False, timeout=10)
            except DevClusterError:  # slurmdbd not answering yet
                return False
            return self.cluster_name in result.stdout.split()

        self._wait_for("slurmdbd", registered, "the cluster's registration in slurmdbd")

    # ----------------------------------------------------------------- stop

    def _recorded(self, daemon: str) -> tuple[int, int | None] | None:
        try:
            fields = self._pid_path(daemon).read_text().split()
            pid, start = int(fields[0]), int(fields[1])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid, (start or None)

    def _alive(self, daemon: str) -> bool:
        proc = self._procs.get(daemon)
        if proc is not None:
            return proc.poll() is None
        rec = self._recorded(daemon)
        return rec is not None and pid_alive(*rec)

    def pids(self) -> dict[str, int]:
        """Running daemons of this cluster: name -> PID."""
        out = {}
        for daemon in self.daemon_names():
            rec = self._recorded(daemon)
            if rec and self._alive(daemon):
                out[daemon] = rec[0]
        return out

    def _stop_daemon(self, daemon: str, timeout: float = 15.0) -> None:
        """TERM, wait up to ``timeout``, then KILL and wait 5 s. Only the recorded PID."""
        rec = self._recorded(daemon)
        proc = self._procs.pop(daemon, None)
        if rec is None:
            return
        pid, start = rec
        if pid_alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if _wait_gone({pid: start}, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if _wait_gone({pid: start}, 5.0):
                    raise DevClusterError(f"{daemon} (pid {pid}) survived SIGKILL")
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)  # reap our child so it leaves no zombie
        self._pid_path(daemon).unlink(missing_ok=True)

    def _kill_leftovers(self) -> list[int]:
        """SIGKILL this cluster's leftover processes (slurmstepd and their children).

        They are found by the cluster's random token in their environment (set on every
        daemon, inherited by slurmstepd up to 22.05) or, as slurmstepd of later releases
        starts with an environment of its own, by a working directory or open file (its
        log, spool) in the cluster's work directory; never the caller or its ancestors.
        """
        spare = _ancestors(os.getpid())
        marked = [p for p in set(_pids_with_env(MARKER_VAR, self.token))
                  | set(_pids_using(self.workdir)) if p not in spare]
        victims = {p: _start_time(p) for p in set(marked) | _descendants(marked)}
        victims = {p: st for p, st in victims.items() if p not in spare and st is not None}
        for pid, st in victims.items():
            if pid_alive(pid, st):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _wait_gone(victims, 5.0)
        return sorted(victims)

    def stop(self) -> None:
        """Stop every daemon of this cluster by its recorded PID, then leftover slurmstepd.

        Safe to call more than once and on a half-started cluster. Removes the MariaDB datadir
        (unless keep_db) and a temporary work directory this object created (unless
        keep_workdir). Raises DevClusterError if a process survived SIGKILL.
        """
        errors = self._stop_processes()
        self._remove_files(errors_seen=bool(errors))
        if errors:
            raise DevClusterError("; ".join(errors))

    def _stop_processes(self) -> list[str]:
        """Stop the daemons (nodes first), then leftovers; return errors (survivors)."""
        errors = []
        order = [f"slurmd-{n}" for n in self.node_names]
        order += ["slurmctld", "slurmdbd", "mariadb", "munged"]
        for daemon in order:
            try:
                self._stop_daemon(daemon)
            except DevClusterError as e:
                errors.append(str(e))
            if daemon == f"slurmd-{self.node_names[-1]}":
                # No slurmd is left to start steps: kill this cluster's stray slurmstepd now.
                self._kill_leftovers()
        self._kill_leftovers()
        return errors

    def _remove_files(self, errors_seen: bool = False) -> None:
        if self.socket_dir != self.workdir / "run":
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        if not self.keep_db:
            shutil.rmtree(self.workdir / "db", ignore_errors=True)
        if self._own_workdir and not self.keep_workdir and not errors_seen:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ----------------------------------------------------------------- restart / reconfigure

    def restart(self, daemon: str, timeout: float | None = None) -> None:
        """Stop and start daemons, then wait until they serve again. Job state survives.

        ``daemon``: one name (``slurmctld``, ``slurmd-n1``, ``slurmdbd``, ``mariadb``,
        ``munged``), ``slurmd`` (every node) or ``slurm`` (every slurmd and slurmctld, in the
        order that applies a changed slurm.conf/gres.conf cleanly; restarting slurmctld alone
        after a gres count change drains nodes whose slurmd still reports the old count).
        """
        if daemon in ("slurmd", "slurm"):
            for node in self.node_names:
                self._stop_daemon(f"slurmd-{node}")
            if daemon == "slurm":
                # slurmctld first, with no slurmd registered yet: it never sees a node report
                # the old configuration (which would drain it as INVAL).
                self._stop_daemon("slurmctld")
                self._start_slurmctld()
            for node in self.node_names:
                self._start_slurmd(node)
            self.wait_nodes_ready(timeout=timeout)
            return
        self._check_daemon(daemon)
        self._stop_daemon(daemon)
        if daemon == "munged":
            self._start_munged()
        elif daemon == "mariadb":
            self._start_mariadb()
        elif daemon == "slurmdbd":
            self._start_slurmdbd()
        elif daemon == "slurmctld":
            self._start_slurmctld()
            self.wait_nodes_ready(timeout=timeout)
        else:
            node = daemon.removeprefix("slurmd-")
            self._start_slurmd(node)
            self.wait_nodes_ready([node], timeout=timeout)

    def reconfigure(self, timeout: float | None = None) -> None:
        """``scontrol reconfigure`` (slurmctld and every slurmd reread their config files),
        then wait until every node responds."""
        self.run("scontrol", "reconfigure", timeout=timeout or 60)
        self.wait_nodes_ready(timeout=timeout)

    # ----------------------------------------------------------------- client commands

    def run(self, *argv: str, check: bool = True, timeout: float = 60,
            input: str | None = None, user: str | None = None,
            env: Mapping[str, str] | None = None,
            cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a client command (``sinfo``, ``srun``, ...) against this cluster.

        Returns the CompletedProcess with text stdout/stderr. ``check``: raise
        DevClusterCommandError (showing both outputs) on a non-zero exit. ``user``: run as that
        user (``runuser -u``). ``env``: extra variables. ``cwd`` defaults to ``jobs_dir`` (so
        job output lands there, writable by any user).
        """
        full_env = self.env
        if env:
            full_env.update(env)
        cmd = [str(a) for a in argv]
        if user is not None:
            cmd = ["runuser", "-u", user, "--", *cmd]
        try:
            result = subprocess.run(
                cmd, env=full_env, input=input, capture_output=True, text=True,
                timeout=timeout, check=False,
                cwd=cwd if cwd is not None else (self.jobs_dir if self.jobs_dir.is_dir()
                                                  else None),
            )
        except subprocess.TimeoutExpired as e:
            raise DevClusterError(f"{shlex.join(cmd)} did not finish within {timeout}s") from e
        if check and result.returncode != 0:
            raise DevClusterCommandError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def sbatch(self, *args: str, user: str | None = None, timeout: float = 60) -> int:
        """Submit with ``sbatch --parsable ARGS`` and return the job id."""
        result = self.run("sbatch", "--parsable", *args, user=user, timeout=timeout)
        text = result.stdout.strip().split(";")[0]
        if not text.isdigit():
            raise DevClusterError(f"sbatch printed no job id: {result.stdout!r} {result.stderr!r}")
        return int(text)

    def job_info(self, jobid: int) -> dict[str, str]:
        """``scontrol show job -d -o`` fields as a dict ({} once slurmctld forgot the job)."""
        result = self.run("scontrol", "show", "job", "-d", "-o", str(jobid), check=False,
                          timeout=15)
        if result.returncode != 0:
            return {}
        info: dict[str, str] = {}
        # Values may contain spaces only in a few fields (Command, WorkDir...); split on " Key=".
        for match in re.finditer(r"(?:^|\s)([A-Za-z:/_]+)=(.*?)(?=\s[A-Za-z:/_]+=|$)",
                                 result.stdout.strip()):
            info.setdefault(match.group(1), match.group(2))
        return info

    def job_state(self, jobid: int) -> str | None:
        """The job's state (``PENDING``, ``COMPLETED``, ...) from slurmctld, else sacct."""
        state = self.job_info(jobid).get("JobState")
        if state:
            return state
        if self.accounting:
            result = self.run("sacct", "-n", "-X", "-P", "-j", str(jobid), "-o", "State",
                              check=False, timeout=15)
            lines = result.stdout.split()
            if lines:
                return lines[0].split()[0]
        return None

    def wait_job(self, jobid: int, states: Iterable[str] = ("COMPLETED",),
                 timeout: float = 60) -> str:
        """Poll until the job reaches one of ``states`` and return it.

        Raises DevClusterError if it reaches another terminal state, or on timeout (both with
        the job's details and the slurmctld log tail).
        """
        wanted = set(states)
        deadline = time.monotonic() + timeout
        state: str | None = None
        delay = 0.05
        while time.monotonic() < deadline:
            state = self.job_state(jobid)
            if state in wanted:
                return state
            if state in _TERMINAL_JOB_STATES:
                raise DevClusterError(
                    f"job {jobid} ended {state}, expected {sorted(wanted)}: "
                    f"{self.job_info(jobid)}\n{self.log_tail('slurmctld')}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise DevClusterError(
            f"job {jobid} still {state} after {timeout}s, expected {sorted(wanted)}: "
            f"{self.job_info(jobid)}\n{self.log_tail('slurmctld')}"
        )

    def sacct_alloc_tres(self, jobid: int, timeout: float = 30,
                         steps: Iterable[str] = ("", "batch")) -> dict[str, str]:
        """AllocTRES per job/step id from sacct, e.g. ``{"7": "billing=1,cpu=1,gres/vgpu=3,..",
        "7.batch": "..."}``.

        Accounting is asynchronous: polls until the records ``jobid`` + each of ``steps``
        ("" = the job itself, "batch", "0", ...) exist with AllocTRES. Use parse_tres() on a
        value.
        """
        if not self.accounting:
            raise DevClusterError("sacct_alloc_tres: this cluster runs without accounting "
                                  "(accounting=False); start it with accounting=True")
        wanted = {f"{jobid}.{s}" if s else str(jobid) for s in steps}
        deadline = time.monotonic() + timeout
        found: dict[str, str] = {}
        while True:
            result = self.run("sacct", "-n", "-P", "-j", str(jobid), "-o", "JobID,AllocTRES",
                              check=False, timeout=15)
            found = {}
            for line in result.stdout.splitlines():
                if "|" in line:
                    jid, tres = line.split("|", 1)
                    found[jid.strip()] = tres.strip()
            if all(found.get(w) for w in wanted):
                return found
            if time.monotonic() >= deadline:
                raise DevClusterError(
                    f"sacct has no AllocTRES for {sorted(wanted)} after {timeout}s: {found}\n"
                    f"{self.log_tail('slurmdbd')}"
                )
            time.sleep(0.2)

    # ----------------------------------------------------------------- logs / status

    def log_tail(self, daemon: str, lines: int = 30) -> str:
        """The last ``lines`` lines of the daemon's log and of its stdout/stderr, labelled."""
        self._check_daemon(daemon)
        parts = []
        for path in (self.log_path(daemon), self._out_path(daemon)):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if text.strip():
                tail = "\n".join(text.splitlines()[-lines:])
                parts.append(f"--- last lines of {path}\n{tail}")
        return "\n".join(parts) or f"--- {daemon}: no log output in {self.workdir / 'log'}"

    def status(self) -> str:
        """A readable summary: each daemon's PID/state and sinfo."""
        lines = [f"cluster {self.cluster_name} in {self.workdir}",
                 f"SLURM_CONF={self.conf_path}"]
        running = self.pids()
        for daemon in self.daemon_names():
            port = self.ports.get(daemon)
            where = f" port {port}" if port else ""
            if daemon in running:
                lines.append(f"  {daemon:14} running pid {running[daemon]}{where}")
            else:
                lines.append(f"  {daemon:14} stopped")
        if "slurmctld" in running:
            lines.append(self.run("sinfo", "-N", "-o", "%N %T %G", check=False).stdout.rstrip())
        return "\n".join(lines)


def _searchable_by_all(path: Path) -> bool:
    """True if every existing directory from / down to ``path`` has o+x."""
    for directory in [path, *path.parents]:
        with contextlib.suppress(FileNotFoundError):
            if not directory.stat().st_mode & 0o001:
                return False
    return True


def _write(path: Path, content: str | bytes, mode: int) -> None:
    """Write atomically (temp file + rename) with ``mode``: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, content.encode() if isinstance(content, str) else content)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- command line


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="devcluster.py",
        description="Start/stop an isolated loopback Slurm 22.05 test cluster in a work dir.",
    )
    parser.add_argument("action", choices=["up", "down", "status", "env", "install"])
    parser.add_argument("--workdir", help="the cluster's directory (required except install)")
    parser.add_argument("--nodes", default="n1,n2", help="comma-separated node names (up)")
    parser.add_argument("--vgpu", type=int, default=20, help="vgpu slices per node (up)")
    parser.add_argument("--plugstack", help="file whose content becomes plugstack.conf (up)")
    parser.add_argument("--extra-conf", help="file appended to slurm.conf (up)")
    parser.add_argument("--job-submit-lua",
                        help="file that becomes job_submit.lua, with JobSubmitPlugins=lua (up)")
    parser.add_argument("--slurmd-env", action="append", default=[], metavar="VAR=VALUE",
                        help="extra environment for slurmd/slurmstepd (up; repeatable)")
    parser.add_argument("--debug", default="info", help="Slurm daemons' debug level (up)")
    args = parser.parse_args(argv)

    if args.action == "install":
        ensure_installed()
        return 0
    if not args.workdir:
        parser.error("--workdir DIR is required")
    try:
        if args.action == "up":
            ensure_installed()
            slurmd_env = {}
            for item in args.slurmd_env:
                if "=" not in item:
                    parser.error(f"--slurmd-env {item!r}: write VAR=VALUE")
                key, value = item.split("=", 1)
                slurmd_env[key] = value
            cluster = SlurmCluster(
                workdir=args.workdir, nodes=args.nodes.split(","), vgpu_per_node=args.vgpu,
                plugstack_conf=Path(args.plugstack).read_text() if args.plugstack else "",
                extra_conf=Path(args.extra_conf).read_text() if args.extra_conf else "",
                job_submit_lua=(Path(args.job_submit_lua).read_text()
                                if args.job_submit_lua else ""),
                slurmd_env=slurmd_env, debug=args.debug,
            )
            if (cluster.conf_dir / "cluster.json").exists():
                old = SlurmCluster.attach(args.workdir)
                if old.pids():
                    print(f"devcluster: a cluster already runs in {args.workdir}; "
                          "run down first", file=sys.stderr)
                    return 1
            cluster.start()
            print(f"# cluster {cluster.cluster_name} up in {cluster.cold_start_seconds:.1f}s; "
                  f"logs in {cluster.workdir / 'log'}", file=sys.stderr)
            for key, value in cluster.env_exports().items():
                print(f"export {key}={shlex.quote(value)}")
        else:
            cluster = SlurmCluster.attach(args.workdir)
            if args.action == "down":
                cluster.stop()
            elif args.action == "status":
                print(cluster.status())
                return 0 if cluster.pids() else 3
            else:
                for key, value in cluster.env_exports().items():
                    print(f"export {key}={shlex.quote(value)}")
    except DevClusterError as e:
        print(f"devcluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
