"""`vgpu simulate`: replay cluster traces through the placement and sharing policies."""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from slurm_vgpu.policies.sim.traces import TraceError, trace_data_dir


class Progress:
    """A one-line progress bar on stderr, only on a terminal or when asked."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = max(total, 1), label, enabled
        self.done = 0
        self._shown = -1

    def tick(self) -> None:
        self.done += 1
        pct = self.done * 100 // self.total
        if self.enabled and pct != self._shown:
            self._shown = pct
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r{self.label} [{bar:<25}] {pct:3d}%")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _progress_enabled(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    text = json.dumps(data, separators=(",", ":"))
    if path is None:
        click.echo(text)
    else:
        path.write_text(text + "\n")


@click.group()
def simulate() -> None:
    """Replay cluster traces (static FGD protocol, dynamic Philly replay, capacity)."""


@simulate.command("static")
@click.option("--nodes", "nodes_path", type=click.Path(path_type=Path), required=True,
              help="openb-format node list CSV.")
@click.option("--jobs", "jobs_path", type=click.Path(path_type=Path), required=True,
              help="openb-format job (pod) list CSV.")
@click.option("--policy", "policies", multiple=True, default=("random", "bestfit", "vgpu"),
              show_default=True, type=click.Choice(["random", "bestfit", "vgpu", "weights", "fgd"]),
              help="Placement policies; fgd (the paper's, our implementation) is a reference "
                   "and about 10x slower.")
@click.option("--seeds", default="42-51", show_default=True,
              help="Seeds: N, A-B or a comma list.")
@click.option("--slice-milli", "slice_millis", multiple=True, type=click.IntRange(1, 1000),
              default=(1,), show_default=True,
              help="Slice size in milli-GPU (1 exact, 10 = 1%, 100 = 10%); repeatable.")
@click.option("--inflation", default=1.3, show_default=True, type=click.FloatRange(1.0, 5.0))
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the results JSON here (default: stdout after the table).")
@click.option("--png", type=click.Path(path_type=Path), default=None,
              help="Plot allocation vs arrived workload to this PNG.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: only on a terminal).")
def static_cmd(nodes_path: Path, jobs_path: Path, policies: tuple[str, ...], seeds: str,
               slice_millis: tuple[int, ...], inflation: float, json_path: Path | None,
               png: Path | None, progress: bool | None) -> None:
    """The FGD paper's static protocol: unallocated GPU % at 100 % arrived workload."""
    from slurm_vgpu.policies.sim.sim_static import run_static
    from slurm_vgpu.policies.sim.traces import load_jobs, load_nodes

    seed_list = parse_seeds(seeds)
    try:
        nodes = load_nodes(nodes_path)
        jobs = load_jobs(jobs_path)
    except TraceError as e:
        raise click.ClickException(str(e)) from e
    runs = [(p, m, s) for p in policies for m in slice_millis for s in seed_list]
    bar = Progress(len(runs), "simulate", _progress_enabled(progress))
    results = []
    for policy, milli, seed in runs:
        results.append(run_static(nodes, jobs, policy, seed, milli, inflation))
        bar.tick()
    summary = []
    for policy in policies:
        for milli in slice_millis:
            rs = [r for r in results if r.policy == policy and r.slice_milli == milli]
            un = [r.unallocated_pct_at_100 for r in rs]
            summary.append({
                "policy": policy, "slice_milli": milli, "seeds": len(rs),
                "unallocated_pct_mean": round(statistics.mean(un), 3),
                "unallocated_pct_std": round(statistics.stdev(un), 3) if len(un) > 1 else 0.0,
                "rounding_pct_mean": round(statistics.mean(r.rounding_pct_at_100 for r in rs), 3),
                # capacity not serving requested work: unallocated plus rounding
                "lost_pct_mean": round(statistics.mean(
                    r.unallocated_pct_at_100 + r.rounding_pct_at_100 for r in rs), 3),
                "failed_jobs_mean": round(statistics.mean(r.jobs_failed for r in rs), 1),
            })
    click.echo(f"{'POLICY':<9} {'SLICE':>6} {'SEEDS':>5} {'UNALLOC%':>9} {'STD':>6} "
               f"{'ROUNDING%':>9} {'LOST%':>6}", err=json_path is None)
    for row in summary:
        click.echo(f"{row['policy']:<9} {row['slice_milli']:>6} {row['seeds']:>5} "
                   f"{row['unallocated_pct_mean']:>9.2f} {row['unallocated_pct_std']:>6.2f} "
                   f"{row['rounding_pct_mean']:>9.2f} {row['lost_pct_mean']:>6.2f}",
                   err=json_path is None)
    data = {"protocol": "fgd-static", "nodes": str(nodes_path), "jobs": str(jobs_path),
            "inflation": inflation, "seeds": seed_list, "summary": summary,
            "runs": [r.__dict__ for r in results]}
    if png is not None:
        from slurm_vgpu.policies.sim.plots import plot_static
        plot_static(data, png)
    _write_json(json_path, data)


