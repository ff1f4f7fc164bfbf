"""Fixtures for the hook's tests: the built hook and test drivers, a simulated GPU (made with
tests/fakegpu.py), and the per-job files (root-owned limits, an empty state file) exactly as
the SPANK plugin makes them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import REQUIRE_NATIVE, skip_or_fail
from fakegpu import FakeGpuBuild, FakeMachine, create_fake_machine, find_fakegpu_build

from slurm_vgpu.native import (
    GpuLimit,
    JobLimits,
    JobUsage,
    SharePolicy,
    read_usage,
    write_limits_file,
)

REPO = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("VGPU_BUILD", REPO / "build"))
GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class HookBuild:
    """Paths of what `make` built for the hook's tests."""

    hook: Path
    fake: FakeGpuBuild
    tests: Path

    @property
    def fake_dir(self) -> Path:
        return self.fake.dir

    def probe(self, path: str = "linked") -> Path:
        names = {"linked": "vgpu_probe", "dlsym": "vgpu_probe_dlsym", "gpa": "vgpu_probe_gpa"}
        return self.tests / names[path]


def find_hook_build() -> HookBuild | None:
    fake = find_fakegpu_build(BUILD / "fakegpu")
    if fake is None:
        return None
    build = HookBuild(hook=BUILD / "native" / "libvgpu.so", fake=fake,
                      tests=BUILD / "native" / "tests")
    needed = [build.hook, build.probe("linked"), build.probe("dlsym"), build.probe("gpa")]
    return build if all(p.exists() for p in needed) else None


@pytest.fixture(scope="session")
def hook_build() -> HookBuild:
    build = find_hook_build()
    if build is None:
        skip_or_fail("the hook, its test drivers or the simulated GPU are not built: run make",
                     REQUIRE_NATIVE)
        raise AssertionError("unreachable")
    return build


@dataclass
class Job:
    """One job's files: <dir>/limits (root, 0644) and <dir>/state (job user, 0600, empty)."""

    dir: Path
    limits: Path
    state: Path
    ngpus: int

    def usage(self) -> JobUsage:
        return read_usage(self.state, self.ngpus)


@dataclass
class Run:
    """What a test driver printed: `lines` of stdout keyed by command, stderr, exit code."""

    returncode: int
    stdout: str
    stderr: str
    lines: list[dict[str, str]] = field(default_factory=list)

    def rc(self, cmd: str, nth: int = 0) -> int:
        return int(self.get(cmd, nth)["rc"])

    def get(self, cmd: str, nth: int = 0) -> dict[str, str]:
        found = [line for line in self.lines if line["cmd"] == cmd]
        assert len(found) > nth, f"no {cmd!r} #{nth} in output:\n{self.stdout}\n{self.stderr}"
        return found[nth]

    def vgpu_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("vgpu: ")]


def parse_lines(stdout: str) -> list[dict[str, str]]:
    out = []
    for raw in stdout.splitlines():
        parts = raw.split()
        if not parts:
            continue
        entry = {"cmd": parts[0]}
        for token in parts[1:]:
            key, _, value = token.partition("=")
            entry[key] = value
        out.append(entry)
    return out


