"""The daemon's YAML configuration: typed dataclasses, defaults, and schema validation.

`load_config(path)` reads the file with yaml.safe_load and validates every field; any problem
raises ConfigError naming the field (e.g. `share.idle_after_seconds`) and what to write
instead. `PolicyConfig` is the part the policies (and the trace simulator) need.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.policies.decide.lent_file import valid_name

DEFAULT_CONFIG_PATH = Path("/etc/slurm-vgpu/vgpu-daemon.yaml")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ShareConfig:
    enabled: bool = True
    # A job whose compute stayed below active_threshold_permille for this long is idle: its
    # guaranteed share is lent to active burst jobs on the same GPU.
    idle_after_seconds: float = 10.0
    active_threshold_permille: int = 20
    # Highest share a burst job may be given (its guarantee plus what it borrows).
    max_burst_permille: int = 1000
    # Raises smaller than this are not written (decreases always are).
    min_change_permille: int = 10
    # Lend the compute of unallocated slices too, not only that of idle jobs.
    lend_unallocated: bool = True


@dataclass(frozen=True, slots=True)
class BackfillConfig:
    enabled: bool = False
    # Slices whose owner used no compute for this long are offered back to Slurm.
    idle_after_seconds: float = 300.0
    # Jobs in these partitions or QOS accept preemption; only they may run on lent slices.
    preemptible_partitions: tuple[str, ...] = ()
    preemptible_qos: tuple[str, ...] = ()
    # Compute share a backfilled job keeps while an owner of its GPU is active.
    throttle_permille: int = 0
    # Upper bound on the slices a node lends at once (None: no bound beyond the idle ones).
    max_offer_slices: int | None = None
    # After the SPANK plugin reports that a job that is not preemptible was started on lent
    # slices (<runtime_dir>/lent.refused), the node lends nothing for this long.
    holdoff_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class PackingConfig:
    enabled: bool = False
    # Node weight = base_weight + free_gpu_weight x (GPUs with no slice allocated)
    # + free_slice_weight x (free slices on partly used GPUs); slurmctld prefers the lowest
    # weight, so partly used nodes fill up before whole GPUs are broken, the fullest first.
    # free_gpu_weight above free_slice_weight x the most free slices a node's partly used
    # GPUs can hold (8 GPUs of up to 100 slices: 792) keeps the two terms in that order.
    base_weight: int = 100
    free_gpu_weight: int = 1000
    free_slice_weight: int = 1
    # A node with no sliced GPU keeps its weight (the daemon leaves it alone).


@dataclass(frozen=True, slots=True)
class BackstopConfig:
    enabled: bool = True
    # "cancel_step" (default): log + metric + alert + AdminComment, and scancel the offending
    # step; "record": the same without the scancel, for sites that only want to watch.
    action: str = "cancel_step"
    # Device memory a job may hold above its cap before the backstop acts: a fixed amount plus
    # an amount per process (each CUDA context costs device memory the hook does not count;
    # a few hundred MiB on real GPUs, nothing on the simulated one).
    tolerance_bytes: int = 0
    tolerance_bytes_per_process: int = 0
    # Also report device memory held on sliced GPUs by processes of no known job.
    report_unattributed: bool = True
    # Kill (SIGKILL) non-root processes on sliced GPUs that belong to no job step.
    kill_unattributed: bool = True
    # Compare each job's device time (NVML, per process) with its share every period.
    compute: bool = True
    # Device time above the share tolerated over one period (the hook's own bucket may run
    # 25 % of a period ahead; NVML samples are coarse on real GPUs).
    compute_tolerance_permille: int = 150


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    share: ShareConfig = field(default_factory=ShareConfig)
    backfill: BackfillConfig = field(default_factory=BackfillConfig)
    packing: PackingConfig = field(default_factory=PackingConfig)
    backstop: BackstopConfig = field(default_factory=BackstopConfig)


@dataclass(frozen=True, slots=True)
class SlurmConfig:
    # "auto": pyslurm when one matching the installed Slurm imports, else the JSON CLIs.
    client: str = "auto"
    command_timeout_seconds: float = 10.0
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    # Poll Slurm at most this often (0: every control period). Every node's daemon reads the
    # whole job list (squeue --json cannot filter in 22.05); large clusters may poll less
    # often while shares keep being adjusted every period on the last job list.
    poll_interval_seconds: float = 0.0
    # Directory holding squeue/sinfo/scontrol/scancel; None: search PATH.
    bin_dir: str | None = None
    # The cluster controller's job and node reads: "auto" (the installed vgpu-slurm-read,
    # libslurm printing only what the controller uses; squeue's formatted output and sinfo's
    # JSON where it is not installed), "cli" (those always), or a vgpu-slurm-read's path.
    reader: str = "auto"
    # `vgpu controller` with vgpu-slurm-read on Slurm 24.05+: read the whole job table this
    # often, in the background, and only job states (REQUEST_JOB_STATE) in the cycles between
    # (0: the whole table every cycle). At most JOB_TABLE_REFRESH_MAX_SECONDS: a job submitted
    # and started between two reads is known to its agent only from its limits file meanwhile.
    job_table_refresh_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    address: str = "0.0.0.0"
    port: int = 9817


@dataclass(frozen=True, slots=True)
class AccountingConfig:
    # Write each job's utilization summary into its AdminComment (docs/accounting.md).
    enabled: bool = True
    # Also refresh it this often while the job runs (0: only when the job ends), so a daemon
    # that dies leaves a recent summary behind.
    update_interval_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """The directory the cluster controller and the node agents talk through (exchange.py)."""

    # None: not split (`vgpu daemon`); `vgpu agent` and `vgpu controller` need it.
    dir: str | None = None
    # An agent that has not heard the controller (or a controller that has not heard an agent)
    # for this long treats it as gone: the agent lends nothing, the controller withdraws the
    # node's lent slices.
    stale_after_seconds: float = 30.0
    # Users besides root whose files an agent believes (the controller may run as SlurmUser).
    writers: tuple[str, ...] = ("slurm",)


@dataclass(frozen=True, slots=True)
class SteeringConfig:
    """The controller's placement steering (docs/placement.md): it names the node of each new
    vgpu batch job that job_submit.lua holds for it."""

    enabled: bool = False
    # read by job_submit.lua (its STEER_FILE) on the slurmctld host, where the controller runs
    file: str = "/run/slurm-vgpu/steering"
    # how long the lua holds a new job (0: two control periods); a held job the controller
    # does not steer in time starts then, where Slurm puts it
    hold_seconds: float = 0.0
    # a steered job still pending this long (its node filled up meanwhile) is steered again
    resteer_after_seconds: float = 15.0
    # the request mix the fragmentation is measured under: the last N held jobs' requests
    history_jobs: int = 2000
    # CPU-only batch jobs in partitions of managed GPU nodes only are held and steered too
    # while more than this share of those nodes' CPUs is allocated, and more than of their
    # GPUs (1: never)
    cpu_jobs_above: float = 0.9


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    # Slurm node name(s) this daemon manages; () means this host's short name.
    nodes: tuple[str, ...] = ()
    control_period_seconds: float = 5.0
    runtime_dir: str = "/run/slurm-vgpu"
    inventory_path: str = "/etc/slurm-vgpu/inventory.conf"
    log_level: str = "info"
    nvml: bool = True
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    accounting: AccountingConfig = field(default_factory=AccountingConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    steering: SteeringConfig = field(default_factory=SteeringConfig)


# ---------------------------------------------------------------------------------------------
# Validation: small typed readers, each naming the field on failure.


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


class _Section:
    """Reads typed fields of one mapping, remembering which keys were used."""

    def __init__(self, data: object, where: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where or 'top level'}: expected a mapping, got {_type_name(data)}")
        self.data: Mapping[Any, Any] = data
        self.where = where
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, default: T, check: Callable[[object], T | None], want: str) -> T:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        result = check(value)
        if result is None:
            raise ConfigError(f"{self.name(key)}: expected {want}, got {value!r}")
        return result

    def boolean(self, key: str, default: bool) -> bool:
        return self._get(key, default, lambda v: v if isinstance(v, bool) else None,
                         "true or false")

    def number(self, key: str, default: float, minimum: float = 0.0,
               maximum: float | None = None) -> float:
        def check(v: object) -> float | None:
            if isinstance(v, bool) or not isinstance(v, int | float):
                return None
            if v < minimum or (maximum is not None and v > maximum):
                return None
            return float(v)
        bound = f" <= {maximum}" if maximum is not None else ""
        return self._get(key, default, check, f"a number >= {minimum}{bound}")

    def integer(self, key: str, default: int, minimum: int = 0,
                maximum: int | None = None) -> int:
        def check(v: object) -> int | None:
            if isinstance(v, bool) or not isinstance(v, int):
                return None
            if v < minimum or (maximum is not None and v > maximum):
                return None
            return v
        bound = f" and <= {maximum}" if maximum is not None else ""
        return self._get(key, default, check, f"an integer >= {minimum}{bound}")

    def optional_integer(self, key: str, minimum: int = 0) -> int | None:
        self.used.add(key)
        if self.data.get(key) is None:
            return None
        return self.integer(key, 0, minimum)

    def string(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        def check(v: object) -> str | None:
            if not isinstance(v, str) or not v:
                return None
            if choices and v not in choices:
                return None
            return v
        want = "one of " + ", ".join(choices) if choices else "a non-empty string"
        return self._get(key, default, check, want)

    def optional_string(self, key: str) -> str | None:
        self.used.add(key)
        if self.data.get(key) is None:
            return None
        return self.string(key, "")

    def string_list(self, key: str) -> tuple[str, ...]:
        def check(v: object) -> tuple[str, ...] | None:
            if isinstance(v, str) and v:
                return (v,)
            if isinstance(v, list) and all(isinstance(x, str) and x for x in v):
                return tuple(v)
            return None
        return self._get(key, (), check, "a list of non-empty strings")

    def section(self, key: str) -> _Section:
        self.used.add(key)
        return _Section(self.data.get(key), self.name(key))

    def done(self) -> None:
        unknown = sorted(str(k) for k in self.data if str(k) not in self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise ConfigError(f"{self.name(unknown[0])}: unknown setting (known here: {known})")


def _share(s: _Section) -> ShareConfig:
    d = ShareConfig()
    cfg = ShareConfig(
        enabled=s.boolean("enabled", d.enabled),
        idle_after_seconds=s.number("idle_after_seconds", d.idle_after_seconds),
        active_threshold_permille=s.integer("active_threshold_permille",
                                            d.active_threshold_permille, 0, 1000),
        max_burst_permille=s.integer("max_burst_permille", d.max_burst_permille, 0, 1000),
        min_change_permille=s.integer("min_change_permille", d.min_change_permille, 0, 1000),
        lend_unallocated=s.boolean("lend_unallocated", d.lend_unallocated),
    )
    s.done()
    return cfg


def _backfill(s: _Section) -> BackfillConfig:
    d = BackfillConfig()
    cfg = BackfillConfig(
        enabled=s.boolean("enabled", d.enabled),
        idle_after_seconds=s.number("idle_after_seconds", d.idle_after_seconds),
        preemptible_partitions=s.string_list("preemptible_partitions"),
        preemptible_qos=s.string_list("preemptible_qos"),
        throttle_permille=s.integer("throttle_permille", d.throttle_permille, 0, 1000),
        max_offer_slices=s.optional_integer("max_offer_slices"),
        holdoff_seconds=s.number("holdoff_seconds", d.holdoff_seconds, 1.0, 7 * 86400.0),
    )
    s.done()
    for key in ("preemptible_partitions", "preemptible_qos"):
        bad = [n for n in getattr(cfg, key) if not valid_name(n)]
        if bad:
            raise ConfigError(
                f"{s.name(key)}: {bad[0]!r} is not a partition/QOS name (printable, no spaces, "
                "',', '=' or '#'; it is written to the SPANK plugin's lent file)")
    if cfg.enabled and not (cfg.preemptible_partitions or cfg.preemptible_qos):
        raise ConfigError(
            f"{s.name('preemptible_partitions')}: backfill is enabled but no preemptible "
            "partition or QOS is named; lent slices may only go to jobs that accept preemption "
            "(set backfill.preemptible_partitions or backfill.preemptible_qos)"
        )
    return cfg


def _packing(s: _Section) -> PackingConfig:
    d = PackingConfig()
    cfg = PackingConfig(
        enabled=s.boolean("enabled", d.enabled),
        base_weight=s.integer("base_weight", d.base_weight, 1, 2**31),
        free_gpu_weight=s.integer("free_gpu_weight", d.free_gpu_weight, 0, 2**20),
        free_slice_weight=s.integer("free_slice_weight", d.free_slice_weight, 0, 2**10),
    )
    s.done()
    if cfg.free_gpu_weight < 100 * cfg.free_slice_weight:
        # a config written for the weight without the slice term (free_gpu_weight: 10)
        raise ConfigError(
            f"{s.name('free_gpu_weight')}: {cfg.free_gpu_weight} is below 100 x "
            f"free_slice_weight ({cfg.free_slice_weight}), so free slices on used GPUs would "
            "outweigh untouched GPUs; raise it (default 1000) or set free_slice_weight: 0")
    return cfg


def _backstop(s: _Section) -> BackstopConfig:
    d = BackstopConfig()
    cfg = BackstopConfig(
        enabled=s.boolean("enabled", d.enabled),
        action=s.string("action", d.action, ("record", "cancel_step")),
        tolerance_bytes=s.integer("tolerance_bytes", d.tolerance_bytes, 0),
        tolerance_bytes_per_process=s.integer("tolerance_bytes_per_process",
                                              d.tolerance_bytes_per_process, 0),
        report_unattributed=s.boolean("report_unattributed", d.report_unattributed),
        kill_unattributed=s.boolean("kill_unattributed", d.kill_unattributed),
        compute=s.boolean("compute", d.compute),
        compute_tolerance_permille=s.integer("compute_tolerance_permille",
                                             d.compute_tolerance_permille, 0, 1000),
    )
    s.done()
    return cfg


def policy_config_from_dict(data: object, where: str = "") -> PolicyConfig:
    """Validate the policy sections (share, backfill, packing, backstop) of a mapping."""
    s = _Section(data, where)
    cfg = PolicyConfig(
        share=_share(s.section("share")),
        backfill=_backfill(s.section("backfill")),
        packing=_packing(s.section("packing")),
        backstop=_backstop(s.section("backstop")),
    )
    s.done()
    return cfg


# observer.py's JUST_STARTED_GRACE_SECONDS (60 s) less a period and a late report to spare
JOB_TABLE_REFRESH_MAX_SECONDS = 45.0


def _job_table_refresh(value: float) -> float:
    if value > JOB_TABLE_REFRESH_MAX_SECONDS:
        raise ConfigError(
            f"slurm.job_table_refresh_seconds: {value:g} is more than "
            f"{JOB_TABLE_REFRESH_MAX_SECONDS:g}: a job submitted and started between two reads "
            f"of the job table must be listed to its agent within its 60 s grace; use 30 (the "
            f"default) or less, or 0 to read the whole table every cycle")
    return value


def _reader(value: str) -> str:
    if value in ("auto", "cli"):
        return value
    if not os.path.isabs(value):
        raise ConfigError(f"slurm.reader: {value!r} is neither auto, cli nor an absolute "
                          "path: give the path of vgpu-slurm-read "
                          "(e.g. /usr/lib/slurm-vgpu/vgpu-slurm-read)")
    return value  # the controller checks it is there (agents share the file, not the need)


def config_from_dict(data: object) -> DaemonConfig:
    """Validate a whole daemon config (the parsed YAML document)."""
    top = _Section(data, "")
    d = DaemonConfig()
    nodes = top.string_list("nodes")
    period = top.number("control_period_seconds", d.control_period_seconds, 0.05)
    runtime_dir = top.string("runtime_dir", d.runtime_dir)
    inventory_path = top.string("inventory", d.inventory_path)
    log_level = top.string("log_level", d.log_level, ("debug", "info", "warning", "error"))
    nvml = top.boolean("nvml", d.nvml)

    ss = top.section("slurm")
    sd = SlurmConfig()
    slurm = SlurmConfig(
        client=ss.string("client", sd.client, ("auto", "cli", "pyslurm")),
        command_timeout_seconds=ss.number("command_timeout_seconds",
                                          sd.command_timeout_seconds, 0.1),
        backoff_initial_seconds=ss.number("backoff_initial_seconds",
                                          sd.backoff_initial_seconds, 0.01),
        backoff_max_seconds=ss.number("backoff_max_seconds", sd.backoff_max_seconds, 0.01),
        poll_interval_seconds=ss.number("poll_interval_seconds", sd.poll_interval_seconds),
        bin_dir=ss.optional_string("bin_dir"),
        reader=_reader(ss.string("reader", sd.reader)),
        job_table_refresh_seconds=_job_table_refresh(ss.number(
            "job_table_refresh_seconds", sd.job_table_refresh_seconds)),
    )
    ss.done()

    ms = top.section("metrics")
    md = MetricsConfig()
    metrics = MetricsConfig(
        enabled=ms.boolean("enabled", md.enabled),
        address=ms.string("address", md.address),
        port=ms.integer("port", md.port, 0, 65535),
    )
    ms.done()

    acs = top.section("accounting")
    ad = AccountingConfig()
    accounting = AccountingConfig(
        enabled=acs.boolean("enabled", ad.enabled),
        update_interval_seconds=acs.number("update_interval_seconds",
                                           ad.update_interval_seconds),
    )
    acs.done()

    xs = top.section("exchange")
    xd = ExchangeConfig()
    exchange = ExchangeConfig(
        dir=xs.optional_string("dir"),
        stale_after_seconds=xs.number("stale_after_seconds", xd.stale_after_seconds, 1.0),
        writers=xs.string_list("writers") if "writers" in xs.data else xd.writers,
    )
    xs.done()
    if exchange.dir is not None and not exchange.dir.startswith("/"):
        raise ConfigError(f"exchange.dir: expected an absolute path, got {exchange.dir!r}")

    sts = top.section("steering")
    sd_ = SteeringConfig()
    steering = SteeringConfig(
        enabled=sts.boolean("enabled", sd_.enabled),
        file=sts.string("file", sd_.file),
        hold_seconds=sts.number("hold_seconds", sd_.hold_seconds, 0.0, 600.0),
        resteer_after_seconds=sts.number("resteer_after_seconds", sd_.resteer_after_seconds,
                                         1.0),
        history_jobs=sts.integer("history_jobs", sd_.history_jobs, 10, 1_000_000),
        cpu_jobs_above=sts.number("cpu_jobs_above", sd_.cpu_jobs_above, 0.0, 1.0),
    )
    sts.done()
    if not steering.file.startswith("/"):
        raise ConfigError(f"steering.file: expected an absolute path, got {steering.file!r}")

    sections = {k: top.data.get(k) for k in ("share", "backfill", "packing", "backstop")}
    policy = policy_config_from_dict({k: v for k, v in sections.items() if v is not None})
    top.used.update(sections)
    top.done()
    return DaemonConfig(
        nodes=nodes, control_period_seconds=period, runtime_dir=runtime_dir,
        inventory_path=inventory_path, log_level=log_level, nvml=nvml, slurm=slurm,
        metrics=metrics, accounting=accounting, policy=policy, exchange=exchange,
        steering=steering,
    )


def load_config(path: Path) -> DaemonConfig:
    """Read and validate a YAML config file. A missing file is an error (explicit path)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                          f"{e.start}); save it as UTF-8") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    try:
        return config_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