@simulate.command("variant")
@click.option("--nodes", "nodes_path", type=click.Path(path_type=Path), required=True,
              help="openb-format node list CSV (the models a gpu_spec may name).")
@click.option("--jobs", "jobs_path", type=click.Path(path_type=Path), required=True,
              help="openb-format job (pod) list CSV to start from.")
@click.option("--gpu-spec-share", type=click.FloatRange(0.0, 1.0), default=None,
              help="Share of GPU jobs that name the GPU model they accept (the FGD paper: "
                   "0.33).")
@click.option("--multi-gpu-share", type=click.FloatRange(0.0, 0.99), default=None,
              help="Add multi-GPU jobs until they ask for this share of all GPU requests.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True,
              help="Write the new job list (openb columns) here.")
def variant_cmd(nodes_path: Path, jobs_path: Path, gpu_spec_share: float | None,
                multi_gpu_share: float | None, seed: int, out_path: Path) -> None:
    """A workload variant of an openb job list, built as the FGD paper builds its own."""
    from slurm_vgpu.policies.sim.traces import load_jobs, load_nodes
    from slurm_vgpu.policies.sim.variants import to_csv, with_gpu_spec, with_multi_gpu

    if gpu_spec_share is None and multi_gpu_share is None:
        raise click.UsageError("give --gpu-spec-share or --multi-gpu-share (or both)")
    try:
        nodes = load_nodes(nodes_path)
        jobs = load_jobs(jobs_path)
        if gpu_spec_share is not None:
            jobs = with_gpu_spec(jobs, nodes, gpu_spec_share, seed)
        if multi_gpu_share is not None:
            jobs = with_multi_gpu(jobs, multi_gpu_share, seed)
    except TraceError as e:
        raise click.ClickException(str(e)) from e
    try:
        out_path.write_text(to_csv(jobs))
    except OSError as e:
        raise click.ClickException(f"{out_path}: cannot write: {e.strerror}") from e
    click.echo(f"{out_path}: {len(jobs)} jobs, "
               f"{sum(1 for j in jobs if j.gpu_spec)} naming GPU models, "
               f"{sum(1 for j in jobs if j.num_gpu > 1)} multi-GPU")


def parse_seeds(text: str) -> list[int]:
    try:
        if "-" in text:
            a, b = text.split("-", 1)
            seeds = list(range(int(a), int(b) + 1))
        else:
            seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as e:
        raise click.BadParameter(f"{text!r}: use N, A-B or N,M,...", param_hint="--seeds") from e
    if not seeds:
        raise click.BadParameter(f"{text!r} names no seed", param_hint="--seeds")
    return seeds


DATA_DEFAULT = trace_data_dir()