class HookEnv:
    """A simulated machine (its own fakegpu state file) plus helpers to run jobs on it."""

    def __init__(self, build: HookBuild, root: Path, count: int = 1, memory: str = "16G",
                 **machine_options: Any):
        self.build = build
        self.root = root
        self.machine: FakeMachine = create_fake_machine(build.fake, root / "fakegpu.state",
                                                        count, memory, **machine_options)
        self.fake_state = self.machine.state
        # Only what a job's processes need: nothing of the test runner's VGPU_* or preloads.
        self.base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.machine.env}
        self.uuids = list(self.machine.uuids)

    def ground_truth(self, window_ms: int | None = None) -> dict[str, Any]:
        return self.machine.dump(window_ms=window_ms)

    def ground_truth_window(self, t0: int, t1: int, index: int = 0) -> dict[str, Any]:
        """Device `index` with busy time counted within [t0, t1) (CLOCK_MONOTONIC ns)."""
        return self.machine.device(index, from_ns=t0, to_ns=t1)

    def device(self, index: int = 0, window_ms: int | None = None) -> dict[str, Any]:
        return self.machine.device(index, **({"window_ms": window_ms} if window_ms else {}))

    def job(
        self,
        name: str = "job",
        memory: int = GIB,
        compute_permille: int = 1000,
        policy: SharePolicy = SharePolicy.GUARANTEED,
        devices: Sequence[int] = (0,),
        uid: int | None = None,
        per_gpu: Sequence[tuple[int, int]] | None = None,
    ) -> Job:
        """A job on `devices`, each with `memory` bytes and `compute_permille`, unless per_gpu
        gives (memory, permille) for each device."""
        d = self.root / name
        d.mkdir(mode=0o755)
        caps = list(per_gpu) if per_gpu else [(memory, compute_permille)] * len(devices)
        gpus = tuple(
            GpuLimit(uuid=self.uuids[i], physical_index=i, slices=max(permille // 100, 1),
                     memory_limit_bytes=mem, compute_guaranteed_permille=permille,
                     compute_limit_permille=permille)
            for i, (mem, permille) in zip(devices, caps, strict=True)
        )
        limits = d / "limits"
        write_limits_file(limits, JobLimits(job_id=abs(hash(name)) % 100000, gpus=gpus,
                                            uid=os.getuid() if uid is None else uid,
                                            share_policy=policy))
        state = d / "state"
        state.touch(mode=0o600)
        os.chmod(state, 0o600)
        return Job(dir=d, limits=limits, state=state, ngpus=len(gpus))

    def env(self, job: Job | None, extra: dict[str, str] | None = None,
            preload: bool = True) -> dict[str, str]:
        env = dict(self.base_env)
        if preload:
            env["LD_PRELOAD"] = str(self.build.hook)
        if job is not None:
            env["VGPU_LIMITS"] = str(job.limits)
            env["VGPU_STATE"] = str(job.state)
        env.update(extra or {})
        return env

    def run(self, job: Job | None, args: Sequence[str], path: str = "linked",
            extra: dict[str, str] | None = None, timeout: float = 60,
            preload: bool = True) -> Run:
        out = subprocess.run([str(self.build.probe(path)), *args], capture_output=True,
                             text=True, env=self.env(job, extra, preload), timeout=timeout,
                             check=False)
        return Run(out.returncode, out.stdout, out.stderr, parse_lines(out.stdout))

    def start(self, job: Job | None, args: Sequence[str], path: str = "linked",
              extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([str(self.build.probe(path)), *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env(job, extra))


@pytest.fixture
def hook_env(hook_build: HookBuild, tmp_path: Path) -> HookEnv:
    if os.geteuid() != 0:
        skip_or_fail("the hook's tests write root-owned limits files: run them as root",
                     REQUIRE_NATIVE)
    os.chmod(tmp_path, 0o755)
    return HookEnv(hook_build, tmp_path)


@pytest.fixture
def hook_env_real_contexts(hook_build: HookBuild, tmp_path: Path) -> HookEnv:
    """A simulated GPU whose contexts cost what real ones do (its default, 512 MiB each)."""
    if os.geteuid() != 0:
        skip_or_fail("the hook's tests write root-owned limits files: run them as root",
                     REQUIRE_NATIVE)
    os.chmod(tmp_path, 0o755)
    return HookEnv(hook_build, tmp_path, ctx_overhead=None)


@pytest.fixture
def hook_env_2gpu(hook_build: HookBuild, tmp_path: Path) -> HookEnv:
    if os.geteuid() != 0:
        skip_or_fail("the hook's tests write root-owned limits files: run them as root",
                     REQUIRE_NATIVE)
    os.chmod(tmp_path, 0o755)
    return HookEnv(hook_build, tmp_path, count=2)


def proceed(proc: subprocess.Popen[str]) -> None:
    """Let a probe blocked in its `wait` command go on."""
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def wait_for_line(proc: subprocess.Popen[str], prefix: str) -> str:
    """Next stdout line of proc starting with prefix (the probes print one line per command)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"process ended before printing {prefix!r}")
