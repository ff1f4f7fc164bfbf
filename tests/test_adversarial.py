"""The job's user as an adversary (issue 15, docs/security.md): every attempt of the threat
model's table, as an unprivileged user in real `sbatch` jobs on the loopback cluster, with the
shipped defaults (hook.conf absent, the daemon's backstop as shipped, job_submit.lua from
contrib/job_submit). Outcomes come from the simulated GPU's ground truth (fakegpu-dump: memory
the device really holds) and from Slurm, never from what the hook says about itself.

One node (n1) with two simulated 10 GiB GPUs of ten 1 GiB slices; the daemon polls every
0.5 s. `pytest -m adversarial`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REQUIRE_NATIVE, skip_or_fail
from slurm_cluster import ensure_user, require_slurm_cluster
from spank_cluster import SpankSite, wait_for
from test_daemon_e2e import UUIDS, Daemon, one_node_site

from slurm_vgpu.native._ffi import ffi

pytestmark = [pytest.mark.adversarial, pytest.mark.slurm, pytest.mark.native, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("VGPU_BUILD", REPO / "build"))
FAKE = BUILD / "fakegpu"
HOOK = BUILD / "native" / "libvgpu.so"
PROBE = BUILD / "native" / "tests" / "vgpu_probe"
LUA = REPO / "contrib" / "job_submit" / "job_submit.lua"
USER = "vgpu-test"
GIB = 1 << 30
PERIOD = 0.5
# one control period, plus what a 2-core VM shared with the cluster needs to run one cycle
# (the daemon's cycle, scancel and slurmstepd's kill); the measured latency is printed
STOP_WITHIN = 15.0

# VGPU_PROCTRACK=cgroup: proctrack/cgroup + task/cgroup, as production clusters run (needs a
# writable cgroup v1 hierarchy; the loopback cluster's default is proctrack/linuxproc)
PROCTRACK = ("ProctrackType=proctrack/cgroup\nTaskPlugin=task/cgroup\n"
             if os.environ.get("VGPU_PROCTRACK") == "cgroup" else "")

GPU0 = ffi.offsetof("struct vgpu_state", "gpu")
USED0 = GPU0 + ffi.offsetof("struct vgpu_state_gpu", "used_bytes")
TOKENS0 = GPU0 + ffi.offsetof("struct vgpu_state_gpu", "tokens_ns")
GATE = ffi.offsetof("struct vgpu_state", "gate_mask")


@pytest.fixture(scope="module")
def fake_state() -> Iterator[Path]:
    for path in (HOOK, PROBE, FAKE / "libcuda.so.1", FAKE / "fakegpu-ctl"):
        if not path.exists():
            skip_or_fail(f"{path} is not built (make)", REQUIRE_NATIVE)
    require_slurm_cluster()
    ensure_user(USER)
    # the job's user must reach the simulated machine: not under pytest's 0700 tmp dirs
    base = Path(tempfile.mkdtemp(prefix="vgpu-adversarial-"))
    base.chmod(0o755)
    state = base / "n1.state"
    try:
        subprocess.run([str(FAKE / "fakegpu-ctl"), "create", "--force", "--state", str(state),
                        "--count", "2", "--mem", "10G", "--uuid", ",".join(UUIDS),
                        # contexts free: the sizes here are tuned to the caps (the simulated
                        # GPU's default is 512 MiB per context, charged inside the cap)
                        "--ctx-overhead", "0"],
                       check=True, capture_output=True, timeout=30)
        state.chmod(0o666)
        yield state
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def site(fake_state: Path) -> Iterator[tuple[Any, SpankSite, Daemon]]:
    with one_node_site(fake_state, accounting=True, job_submit_lua=LUA.read_text(),
                       extra_conf=PROCTRACK) as (cluster, s):
        os.chmod(cluster.jobs_dir, 0o1777)
        # the shipped defaults but for the period (a test must not wait 5 s per attempt)
        daemon = Daemon(s, fake_state, cluster, "")
        cfg = s.base / "vgpu-daemon.yaml"
        assert "backstop" not in cfg.read_text()
        try:
            wait_for(lambda: "vgpu_daemon_nvml_up 1.0" in daemon.metrics(), "daemon + NVML", 30)
            yield cluster, s, daemon
        finally:
            daemon.stop()


def device_used(fake_state: Path, index: int = 0) -> int:
    out = subprocess.run([str(FAKE / "fakegpu-dump"), "--state", str(fake_state)],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return int(json.loads(out)["devices"][index]["memory_used"])


def device_busy(fake_state: Path, pids: set[int], window_ms: int = 1500) -> float:
    out = subprocess.run([str(FAKE / "fakegpu-dump"), "--state", str(fake_state),
                          "--window-ms", str(window_ms)], check=True, capture_output=True,
                         text=True, timeout=30).stdout
    dev = json.loads(out)["devices"][0]
    return sum(p["busy_window_ns"] for p in dev["processes"] if p["pid"] in pids) / (
        window_ms * 1e6)


def submit(cluster: Any, fake_state: Path, name: str, body: str, *args: str) -> int:
    path: Path = cluster.jobs_dir / f"{name}.sh"
    path.write_text(f"#!/bin/bash\nexport LD_LIBRARY_PATH={FAKE} FAKEGPU_STATE={fake_state}\n"
                    f"export J={cluster.jobs_dir}/{name}\n{body}\n")
    path.chmod(0o755)
    return int(cluster.sbatch("-o", f"{cluster.jobs_dir}/{name}.out", *args, str(path),
                              user=USER))


def out_text(cluster: Any, name: str, suffix: str = "out") -> str:
    path: Path = cluster.jobs_dir / f"{name}.{suffix}"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_text(cluster: Any, name: str, suffix: str, text: str, timeout: float = 60) -> str:
    try:
        wait_for(lambda: text in out_text(cluster, name, suffix), f"{name}.{suffix}", timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}: {out_text(cluster, name, suffix)!r}, job output "
                             f"{out_text(cluster, name)!r}, squeue "
                             f"{cluster.run('squeue', check=False).stdout!r}") from None
    return out_text(cluster, name, suffix)


def ended(cluster: Any, job: int) -> bool:
    return cluster.job_state(job) not in ("RUNNING", "PENDING", "CONFIGURING", "COMPLETING",
                                          None)


def finish(cluster: Any, *jobs: int) -> None:
    cluster.run("scancel", *map(str, jobs), check=False)
    for job in jobs:
        wait_for(lambda j=job: ended(cluster, j), f"job {job} to end", 60)


# --- (a) no variable switches enforcement off or points it elsewhere ---------------------------

@pytest.mark.parametrize("how", ["VGPU_LIMITS=", "env -u VGPU_LIMITS", "VGPU_LIMITS=/nonexistent"])
def test_an_empty_missing_or_foreign_limits_variable_denies(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path, how: str) -> None:
    cluster, _, _ = site
    name = f"novar-{abs(hash(how))}"
    job = submit(cluster, fake_state, name,
                 f"{how} {PROBE} info alloc 2G > $J.probe 2>&1; echo done >> $J.probe",
                 "--gres=vgpu:1")
    text = wait_text(cluster, name, "probe", "done")
    cluster.wait_job(job, timeout=60)
    assert "setup rc=0" in text or "info rc=0" in text, text  # it reached the device
    assert "alloc rc=0" not in text, text            # 2 GiB under a 1 GiB cap: never
    assert f"total={10 * GIB}" not in text, text     # the whole card is not reported
    assert "vgpu: " in text and "will fail" in text, text


def test_limits_and_state_of_the_users_bigger_job_are_refused(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    cluster, s, _ = site
    big = submit(cluster, fake_state, "big", f"{PROBE} info hold > $J.probe 2>&1",
                 "--gres=vgpu:7")
    wait_text(cluster, "big", "probe", "hold ready")
    d = s.job_dir("n1", big)
    name = "small"
    job = submit(cluster, fake_state, name,
                 f"VGPU_LIMITS={d}/limits VGPU_STATE={d}/state {PROBE} alloc 2G > $J.probe 2>&1;"
                 " echo done >> $J.probe", "--gres=vgpu:1")
    try:
        text = wait_text(cluster, name, "probe", "done")
        assert "alloc rc=0" not in text, text
        assert "VGPU_LIMITS=" in text and "will fail" in text, text
    finally:
        finish(cluster, big, job)


# --- (b) accounting the user can forge: caught from the device side ----------------------------

def test_zeroed_reservations_in_the_state_file_stop_the_job(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    cluster, _, daemon = site
    zero = (f"python3 -c 'import os; fd=os.open(os.environ[\"VGPU_STATE\"], os.O_RDWR); "
            f"os.pwrite(fd, bytes(8), {USED0})'")
    job = submit(cluster, fake_state, "forge", (
        f"{PROBE} alloc 900M hold > $J.a 2>&1 &\n"
        f"while ! grep -q 'hold ready' $J.a; do sleep 0.05; done\n{zero}\n"
        f"{PROBE} alloc 900M hold > $J.b 2>&1 &\nwait"), "--gres=vgpu:1")
    try:
        text = wait_text(cluster, "forge", "b", "hold ready")
        started = time.monotonic()
        assert "alloc rc=0" in text  # the forged state fooled the hook...
        wait_for(lambda: ended(cluster, job), "the backstop to stop the job", STOP_WITHIN)
        took = time.monotonic() - started
        wait_for(lambda: device_used(fake_state) == 0, "its memory to be freed", 30)
        print(f"forged reservations: stopped {took:.1f} s after the second allocation")
        assert cluster.job_state(job) == "CANCELLED", cluster.job_state(job)
        assert f"job {job} holds" in daemon.log_text()
    finally:
        finish(cluster, job)


def test_a_tampered_gate_and_token_bucket_stop_the_job(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    cluster, _, daemon = site
    tamper = ("python3 -c '\nimport os, mmap, time, struct\n"
              "fd = os.open(os.environ[\"VGPU_STATE\"], os.O_RDWR)\n"
              "while os.fstat(fd).st_size == 0: time.sleep(0.01)\n"
              "m = mmap.mmap(fd, 0)\nwhile True:\n"
              f"    m[{GATE}:{GATE + 4}] = bytes(4)\n"
              f"    m[{TOKENS0}:{TOKENS0 + 8}] = struct.pack(\"<q\", 1 << 40)\n"
              "    time.sleep(0.001)\n' &")
    job = submit(cluster, fake_state, "gate", (
        f"{tamper}\nPROBE_PIPELINE=1 PROBE_BATCH=4 {PROBE} busy 60000 > $J.probe 2>&1 &\n"
        "echo pid=$! > $J.pid\nwait"), "--gres=vgpu:1")
    try:
        pid = int(wait_text(cluster, "gate", "pid", "pid=").split("=")[1])
        started = time.monotonic()
        with contextlib.suppress(subprocess.SubprocessError, ValueError):
            print(f"tampered gate: a 10 % job kept the device "
                  f"{device_busy(fake_state, {pid}, 300):.0%} busy")
        wait_for(lambda: ended(cluster, job), "the compute backstop to stop the job",
                 STOP_WITHIN + 5)
        print(f"tampered gate: stopped {time.monotonic() - started:.1f} s after start")
        assert cluster.job_state(job) == "CANCELLED"
        assert "launch gate bypassed" in daemon.log_text(), daemon.log_text()
        wait_for(lambda: device_busy(fake_state, {pid}, 300) == 0.0, "the device idle", 30)
    finally:
        finish(cluster, job)


# --- (c) a stripped hook: the backstop's default stops the step --------------------------------

def test_a_step_without_the_hook_over_its_cap_is_stopped(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    cluster, _, daemon = site
    job = submit(cluster, fake_state, "strip",
                 f"env -u LD_PRELOAD {PROBE} alloc 3G hold > $J.probe 2>&1", "--gres=vgpu:1")
    try:
        wait_text(cluster, "strip", "probe", "hold ready")
        started = time.monotonic()
        wait_for(lambda: ended(cluster, job), "the backstop to stop the step", STOP_WITHIN)
        print(f"stripped LD_PRELOAD: stopped {time.monotonic() - started:.1f} s after it held")
        wait_for(lambda: device_used(fake_state) == 0, "its memory to be freed", 30)
        assert cluster.job_state(job) == "CANCELLED"
        assert "cancel_step" in daemon.log_text()

        def comment() -> str:
            return str(cluster.run("sacct", "-n", "-X", "-j", str(job), "-o",
                                   "AdminComment%600", check=False).stdout)
        # the decision is in the job's accounting summary (backstop events, bs:)
        wait_for(lambda: ";bs:" in comment() and ";bs:0" not in comment(),
                 "the backstop event in AdminComment", 30)
    finally:
        finish(cluster, job)


def test_a_step_without_the_hook_over_its_share_is_stopped(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    cluster, _, daemon = site
    job = submit(cluster, fake_state, "stripbusy", (
        f"env -u LD_PRELOAD PROBE_PIPELINE=1 PROBE_BATCH=4 {PROBE} busy 60000 > $J.probe 2>&1"),
        "--gres=vgpu:1")
    try:
        started = time.monotonic()
        wait_for(lambda: ended(cluster, job), "the compute backstop to stop the step",
                 STOP_WITHIN + 5)
        print(f"stripped LD_PRELOAD, computing: stopped {time.monotonic() - started:.1f} s "
              "after submit")
        assert cluster.job_state(job) == "CANCELLED"
        assert f"job {job} kept GPU" in daemon.log_text(), daemon.log_text()
    finally:
        finish(cluster, job)


# --- (d) no escape from the job ----------------------------------------------------------------

def test_a_process_escaped_with_setsid_is_killed(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    cluster, _, daemon = site
    job = submit(cluster, fake_state, "escape", (
        f"setsid bash -c 'env -u LD_PRELOAD {PROBE} alloc 6G hold > $J.probe 2>&1 & "
        "echo pid=$! > $J.pid' < /dev/null\nsleep 1\nexit 0"), "--gres=vgpu:1")
    try:
        pid = int(wait_text(cluster, "escape", "pid", "pid=").split("=")[1])
        wait_text(cluster, "escape", "probe", "hold ready")
        started = time.monotonic()
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the escaped process to be killed",
                 STOP_WITHIN)
        cycle = [ln for ln in daemon.metrics().splitlines()
                 if ln.startswith("vgpu_daemon_last_cycle_duration_seconds")]
        print(f"escaped process: killed {time.monotonic() - started:.1f} s after it held "
              f"(period {PERIOD} s, {cycle})")
        wait_for(lambda: device_used(fake_state) == 0, "its memory to be freed", 30)
        if PROCTRACK:
            return  # proctrack/cgroup: the process never left its step; Slurm killed it
        assert f"killed pid {pid}" in daemon.log_text(), daemon.log_text()
        # precisely: the probe's last write ("hold ready") to the daemon's log line
        held = (cluster.jobs_dir / "escape.probe").stat().st_mtime
        line = next(ln for ln in daemon.log_text().splitlines() if f"killed pid {pid}" in ln)
        at = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        print(f"escaped process: the daemon killed it {at - held:.2f} s after it held")
    finally:
        finish(cluster, job)


def test_the_epilog_kills_what_escaped_with_the_hook_loaded(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    """The daemon's kill of unattributed processes is switched off (SIGHUP reload) so that
    only the job's epilog can end the escaped process."""
    cluster, s, daemon = site
    cfg = s.base / "vgpu-daemon.yaml"
    shipped = cfg.read_text()

    def reload(text: str) -> None:
        before = daemon.log_text().count("reload: policy settings applied")
        cfg.write_text(text)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.log_text().count("reload: policy settings applied") > before,
                 "the daemon to reload", 30)

    reload(shipped + "backstop: {kill_unattributed: false}\n")
    job = None
    try:
        job = submit(cluster, fake_state, "epilog", (
            f"setsid bash -c '{PROBE} alloc 512M hold > $J.probe 2>&1 & echo pid=$! > $J.pid'"
            " < /dev/null\nwhile ! grep -q 'hold ready' $J.probe; do sleep 0.05; done\nexit 0"),
            "--gres=vgpu:1")
        pid = int(wait_text(cluster, "epilog", "pid", "pid=").split("=")[1])
        wait_for(lambda: ended(cluster, job), "the job to end", 60)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the epilog to kill it", STOP_WITHIN)
        wait_for(lambda: device_used(fake_state) == 0, "its memory to be freed", 30)
        assert f"killed pid {pid}" not in daemon.log_text()
        log = (cluster.workdir / "log" / "slurmd-n1.log").read_text(errors="replace")
        assert f"job {job} epilog: killed 1 process" in log, log[-2000:]
    finally:
        reload(shipped)
        if job is not None:
            finish(cluster, job)


