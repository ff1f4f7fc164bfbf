"""Fixtures for the simulated GPU (native/fakegpu), shared by every part's tests.

The simulated GPU is a fake ``libcuda.so.1`` and ``libnvidia-ml.so.1`` over one shared state
file per simulated machine, plus two tools: ``fakegpu-ctl create`` makes a state file,
``fakegpu-dump`` prints the machine's ground truth as JSON (straight from the file, so no
hook can change it). Build it with ``make -C native/fakegpu`` (outputs in build/fakegpu).

Typical use::

    def test_something(fake_machine: FakeMachineFactory) -> None:
        machine = fake_machine(count=2, mem="16G,80G")
        result = machine.run([str(machine.build.program("test-drv-api")), "basic"])
        assert machine.device(0)["memory_used"] == 0

``machine.env`` holds only ``FAKEGPU_STATE`` and ``LD_LIBRARY_PATH``; merge it into the
environment of anything that should see the machine (``machine.process_env()`` does that
over ``os.environ``). Times in dumps are CLOCK_MONOTONIC nanoseconds, the same clock as
``time.monotonic_ns()``, so a test can ask for busy time within exactly the interval it timed.

Kernel durations: a kernel whose name contains ``fakegpu_ns`` lasts as many nanoseconds as
its first (uint64) parameter; other kernels last ceil(blocks / (SMs x blocks_per_sm)) x
kernel_ns. ``test-drv-api launch NS COUNT`` and ``test-drv-api busy MS US`` use the first.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from conftest import REQUIRE_NATIVE, REQUIRE_NVCC_PROGRAMS, skip_or_fail

REPO = Path(__file__).resolve().parent.parent
#: Where ``make`` puts the simulated GPU; VGPU_FAKEGPU_BUILD points elsewhere.
DEFAULT_BUILD = Path(os.environ.get("VGPU_FAKEGPU_BUILD", str(REPO / "build" / "fakegpu")))


@dataclass(frozen=True)
class FakeGpuBuild:
    """The built simulated GPU: libraries directory, tools and test programs."""

    dir: Path

    @property
    def libcuda(self) -> Path:
        return self.dir / "libcuda.so.1"

    @property
    def libnvml(self) -> Path:
        return self.dir / "libnvidia-ml.so.1"

    @property
    def ctl(self) -> Path:
        return self.dir / "fakegpu-ctl"

    @property
    def dump(self) -> Path:
        return self.dir / "fakegpu-dump"

    def program(self, name: str) -> Path:
        """A test program (``test-drv-api``, ``test-rt-basic``, ...); skips or fails if absent.

        Driver-API programs: test-drv-api (linked -lcuda), test-drv-dlsym, test-drv-procaddr.
        Runtime programs (nvcc): test-rt-basic (cudart 13), test-rt-cudart12, test-rt-broad.
        """
        path = self.dir / name
        if not path.is_file():
            nvcc_program = name.startswith("test-rt-")
            skip_or_fail(f"{path} not built (make -C native/fakegpu"
                         + ("; needs nvcc)" if nvcc_program else ")"),
                         REQUIRE_NVCC_PROGRAMS if nvcc_program else REQUIRE_NATIVE)
        return path


def find_fakegpu_build(path: Path = DEFAULT_BUILD) -> FakeGpuBuild | None:
    """The build at ``path`` if its libraries and tools are all there, else None."""
    build = FakeGpuBuild(path)
    needed = (build.libcuda, build.libnvml, build.ctl, build.dump)
    return build if all(p.is_file() for p in needed) else None


@dataclass
class FakeMachine:
    """One simulated machine: its state file and the environment that selects it."""

    build: FakeGpuBuild
    state: Path
    env: dict[str, str]
    uuids: list[str] = field(default_factory=list)

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """``os.environ`` plus this machine's variables (and ``extra``)."""
        env = dict(os.environ)
        env.update(self.env)
        if extra:
            env.update(extra)
        return env

    def dump(
        self, window_ms: int | None = None, from_ns: int | None = None, to_ns: int | None = None
    ) -> dict[str, Any]:
        """Ground truth (fakegpu-dump JSON). Busy times cover the last ``window_ms`` or
        [from_ns, to_ns] (CLOCK_MONOTONIC); default: the machine's utilization window."""
        args = [str(self.build.dump), "--state", str(self.state)]
        if window_ms is not None:
            args += ["--window-ms", str(window_ms)]
        if from_ns is not None:
            args += ["--from-ns", str(from_ns)]
        if to_ns is not None:
            args += ["--to-ns", str(to_ns)]
        out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def device(self, index: int = 0, **window: int) -> dict[str, Any]:
        """One device's entry of :meth:`dump` (same window keywords)."""
        devices: list[dict[str, Any]] = self.dump(**window)["devices"]
        return devices[index]

    def run(
        self,
        args: Sequence[str],
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a program on this machine; output captured as text."""
        return subprocess.run(
            list(args), env=self.process_env(extra_env), capture_output=True, text=True,
            timeout=timeout, check=check,
        )

    def popen(
        self, args: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start a program on this machine (stdout piped as text); the caller waits for it."""
        return subprocess.Popen(
            list(args), env=self.process_env(extra_env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )


def create_fake_machine(
    build: FakeGpuBuild,
    state: Path,
    count: int = 1,
    mem: str = "16G",
    *,
    sms: str | None = None,
    name: str | None = None,
    cc: str | None = None,
    uuids: Sequence[str] | None = None,
    pci: Sequence[str] | None = None,
    kernel_ns: int | None = None,
    blocks_per_sm: int | None = None,
    alloc_granularity: str | None = None,
    util_window_ms: int | None = None,
    ctx_overhead: str | None = "0",
    timeslice_us: int | None = None,
    switch_us: int | None = None,
    sample_ms: int | None = None,
    sensors: str | None = None,
) -> FakeMachine:
    """Create the state file ``state`` (fakegpu-ctl create --force) and describe the machine.

    ``mem``, ``sms`` and ``name`` take comma-separated per-device values (the last repeats),
    e.g. ``mem="16G,80G"``. ``ctx_overhead`` (e.g. ``"500M"``) charges each CUDA context that
    much device memory, as real contexts take; tests pass ``None`` for the simulated GPU's
    realistic default (512 MiB) and get ``"0"`` unless they ask. Scheduling and sensors are the
    simulated GPU's realistic defaults (4.5 ms time slices, 0.5 ms switches, NVML samples every
    200 ms) unless ``timeslice_us``, ``switch_us``, ``sample_ms`` or ``sensors="ideal"`` say
    otherwise (no accuracy figure may be measured with ideal sensors).
    """
    args = [str(build.ctl), "create", "--force", "--state", str(state), "--count", str(count),
            "--mem", mem]
    options: list[tuple[str, str | None]] = [
        ("--sms", sms), ("--name", name), ("--cc", cc),
        ("--uuid", ",".join(uuids) if uuids else None), ("--pci", ",".join(pci) if pci else None),
        ("--kernel-ns", None if kernel_ns is None else str(kernel_ns)),
        ("--blocks-per-sm", None if blocks_per_sm is None else str(blocks_per_sm)),
        ("--alloc-granularity", alloc_granularity),
        ("--util-window-ms", None if util_window_ms is None else str(util_window_ms)),
        ("--ctx-overhead", ctx_overhead),
        ("--timeslice-us", None if timeslice_us is None else str(timeslice_us)),
        ("--switch-us", None if switch_us is None else str(switch_us)),
        ("--sample-ms", None if sample_ms is None else str(sample_ms)),
        ("--sensors", sensors),
    ]
    for opt, value in options:
        if value is not None:
            args += [opt, value]
    # Only the machine's own variables: FAKEGPU_* from the caller must not leak in.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAKEGPU_")}
    subprocess.run(args, check=True, capture_output=True, text=True, env=clean, timeout=30)
    lib_path = os.environ.get("LD_LIBRARY_PATH", "")
    env = {
        "FAKEGPU_STATE": str(state),
        "LD_LIBRARY_PATH": f"{build.dir}:{lib_path}" if lib_path else str(build.dir),
    }
    machine = FakeMachine(build=build, state=state, env=env)
    machine.uuids = [d["uuid"] for d in machine.dump()["devices"]]
    return machine


class FakeMachineFactory(Protocol):
    """Signature of the ``fake_machine`` fixture: the keywords of :func:`create_fake_machine`."""

    def __call__(self, count: int = 1, mem: str = "16G", **options: Any) -> FakeMachine: ...


@pytest.fixture(scope="session")
def fakegpu_build() -> FakeGpuBuild:
    """The built simulated GPU (build/fakegpu); skips, or fails with VGPU_REQUIRE_NATIVE=1."""
    build = find_fakegpu_build()
    if build is None:
        skip_or_fail(f"simulated GPU not built in {DEFAULT_BUILD} (make -C native/fakegpu)",
                     REQUIRE_NATIVE)
        raise AssertionError("unreachable")
    return build


@pytest.fixture
def fake_machine(fakegpu_build: FakeGpuBuild, tmp_path: Path) -> FakeMachineFactory:
    """Factory for simulated machines with state files in ``tmp_path``.

    ``fake_machine(count=2, mem="16G,80G", sms="108,132", kernel_ns=50_000)`` returns a
    :class:`FakeMachine`; each call makes a new machine (its own state file).
    """
    made: list[int] = []

    def make(count: int = 1, mem: str = "16G", **options: Any) -> FakeMachine:
        made.append(1)
        state = tmp_path / f"fakegpu-{len(made)}.state"
        return create_fake_machine(fakegpu_build, state, count, mem, **options)

    return make


#: Runs a callable with a pynvml-using Python snippet against a machine (in a subprocess, so
#: the test process never binds libnvidia-ml.so.1 itself).
PynvmlRunner = Callable[[FakeMachine, str], dict[str, Any]]


@pytest.fixture
def run_pynvml() -> PynvmlRunner:
    """``run_pynvml(machine, code)``: run ``code`` (which must set a JSON-able ``result``)
    with pynvml bound to the fake via LD_LIBRARY_PATH; returns ``result``."""

    def run(machine: FakeMachine, code: str) -> dict[str, Any]:
        script = f"import json, pynvml\n{code}\nprint(json.dumps(result))\n"
        out = machine.run(["python3", "-c", script], timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"pynvml snippet failed: {out.stderr}")
        data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return data

    return run