def _replay_options(seeds_default: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The options `dynamic` and `capacity` share: the traces, the job window, the regimes."""
    options = [
        click.option("--philly", type=click.Path(path_type=Path),
                     default=DATA_DEFAULT / "philly" / "philly_jobs.csv", show_default=True),
        click.option("--shares", "shares_path", type=click.Path(path_type=Path),
                     default=DATA_DEFAULT / "openb" / "openb_pod_list_default.csv",
                     show_default=True,
                     help="openb job list: the distribution of fractional requests."),
        click.option("--util", "util_path", type=click.Path(path_type=Path),
                     default=DATA_DEFAULT / "genai-util" / "pod_gpu_duty_cycle_anon.csv",
                     show_default=True, help="GenAI duty-cycle trace: per-minute utilization."),
        click.option("--jobs", "n_jobs", default=2000, show_default=True,
                     type=click.IntRange(1)),
        click.option("--first-job", default=20000, show_default=True, type=click.IntRange(0)),
        click.option("--load", default=0.85, show_default=True,
                     type=click.FloatRange(0.05, 5.0),
                     help="Whole-GPU demand of the window over cluster capacity (sizes the "
                          "cluster)."),
        click.option("--mode", "modes", multiple=True,
                     default=("whole", "slices", "shared", "steered"), show_default=True,
                     type=click.Choice(["whole", "slices", "shared", "steered"])),
        click.option("--seeds", default=seeds_default, show_default=True),
        click.option("--json", "json_path", type=click.Path(path_type=Path), default=None),
        click.option("--png", type=click.Path(path_type=Path), default=None),
        click.option("--progress/--no-progress", default=None),
    ]

    def apply(f: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            f = option(f)
        return f
    return apply


def _echo_table(rows: list[dict[str, Any]],
                columns: list[tuple[str, int, Callable[[dict[str, Any]], str]]],
                err: bool) -> None:
    """One line per regime (its mode first), columns right-aligned to their widths; on stderr
    when the JSON goes to stdout."""
    click.echo(f"{'MODE':<7} " + " ".join(f"{h:>{w}}" for h, w, _ in columns), err=err)
    for row in rows:
        click.echo(f"{row['mode']:<7} " + " ".join(f"{cell(row):>{w}}" for _, w, cell in columns),
                   err=err)


def _replay_inputs(philly: Path, shares_path: Path, util_path: Path
                   ) -> tuple[list[Any], list[int], list[list[float]]]:
    from slurm_vgpu.policies.sim.traces import load_jobs, load_philly, load_util_series

    try:
        philly_jobs = load_philly(philly)
        shares = [j.gpu_milli for j in load_jobs(shares_path) if j.num_gpu == 1]
        utils = list(load_util_series(util_path).values())
    except TraceError as e:
        raise click.ClickException(str(e)) from e
    return philly_jobs, shares, utils


@simulate.command("dynamic")
@_replay_options("1")
def dynamic_cmd(philly: Path, shares_path: Path, util_path: Path, n_jobs: int, first_job: int,
                load: float, modes: tuple[str, ...], seeds: str, json_path: Path | None,
                png: Path | None, progress: bool | None) -> None:
    """Philly arrivals on a shrunk cluster: whole GPUs vs slices vs slices + sharing."""
    from slurm_vgpu.policies.sim.sim_dynamic import DynamicConfig, build_jobs, run_dynamic

    seed_list = parse_seeds(seeds)
    philly_jobs, shares, utils = _replay_inputs(philly, shares_path, util_path)
    cfg = DynamicConfig(jobs=n_jobs, first_job=first_job, load=load)
    results = []
    bar = Progress(len(seed_list) * len(modes), "simulate", _progress_enabled(progress))
    for seed in seed_list:
        try:
            jobs, gpus = build_jobs(philly_jobs, shares, utils, cfg, seed)
        except ValueError as e:
            raise click.ClickException(str(e)) from e
        for mode in modes:
            results.append(run_dynamic(jobs, gpus, mode, seed, cfg))
            bar.tick()
    keys = ("mean_wait_s", "p95_wait_s", "allocation_pct", "effective_util_pct",
            "mean_slowdown", "p95_slowdown", "backfilled_jobs")
    summary = []
    for mode in modes:
        rs = [r for r in results if r.mode == mode]
        row: dict[str, Any] = {"mode": mode, "seeds": len(rs), "gpus": rs[0].gpus}
        for k in keys:
            row[k] = round(statistics.mean(float(getattr(r, k)) for r in rs), 3)
        summary.append(row)
    _echo_table(summary, [
        ("GPUS", 5, lambda r: f"{r['gpus']}"),
        ("WAIT-MEAN", 10, lambda r: f"{r['mean_wait_s']:.0f}s"),
        ("WAIT-P95", 9, lambda r: f"{r['p95_wait_s']:.0f}s"),
        ("ALLOC%", 7, lambda r: f"{r['allocation_pct']:.1f}"),
        ("UTIL%", 6, lambda r: f"{r['effective_util_pct']:.1f}"),
        ("SLOW", 6, lambda r: f"{r['mean_slowdown']:.3f}"),
        ("SLOW-P95", 8, lambda r: f"{r['p95_slowdown']:.3f}"),
        ("BACKFILL", 8, lambda r: f"{r['backfilled_jobs']:.0f}"),
    ], err=json_path is None)
    data = {"protocol": "philly-dynamic", "philly": str(philly), "shares": str(shares_path),
            "util": str(util_path), "config": cfg.__dict__, "seeds": seed_list,
            "summary": summary, "runs": [r.__dict__ for r in results]}
    if png is not None:
        from slurm_vgpu.policies.sim.plots import plot_dynamic
        plot_dynamic(data, png)
    _write_json(json_path, data)


# one worker's replay inputs and job windows, so that a task names them instead of carrying them
_WORKER_INPUTS: dict[tuple[str, str, str], Any] = {}


def _replay_window(philly: Path, shares_path: Path, util_path: Path, cfg: Any,
                   seed: int) -> Any:
    """build_jobs' (jobs, reference GPUs) for one seed, the traces read once per process and
    each window built once: the command builds them for the targets, and forked workers (or
    the serial path) find them built."""
    from slurm_vgpu.policies.sim.sim_dynamic import build_jobs

    key = (str(philly), str(shares_path), str(util_path))
    if key not in _WORKER_INPUTS:
        _WORKER_INPUTS.clear()
        _WORKER_INPUTS[key] = (_replay_inputs(philly, shares_path, util_path), {})
    (philly_jobs, shares, utils), windows = _WORKER_INPUTS[key]
    window = (seed, repr(cfg))
    if window not in windows:
        windows[window] = build_jobs(philly_jobs, shares, utils, cfg, seed)
    return windows[window]


def _capacity_scan(task: tuple[Path, Path, Path, Any, int, str, float, int, str]) -> Any:
    """One regime and seed in a worker process: capacity.scan_down."""
    from slurm_vgpu.policies.sim.capacity import scan_down

    philly, shares_path, util_path, cfg, seed, mode, target, top, metric = task
    jobs, _ = _replay_window(philly, shares_path, util_path, cfg, seed)
    return scan_down(jobs, mode, seed, cfg, target, top, metric)


@simulate.command("capacity")
@_replay_options("1-3")
@click.option("--metric", type=click.Choice(["delay", "wait"]), default="delay",
              show_default=True,
              help="What to hold: mean delay (queue wait + time lost to slowdown) or mean "
                   "queue wait.")
@click.option("--target-min", type=click.FloatRange(0, min_open=True), default=None,
              help="Mean delay (or wait) to hold, in minutes. Default: what whole GPUs give "
                   "on the --load cluster, per seed.")
@click.option("--max-nodes", type=click.IntRange(1), default=None,
              help="Largest cluster replayed (default: twice the --load cluster).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes replaying cluster sizes in parallel (default: one per CPU).")
def capacity_cmd(philly: Path, shares_path: Path, util_path: Path, n_jobs: int, first_job: int,
                 load: float, modes: tuple[str, ...], seeds: str, json_path: Path | None,
                 png: Path | None, progress: bool | None, metric: str,
                 target_min: float | None, max_nodes: int | None,
                 workers: int | None) -> None:
    """The fewest GPUs that serve the same jobs as well as whole GPUs do, per regime;
    capacity = whole GPUs' count over the regime's. Every cluster size is replayed (about
    13 minutes on 2 CPUs for the defaults)."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from slurm_vgpu.policies.sim.capacity import CapacityError, fewest_gpus_of, measure
    from slurm_vgpu.policies.sim.sim_dynamic import DynamicConfig, run_dynamic

    seed_list = parse_seeds(seeds)
    if "whole" not in modes:
        modes = ("whole", *modes)  # the reference every capacity is relative to
    cfg = DynamicConfig(jobs=n_jobs, first_job=first_job, load=load)
    targets: dict[int, float] = {}
    ref_of: dict[int, int] = {}
    tasks = []
    for seed in seed_list:
        try:
            jobs, ref_of[seed] = _replay_window(philly, shares_path, util_path, cfg, seed)
        except ValueError as e:
            raise click.ClickException(str(e)) from e
        targets[seed] = (target_min * 60 if target_min is not None
                         else measure(run_dynamic(jobs, ref_of[seed], "whole", seed, cfg),
                                      metric))
        top = max_nodes or 2 * ref_of[seed] // cfg.gpus_per_node
        tasks += [(philly, shares_path, util_path, cfg, seed, mode, targets[seed], top, metric)
                  for mode in modes]
    bar = Progress(len(tasks), "capacity", _progress_enabled(progress))
    replays: dict[tuple[int, str], dict[int, Any]] = {}
    n_workers = min(len(tasks), workers or os.cpu_count() or 1)
    with ProcessPoolExecutor(n_workers) if n_workers > 1 else contextlib.nullcontext() as pool:
        mapped = pool.map(_capacity_scan, tasks) if pool else map(_capacity_scan, tasks)
        for task, results in zip(tasks, mapped, strict=True):
            replays[(task[4], task[5])] = results
            bar.tick()
    runs: list[dict[str, Any]] = []
    for seed in seed_list:
        ref = ref_of[seed]
        target = targets[seed]
        found = {}
        for mode in modes:
            try:
                found[mode] = fewest_gpus_of(mode, seed, metric, target, replays[(seed, mode)])
            except CapacityError as e:
                raise click.ClickException(str(e)) from e
        for mode in modes:
            r = found[mode]
            runs.append({"mode": mode, "seed": seed, "reference_gpus": ref,
                         "target_s": round(target, 1), "gpus": r.gpus,
                         "capacity": round(found["whole"].gpus / r.gpus, 3),
                         "at": r.at.__dict__,
                         "probes": {str(g): v for g, v in r.probes.items()},
                         "fit": {str(g): v for g, v in r.fit.items()}})
    summary = []
    for mode in modes:
        rs = [r for r in runs if r["mode"] == mode]
        caps = [r["capacity"] for r in rs]

        def mean_at(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return round(statistics.mean(float(r["at"][key]) for r in rs), 3)
        summary.append({"mode": mode, "seeds": len(rs),
                        "gpus": round(statistics.mean(r["gpus"] for r in rs), 1),
                        "capacity": round(statistics.mean(caps), 3),
                        "capacity_min": min(caps), "capacity_max": max(caps),
                        "target_s": round(statistics.mean(r["target_s"] for r in rs), 1),
                        "mean_delay_s": mean_at("mean_delay_s"),
                        "mean_wait_s": mean_at("mean_wait_s"),
                        "mean_slowdown": mean_at("mean_slowdown"),
                        "p95_slowdown": mean_at("p95_slowdown"),
                        "backfilled_jobs": mean_at("backfilled_jobs")})
    _echo_table(summary, [
        ("GPUS", 6, lambda r: f"{r['gpus']:.1f}"),
        ("CAPACITY", 9, lambda r: f"{r['capacity']:.2f}x"),
        ("MIN", 6, lambda r: f"{r['capacity_min']:.2f}x"),
        ("MAX", 6, lambda r: f"{r['capacity_max']:.2f}x"),
        ("TARGET", 7, lambda r: f"{r['target_s'] / 60:.0f}min"),
        ("DELAY", 6, lambda r: f"{r['mean_delay_s'] / 60:.0f}min"),
        ("WAIT", 6, lambda r: f"{r['mean_wait_s'] / 60:.0f}min"),
        ("SLOW", 6, lambda r: f"{r['mean_slowdown']:.3f}"),
        ("SLOW-P95", 8, lambda r: f"{r['p95_slowdown']:.2f}"),
    ], err=json_path is None)
    data = {"protocol": "philly-capacity", "philly": str(philly), "shares": str(shares_path),
            "util": str(util_path), "config": cfg.__dict__, "seeds": seed_list,
            "metric": metric, "target_min": target_min, "summary": summary, "runs": runs}
    if png is not None:
        from slurm_vgpu.policies.sim.plots import plot_capacity
        plot_capacity(data, png)
    _write_json(json_path, data)