# --- (e) clear refusals at submit --------------------------------------------------------------

@pytest.mark.parametrize(("args", "expect"), [
    (("--gres=vgpu:0",), "asks for no slices"),
    (("--gres=vgpu:999",), "largest request a node can take is --gres=vgpu:20"),
    (("--gres=vgpu:-1",), "vgpu"),
    (("--gres=vgpu:abc",), "vgpu"),
    (("--vgpu-share=burst",), "--vgpu-share only applies"),
])
def test_unusable_requests_are_refused_at_submit(
        site: tuple[Any, SpankSite, Daemon], args: tuple[str, ...], expect: str) -> None:
    cluster, _, _ = site
    r = cluster.run("sbatch", "--parsable", *args, "--wrap", "true", user=USER, check=False)
    assert r.returncode != 0, (args, r.stdout)
    assert "vgpu: " in r.stderr and expect in r.stderr, (args, r.stderr)


def test_control_an_honest_job_at_its_share_is_left_alone(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    """The backstop's compute check must not stop a job the hook holds to its share."""
    cluster, _, daemon = site
    job = submit(cluster, fake_state, "honest",
                 f"PROBE_PIPELINE=1 PROBE_BATCH=4 {PROBE} alloc 512M busy 5000 > $J.probe 2>&1",
                 "--gres=vgpu:1")
    try:
        wait_for(lambda: ended(cluster, job), "the honest job to finish", 60)
        assert cluster.job_state(job) == "COMPLETED", (cluster.job_state(job),
                                                      daemon.log_text())
        assert f"job {job} kept GPU" not in daemon.log_text()
    finally:
        finish(cluster, job)


def test_a_smaller_srun_step_cannot_take_its_jobs_limits(
        site: tuple[Any, SpankSite, Daemon], fake_state: Path) -> None:
    """Inside a vgpu:3 job a `srun --gres=vgpu:1` step has its own limits; pointing
    VGPU_LIMITS at the job's (3 slices) is refused by the step's anchor."""
    cluster, _, _ = site
    job = submit(cluster, fake_state, "step", (
        "srun --gres=vgpu:1 bash -c 'VGPU_LIMITS=$(dirname $VGPU_LIMITS)/limits "
        f"{PROBE} alloc 2G' > $J.probe 2>&1\n"
        f"srun --gres=vgpu:1 {PROBE} alloc 2G alloc 512M >> $J.probe 2>&1\n"
        "echo done >> $J.probe"), "--gres=vgpu:3")
    try:
        text = wait_text(cluster, "step", "probe", "done")
        assert "VGPU_LIMITS=" in text and "will fail" in text, text
        # the honest step: 2 GiB over its 1-slice cap refused, 512 MiB granted
        assert text.count("alloc rc=0") == 1, text
    finally:
        finish(cluster, job)
